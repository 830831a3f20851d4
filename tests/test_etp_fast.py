"""Module 2 (ETP) fast paths: each gives what the straightforward computation gives."""

from __future__ import annotations

import numpy as np
import pytest

from nmr_engine.engine import Workspace
from nmr_engine.plugin.helpers import sort_key, sort_rows

from .conftest import write_contract, write_table
from .test_etp import PROGRAMMES, cycle, sessions


@pytest.mark.parametrize("n", [0, 1, 7, 2000])
def test_sort_rows_is_a_stable_lexsort(n):
    rng = np.random.default_rng(n)
    a, b, c = rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, 50, n)
    expected = np.lexsort((c, b, a))
    assert sort_rows([a, b, c]).tolist() == expected.tolist()
    assert sort_rows([a, b, c], sizes=[4, 3, 50]).tolist() == expected.tolist()
    assert sort_rows([a]).tolist() == np.argsort(a, kind="stable").tolist()


def test_sort_rows_too_wide_for_one_int64_falls_back_to_lexsort():
    rng = np.random.default_rng(1)
    big = rng.integers(0, 2**40, 500)
    small = rng.integers(0, 3, 500)
    big[:250] = big[250:]  # ties on the first key
    expected = np.lexsort((small, big))
    assert sort_rows([big, small]).tolist() == expected.tolist()
    assert sort_rows([big, small], sizes=[2**62, 3]).tolist() == expected.tolist()


def test_sort_rows_negative_keys_sort_first():
    keys = np.array([2, -1, 0, -1, 2])
    assert sort_rows([keys]).tolist() == np.argsort(keys, kind="stable").tolist() == [1, 3, 2, 0, 4]


@pytest.mark.parametrize(
    "key",
    [
        np.array([], dtype=np.int64),
        np.array([3, 1, 3, 0, 1, 3], dtype=np.int32),  # ties: in row order
        np.random.default_rng(4).integers(0, 2**20, 3_000),
        np.random.default_rng(5).integers(0, 2**62, 300),  # too wide to pack with the rows
        np.array([2, -1, 0, -1, 2]),  # negative: as sort_rows, first
    ],
)
def test_sort_key_gives_the_stable_order_and_the_sorted_key(key):
    order, sorted_key = sort_key(key)
    expected = np.argsort(key, kind="stable")
    assert order.tolist() == expected.tolist()
    assert sorted_key.tolist() == key[expected].tolist() and sorted_key.dtype == np.int64
    mine = key.copy()
    order, sorted_key = sort_key(mine, overwrite=True)  # may sort the caller's int64 key in place
    assert order.tolist() == expected.tolist() and sorted_key.tolist() == key[expected].tolist()
    assert (sorted_key is mine) == (key.dtype == np.int64 and len(key) > 0 and key.min() >= 0 and key.max() < 2**40)


def test_row_positions_are_packed_a_chunk_at_a_time(monkeypatch):
    from nmr_engine.plugin import helpers

    monkeypatch.setattr(helpers, "_CHUNK", 7)  # several chunks and a short last one
    key = np.random.default_rng(2).integers(0, 5, 30)
    expected = np.argsort(key, kind="stable")
    assert sort_key(key)[0].tolist() == sort_rows([key]).tolist() == expected.tolist()
    assert sort_rows([key, np.arange(30) % 4]).tolist() == np.lexsort((np.arange(30) % 4, key)).tolist()


def test_counts_within_runs_as_bytes_or_not():
    from nmr_etp.rules import _count_within

    flags = np.array([True, False, True, True, False, True])
    assert _count_within(flags, np.array([0, 2, 5])).tolist() == [1, 2, 1]
    long = np.ones(700, dtype=bool)  # a run of more than 255 rows: not summed as bytes
    assert _count_within(long, np.array([0, 600])).tolist() == [600, 100]
    assert _count_within(long, np.array([], dtype=np.int64)).tolist() == []


def _reference_order(key, day, diag, line):
    return np.lexsort((line, (~diag).astype(int), day, key))


