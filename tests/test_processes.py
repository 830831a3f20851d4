"""Modules shared between forked processes: the same lines and warnings as one process, a child
that fails computed again here, errors raised in module order."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from nmr_engine import engine, processes
from nmr_engine.engine import Workspace
from nmr_engine.errors import ConfigurationError, InputError, PluginError
from nmr_engine.plugin.manager import PluginRegistry
from nmr_engine.processes import first_order, in_processes, worker_count

from .conftest import ROOT


def test_items_are_handed_out_heaviest_first():
    assert first_order([5, 1, 4, 2]) == [0, 2, 3, 1]
    assert first_order([3, 3, 3]) == [0, 1, 2]  # ties: in position order
    assert first_order([]) == []


def test_worker_count_reads_the_setting(monkeypatch):
    env = "NMR_TEST_WORKERS"
    monkeypatch.delenv(env, raising=False)
    assert worker_count(env, 99, 100) == 1  # below the minimum: one process
    assert worker_count(env, 5, 100, requested=8) == 5  # never more than the pieces of work
    monkeypatch.setenv(env, "2")
    assert worker_count(env, 10, 100) == 2
    monkeypatch.setenv(env, "beaucoup")
    with pytest.raises(ConfigurationError, match=r"^NMR_TEST_WORKERS : nombre de processus attendu .* « beaucoup »$"):
        worker_count(env, 10, 100)


def _where(item):
    return item, os.getpid()


def test_in_processes_starts_each_process_on_a_heavy_item_and_keeps_the_order():
    results = in_processes(_where, ["a", "b", "c"], [1, 10, 1], 2)
    assert [item for item, _ in results] == ["a", "b", "c"]
    here = os.getpid()
    pids = {item: pid for item, pid in results}
    # b, the heaviest, is computed here; a, the next in order (c ties with it), in a child
    assert pids["b"] == here and pids["a"] != here


#: Set by the tests below before sharing out their work (forked children inherit it).
_SIGNAL: dict = {}


def _long_or_short(item):
    """The long item waits (here) until the child has computed every short one."""
    if item == "long":
        done = _SIGNAL["shorts_done"]
        deadline = time.monotonic() + 20
        while done.value < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        with _SIGNAL["shorts_done"].get_lock():
            _SIGNAL["shorts_done"].value += 1
    return item, os.getpid()


def test_a_process_free_before_the_others_takes_the_items_left():
    # weights say nothing of the cost: the long item is heaviest only in time; while this
    # process is held on it, the child takes every item left one after the other
    _SIGNAL["shorts_done"] = multiprocessing.get_context("fork").Value("i", 0)
    try:
        results = in_processes(_long_or_short, ["long", "short1", "short2", "short3"], [2, 1, 1, 1], 2)
    finally:
        _SIGNAL.clear()
    assert [item for item, _ in results] == ["long", "short1", "short2", "short3"]
    pids = [pid for _, pid in results]
    assert pids[0] == os.getpid() and pids[1] == pids[2] == pids[3] != os.getpid()


class _Unreadable:
    """Pickled in a child, it cannot be read back in the parent."""

    def __reduce__(self):
        return (_refuse_to_load, ())


def _refuse_to_load():
    raise ValueError("illisible")


def _unreadable_in_a_child(item):
    return (item, os.getpid(), _Unreadable()) if item == "b" else (item, os.getpid(), None)


def test_a_childs_results_are_received_here_and_leave_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(processes, "_SPILL_DIR", str(tmp_path))
    seen = []

    def received(value):
        seen.append(value)
        return ("reçu", *value)

    results = in_processes(_where, ["a", "b", "c"], [3, 2, 1], 2, received)
    here = os.getpid()
    assert results[0] == ("a", here)  # computed here: given as it is
    from_child = [r for r in results[1:] if r[0] == "reçu"]
    assert from_child and all(r[2] != here for r in from_child)
    assert sorted(v[0] for v in seen) == sorted(r[1] for r in from_child)
    assert list(tmp_path.iterdir()) == []  # the results' files and their folder are gone


def test_a_result_that_cannot_be_read_back_is_computed_again_here(tmp_path, monkeypatch):
    monkeypatch.setattr(processes, "_SPILL_DIR", str(tmp_path))
    results = in_processes(_unreadable_in_a_child, ["a", "b"], [2, 1], 2)
    here = os.getpid()
    assert [r[:2] for r in results] == [("a", here), ("b", here)]  # b came back unreadable
    assert list(tmp_path.iterdir()) == []


def test_many_small_items_go_back_a_few_at_a_time(monkeypatch):
    spills = multiprocessing.get_context("fork").Value("i", 0)
    original = processes._spill

    def counted(values):
        with spills.get_lock():
            spills.value += 1
        return original(values)

    monkeypatch.setattr(processes, "_spill", counted)
    results = in_processes(_where, list(range(64)), [1] * 64, 2)
    assert [item for item, _ in results] == list(range(64))
    in_child = sum(pid != os.getpid() for _, pid in results)
    assert in_child >= 1
    assert spills.value <= -(-in_child // 4)  # 64 items, 2 processes: 4 per task


def test_one_worker_computes_everything_here():
    assert {pid for _, pid in in_processes(_where, ["a", "b"], [1, 1], 1)} == {os.getpid()}


def test_free_memory_is_handed_back_before_the_fork_only(monkeypatch):
    calls = []
    monkeypatch.setattr(processes, "release_free_memory", lambda: calls.append(os.getpid()))
    assert in_processes(lambda x: (x, os.getpid()), [1, 2], [1, 1], 1) == [(1, os.getpid()), (2, os.getpid())]
    assert calls == []  # one process: nothing to share
    pids = [pid for _, pid in in_processes(lambda x: (x, os.getpid()), [1, 2], [1, 1], 2)]
    assert calls == [os.getpid()] and len(set(pids)) == 2


def test_the_childrens_exit_is_not_waited_for(monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    asked = []
    shutdown = ProcessPoolExecutor.shutdown

    def spy(self, wait=True, *, cancel_futures=False):
        asked.append(wait)
        return shutdown(self, wait=wait, cancel_futures=cancel_futures)

    monkeypatch.setattr(ProcessPoolExecutor, "shutdown", spy)
    pids = [pid for _, pid in in_processes(_where, ["a", "b", "c"], [3, 2, 1], 2)]
    assert len(set(pids)) == 2  # every result is back before: only the exit of the idle child is left
    assert asked[:1] == [False]


def test_an_item_whose_child_died_is_computed_again_here():
    parent = os.getpid()

    def work(item):
        if item == "b" and os.getpid() != parent:
            os._exit(3)  # the child dies without a word
        return item * 2

    assert in_processes(work, ["a", "b"], [1, 1], 2) == ["aa", "bb"]


def test_the_first_failing_item_in_order_raises_wherever_it_ran():
    def work(item):
        if item in ("b", "c"):
            raise ValueError(f"échec {item}")
        return item

    for weights in ([1, 1, 5], [5, 1, 1], [1, 5, 1]):
        with pytest.raises(ValueError, match=r"^échec b$"):
            in_processes(work, ["a", "b", "c"], weights, 2)


@pytest.fixture
def forked(monkeypatch):
    """The bundled example's modules computed in two processes (it is far below the threshold)."""
    monkeypatch.setattr(engine, "PROCESS_ROWS", 0)
    monkeypatch.setenv(processes.CALC_WORKERS_ENV, "2")


