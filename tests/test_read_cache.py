"""The read cache a replay shares between its runs: same results, files parsed once, changes seen."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from nmr_engine.cache import ReadCache
from nmr_engine.engine import Workspace
from nmr_engine.errors import InputError
from nmr_engine.inputs.submissions import record_submission
from nmr_engine.plugin.manager import PluginRegistry

from .conftest import ROOT, write_contract, write_table
from .test_bad_input import PROGRAMMES

RUN = dt.date(2014, 12, 31)


def _comparable(lines: pd.DataFrame) -> pd.DataFrame:
    out = lines.copy()
    out["explanation"] = [e.to_dict() for e in out["explanation"]]
    return out


def test_workspaces_sharing_a_cache_compute_the_same_lines_and_parse_each_file_once():
    registry = PluginRegistry()
    plain = Workspace(ROOT / "contracts", ROOT / "data", registry, RUN, RUN).calculate(["2012", "2013"])
    cache = ReadCache()
    first = Workspace(ROOT / "contracts", ROOT / "data", registry, RUN, RUN, cache).calculate(["2012", "2013"])
    parsed = cache.tables.misses
    assert parsed == len(cache.tables) > 0 and cache.tables.hits == 0
    assert cache.modules.misses == 3 and cache.modules.hits == 0  # coordination, etp, asalee
    second = Workspace(ROOT / "contracts", ROOT / "data", registry, RUN, RUN, cache).calculate(["2012", "2013"])
    # nothing parsed or checked again: each module's tables come back as the first run left them
    assert cache.tables.misses == parsed and cache.modules.hits == 3 and cache.modules.misses == 3
    assert plain.total_cents == first.total_cents == second.total_cents == 49_913_602
    pd.testing.assert_frame_equal(_comparable(plain.lines), _comparable(second.lines))


SESSIONS = """\
    contract_id;programme_id;patient_id;session_date;kind
    C1;P1;A;2012-09-01;diagnostic
    C1;P1;A;2012-09-02;seance
    C1;P1;A;2012-09-03;seance
    C1;P1;A;2012-09-04;seance
    """


@pytest.fixture
def dirs(workspace_dirs):
    contracts, data = workspace_dirs
    write_contract(contracts)
    write_table(data, "etp", "programmes", PROGRAMMES)
    write_table(data, "etp", "sessions", SESSIONS)
    return workspace_dirs


def _etp_total(dirs, cache) -> int:
    return Workspace(*dirs, PluginRegistry(), RUN, None, cache).calculate(["2012"], modules=["etp"]).total_cents


def test_a_file_changed_between_two_workspaces_is_read_again(dirs):
    cache = ReadCache()
    assert _etp_total(dirs, cache) == 25_000  # diagnostic + 3 séances: 250 €
    write_table(dirs[1], "etp", "sessions", SESSIONS + "C1;P1;A;2012-09-05;seance\nC1;P1;A;2012-09-06;seance\n")
    assert _etp_total(dirs, cache) == 30_000  # 5 séances: 300 €


def test_a_bad_file_is_not_kept_and_fails_the_same_way_each_time(dirs):
    write_table(dirs[1], "etp", "sessions", SESSIONS + "C1;P1;A;12/09/2012;seance\nC9;P1;B;2012-09-01;seance\n")
    cache = ReadCache()
    messages = []
    for _ in range(2):
        with pytest.raises(InputError) as info:
            _etp_total(dirs, cache)
        messages.append([str(p) for p in info.value.problems])
    assert messages[0] == messages[1]
    assert any("ligne 6, champ « session_date » : date attendue au format AAAA-MM-JJ" in m for m in messages[1])
    assert any("ligne 7, champ « contract_id » : contrat inconnu « C9 »" in m for m in messages[1])
    assert len(cache.tables) == 1  # the good programmes table only; the bad sessions file is parsed each time
    assert cache.tables.misses == 3 and cache.tables.hits == 1


def test_the_contract_check_is_redone_on_a_cached_table(dirs):
    cache = ReadCache()
    assert _etp_total(dirs, cache) == 25_000
    (dirs[0] / "c1.yaml").rename(dirs[0] / "c2.yaml.off")  # the contract is gone: its rows are now unknown
    write_contract(dirs[0], "C2")
    with pytest.raises(InputError) as info:
        _etp_total(dirs, cache)
    assert "contrat inconnu « C1 »" in str(info.value)
    assert cache.tables.hits >= 1


@pytest.fixture
def example_copy(tmp_path):
    """The bundled example (contracts, data and its recorded history), writable."""
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    return tmp_path / "contracts", tmp_path / "data"


def _by_module(result) -> dict[str, int]:
    return {m: int(v) for m, v in result.lines.groupby("module")["amount_cents"].sum().items()}


def test_a_late_correction_is_read_again_and_the_unchanged_modules_are_reused(example_copy):
    contracts, data = example_copy
    registry, cache = PluginRegistry(), ReadCache()
    trainings = data / "etp" / "trainings.csv"
    with trainings.open("a", encoding="utf-8") as fh:  # a training of period 2012, received late
        fh.write("ENMR-NPDC-ANICHE;RPPS-ANI-09;2013-03-15;Formation ETP 40 h, module 1\n")
    record_submission(data, trainings, dt.date(2014, 1, 15))
    before = Workspace(contracts, data, registry, dt.date(2013, 12, 31), dt.date(2013, 12, 31), cache)
    first = _by_module(before.calculate(["2012"]))
    after = Workspace(contracts, data, registry, dt.date(2014, 12, 31), dt.date(2014, 12, 31), cache)
    second = _by_module(after.calculate(["2012"]))
    assert second["etp"] == first["etp"] + 100_000  # the correction: one more training, 1 000,00 €
    assert {m: v for m, v in second.items() if m != "etp"} == {m: v for m, v in first.items() if m != "etp"}
    # coordination and asalee: same files, contracts and periods, their checked tables reused;
    # etp: another version of trainings.csv, read and checked again
    assert cache.modules.hits == 2 and cache.modules.misses == 4
    plain = Workspace(contracts, data, registry, dt.date(2014, 12, 31), dt.date(2014, 12, 31)).calculate(["2012"])
    pd.testing.assert_frame_equal(_comparable(plain.lines), _comparable(after.calculate(["2012"]).lines))


def test_reused_tables_repeat_their_warnings(example_copy):
    contracts, data = example_copy
    with (data / "etp" / "trainings.csv").open("a", encoding="utf-8") as fh:  # changed, not recorded
        fh.write("ENMR-NPDC-ANICHE;RPPS-ANI-09;2013-03-15;Formation ETP 40 h, module 1\n")
    registry, cache = PluginRegistry(), ReadCache()
    runs = [Workspace(contracts, data, registry, RUN, None, cache).calculate(["2012"]) for _ in range(2)]
    assert cache.modules.hits == 3
    assert runs[0].warnings == runs[1].warnings
    assert any("trainings.csv a changé depuis sa réception" in w for w in runs[1].warnings)


def test_the_caches_keep_at_most_max_rows_rows_dropping_the_least_recently_used():
    from nmr_engine.cache import ModuleTables, TableCache

    tables = TableCache(max_rows=5)
    tables.put(("a",), pd.DataFrame({"x": [1, 2]}))
    tables.put(("b",), pd.DataFrame({"x": [3, 4]}))
    assert tables.get(("a",), "a.csv")["x"].tolist() == [1, 2]  # "a" used last: "b" goes first
    tables.put(("c",), pd.DataFrame({"x": [5, 6]}))  # 6 rows > 5
    assert tables.get(("b",), "b.csv") is None
    assert tables.get(("a",), "a.csv").attrs == {"file": "a.csv"}
    tables.put(("big",), pd.DataFrame({"x": range(6)}))  # larger than the bound: never kept
    assert len(tables) == 2 and tables.get(("big",), "big.csv") is None
    assert (tables.hits, tables.misses) == (2, 2)

    modules = ModuleTables(max_rows=3)
    notes: list[str] = []
    modules.put(("etp",), {"sessions": pd.DataFrame({"x": [1, 2]})}, ("note",))
    assert modules.get(("etp",), notes)["sessions"]["x"].tolist() == [1, 2] and notes == ["note"]
    modules.put(("asalee",), {"staff": pd.DataFrame({"x": [1, 2]})}, ())
    assert modules.get(("etp",), notes) is None and len(modules) == 1