@pytest.mark.parametrize("shuffle", ["chronological", "shuffled", "lines out of order"])
def test_session_order_of_every_path_is_the_reference_order(shuffle):
    from nmr_etp.rules import _order_by_key

    rng = np.random.default_rng(3)
    n = 3000
    key = rng.integers(0, 40, n)
    day = rng.integers(15000, 15060, n)
    diag = rng.random(n) < 0.2
    line = np.arange(2, n + 2)
    if shuffle == "chronological":  # séances listed by date, the diagnostic first within a day
        by_date = np.lexsort((~diag, day))
        key, day, diag = key[by_date], day[by_date], diag[by_date]
    elif shuffle == "lines out of order":
        line = rng.permutation(line)
    in_file_order = shuffle != "lines out of order"
    order, key_s, day_s, diag_s = _order_by_key(key.copy(), day, diag, None if in_file_order else line)
    expected = _reference_order(key, day, diag, line)
    assert order.tolist() == expected.tolist()
    assert key_s.tolist() == key[expected].tolist()
    assert day_s.tolist() == day[expected].tolist()
    assert diag_s.tolist() == diag[expected].tolist()


def test_same_lines_whatever_the_order_of_the_sessions_file(workspace_dirs, tmp_path):
    contracts, data = workspace_dirs
    write_contract(contracts)
    write_table(data, "etp", "programmes", PROGRAMMES)
    rows = []
    for i, n in enumerate((1, 2, 3, 4, 5, 6, 7, 3, 5)):
        rows += cycle(f"PAT{i}", n, month=7 + i % 5)
        rows += cycle(f"PAT{i}", n, month=1 + i % 5, year=2013)  # a second cycle in the period: capped
    rows += [("ORPHAN", "2012-08-03", "seance"), ("ORPHAN", "2012-08-04", "seance")]
    chronological = sorted(rows, key=lambda r: (r[1], r[2] != "diagnostic"))
    write_table(data, "etp", "sessions", sessions(chronological))
    first = Workspace(contracts, data).calculate(["2012"]).lines
    rng = np.random.default_rng(5)
    write_table(data, "etp", "sessions", sessions([rows[i] for i in rng.permutation(len(rows))]))
    second = Workspace(contracts, data).calculate(["2012"]).lines
    columns = ["contract_id", "period_id", "component", "quantity", "amount_cents"]
    assert first[columns].sort_values(columns).values.tolist() == second[columns].sort_values(columns).values.tolist()
    assert {"forfait_patient_cycle_supplementaire", "forfait_patient_sans_diagnostic"} <= set(first["component"])


def test_diagnostic_rule_read_at_some_rows_is_the_rule_of_every_session(workspace_dirs):
    import pandas as pd
    from nmr_etp.rules import _required_at

    from nmr_engine.inputs import read_module_tables
    from nmr_engine.model import module_periods_frame, select_periods
    from nmr_engine.plugin.api import CalculationContext

    contracts, data = workspace_dirs
    write_contract(
        contracts,
        extra="""\
        parameters:
          etp.patient.diagnostic_required:
            - start: 2012-09-01
              value: false
              reference: "Avenant n° 2 à la convention C1"
        """,
    )
    write_table(data, "etp", "programmes", PROGRAMMES)
    rows = [("A", "2012-08-01", "seance"), ("A", "2012-08-02", "seance"), ("B", "2012-10-01", "seance")]
    write_table(data, "etp", "sessions", sessions(rows + cycle("C", 3)))
    ws = Workspace(contracts, data)
    spec = ws.registry.modules()["etp"].spec
    history = module_periods_frame(ws.contracts, "etp")
    tables = read_module_tables(data, "etp", spec.tables, {"C1"}, history)
    context = CalculationContext(spec, select_periods(history, ["2012"]), history, tables, ws.parameters, ws.run_date)
    s = tables["sessions"]
    column, required = _required_at(context, s, np.arange(len(s)))
    assert _required_at(context, s, np.array([5, 0]))[1].tolist() == [False, True]
    full = context.lookup("patient.diagnostic_required", s["contract_id"], s["session_date"])
    assert required.tolist() == full.values(missing=True).astype(bool).tolist() == [True, True, False] + [False] * 4
    used = lambda c: [c.versions[i] for i in sorted(set(c.index.tolist()))]  # noqa: E731
    assert used(column) == used(full) and len(used(full)) == 2
    assert isinstance(s["contract_id"].dtype, pd.CategoricalDtype)