def test_a_calculation_in_processes_gives_the_lines_and_warnings_of_one_process(forked, monkeypatch):
    registry = PluginRegistry()
    original = Workspace._run_plugin

    def noting(self, code, context):  # a warning raised during the calculation, where it ran
        self.parameters.stale_warnings.add(f"{code} : calculé dans le processus {os.getpid()}")
        return original(self, code, context)

    monkeypatch.setattr(Workspace, "_run_plugin", noting)
    shared = Workspace(ROOT / "contracts", ROOT / "data", registry).calculate(["2012", "2013"])
    monkeypatch.setenv(processes.CALC_WORKERS_ENV, "1")
    alone = Workspace(ROOT / "contracts", ROOT / "data", registry).calculate(["2012", "2013"])
    assert shared.total_cents == alone.total_cents == 49_913_602
    pd.testing.assert_frame_equal(
        shared.lines.drop(columns="explanation"), alone.lines.drop(columns="explanation"), check_exact=True
    )
    assert [e.to_dict() for e in shared.lines["explanation"]] == [e.to_dict() for e in alone.lines["explanation"]]
    here = f"processus {os.getpid()}"
    shared_notes = [w for w in shared.warnings if "calculé dans" in w]
    assert sorted(w.split(" :")[0] for w in shared_notes) == ["asalee", "coordination", "etp"]
    assert any(here not in w for w in shared_notes)  # came back from a child
    assert all(here in w for w in alone.warnings if "calculé dans" in w)


def test_a_plugin_failing_in_a_child_fails_as_in_one_process(forked, monkeypatch):
    original = Workspace._run_plugin

    def failing(self, code, context):
        if code == "coordination":
            raise PluginError("nmr-coordination", "KeyError: 'x'", None, code)
        return original(self, code, context)

    monkeypatch.setattr(Workspace, "_run_plugin", failing)
    with pytest.raises(PluginError) as shared:
        Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry()).calculate(["2012", "2013"])
    monkeypatch.setenv(processes.CALC_WORKERS_ENV, "1")
    with pytest.raises(PluginError) as alone:
        Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry()).calculate(["2012", "2013"])
    assert str(shared.value) == str(alone.value) and "KeyError: 'x'" in str(shared.value)


def test_contract_files_read_in_processes_give_the_contracts_and_problems_of_one_process(tmp_path, monkeypatch):
    from nmr_engine.contracts import loader

    from .conftest import write_contract

    folder = tmp_path / "contracts"
    for cid in ("C1", "C2", "C3", "C4"):
        write_contract(folder, cid)
    monkeypatch.setattr(loader, "PROCESS_FILES", 0)
    monkeypatch.setenv(processes.CALC_WORKERS_ENV, "2")
    shared = loader.load_contracts(folder, ["etp"])
    assert [c.id for c in shared] == ["C1", "C2", "C3", "C4"]
    (folder / "c2.yaml").write_text("id: C2\nstructure: [\n", encoding="utf-8")  # bad YAML
    (folder / "c4.yaml").write_text((folder / "c4.yaml").read_text(encoding="utf-8").replace("id: C4", "id: C1"))
    with pytest.raises(InputError) as in_processes_error:
        loader.load_contracts(folder, ["etp"])
    monkeypatch.setenv(processes.CALC_WORKERS_ENV, "1")
    with pytest.raises(InputError) as one_process_error:
        loader.load_contracts(folder, ["etp"])
    problems = in_processes_error.value.problems
    assert problems == one_process_error.value.problems
    assert [(Path(p.file).name, p.line) for p in problems] == [("c2.yaml", 3), ("c4.yaml", 1)]
    assert "YAML invalide" in problems[0].message and "déjà utilisé" in problems[1].message


def _nested(item):
    if item == "a":  # held here until c is computed (then by the child)
        _SIGNAL["c_done"].wait(20)
    if item == "b":  # a piece of work that shares its own work out in turn
        inner = in_processes(_where, ["x", "y"], [1, 1], 2)
        return "+".join(i for i, _ in inner), os.getpid()
    if item == "c":
        _SIGNAL["c_done"].set()
    return item, os.getpid()


def test_work_that_calls_in_processes_itself_keeps_the_outer_work():
    # a here, b in a child, where b shares out x and y first; then the child takes c
    _SIGNAL["c_done"] = multiprocessing.get_context("fork").Event()
    try:
        results = in_processes(_nested, ["a", "b", "c"], [2, 1, 1], 2)
    finally:
        _SIGNAL.clear()
    assert [r for r, _ in results] == ["a", "x+y", "c"]
    pids = [pid for _, pid in results]
    assert pids[0] == os.getpid() and pids[1] == pids[2] != os.getpid()  # c still found in the child


def test_each_module_is_checked_in_the_process_that_computes_it(forked, monkeypatch):
    check, compute = PluginRegistry.validate_inputs, Workspace._run_plugin

    def checking(self, code, tables, context):  # noted as a warning: it comes back from a child
        context.parameters.stale_warnings.add(f"{code} vérifié dans {os.getpid()}")
        return check(self, code, tables, context)

    def computing(self, code, context):
        self.parameters.stale_warnings.add(f"{code} calculé dans {os.getpid()}")
        return compute(self, code, context)

    monkeypatch.setattr(PluginRegistry, "validate_inputs", checking)
    monkeypatch.setattr(Workspace, "_run_plugin", computing)
    result = Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry()).calculate(["2012", "2013"])
    assert result.total_cents == 49_913_602

    def where(word: str) -> dict[str, str]:
        return dict(w.split(f" {word} dans ") for w in result.warnings if f" {word} dans " in w)

    assert where("vérifié") == where("calculé")
    assert sorted(where("vérifié")) == ["asalee", "coordination", "etp"]
    assert len(set(where("vérifié").values())) == 2 and str(os.getpid()) in where("vérifié").values()


def test_problems_of_every_module_come_before_a_calculation_error_as_in_one_process(forked, monkeypatch):
    from nmr_engine.errors import Problem

    def failing(self, code, context):
        raise PluginError("nmr-etp", "ZeroDivisionError: division by zero", None, code) from ZeroDivisionError()

    bad = Problem("data/coordination/patients.csv", "valeur attendue", 3, "patient_id")
    original = PluginRegistry.validate_inputs

    def finding(self, code, tables, context):
        return [*original(self, code, tables, context), *([bad] if code == "coordination" else [])]

    monkeypatch.setattr(Workspace, "_run_plugin", failing)
    monkeypatch.setattr(PluginRegistry, "validate_inputs", finding)
    for workers in ("2", "1"):
        monkeypatch.setenv(processes.CALC_WORKERS_ENV, workers)
        with pytest.raises(InputError) as raised:
            Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry()).calculate(["2012", "2013"])
        assert raised.value.problems == [bad]

    monkeypatch.setattr(PluginRegistry, "validate_inputs", original)  # no problem: the first failing module raises
    with pytest.raises(PluginError) as raised:
        Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry()).calculate(["2012", "2013"])
    assert "ZeroDivisionError" in str(raised.value) and isinstance(raised.value.__cause__, ZeroDivisionError)


def test_no_module_is_computed_when_a_table_could_not_be_read(forked, monkeypatch, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    sessions = data / "etp" / "sessions.csv"
    sessions.write_text(sessions.read_text(encoding="utf-8") + "X;P1;PAT;pas-une-date;seance\n", encoding="utf-8")
    computed: list[str] = []
    monkeypatch.setattr(Workspace, "_run_plugin", lambda self, code, context: computed.append(code))
    with pytest.raises(InputError) as raised:
        Workspace(ROOT / "contracts", data, PluginRegistry()).calculate(["2012", "2013"])
    assert any(p.field == "session_date" for p in raised.value.problems)
    assert computed == []
