"""Module 1's vectorised counting (pairs, ages, consultation days, source lines) equals a
straightforward computation on small hand-made frames, including the cases its fast paths skip."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from nmr_coordination import rules

from nmr_engine.plugin.helpers import lines_text, pair_rows


def test_pairs_equal_pair_rows_with_one_or_several_periods_per_contract():
    left = pd.Series(["B", "A", None, "C", "B"], dtype="category")
    for right in (pd.Series(["A", "B", "D"], dtype="str"), pd.Series(["A", "B", "B", "D"], dtype="str")):
        fast, plain = rules._pairs(left, right), pair_rows(left, right)
        assert [a.tolist() for a in fast] == [a.tolist() for a in plain]
    assert [a.tolist() for a in rules._pairs(left, pd.Series(["A", "B", "D"], dtype="str"))] == [[0, 1, 4], [1, 0, 1]]


def test_age_in_whole_years_around_birthdays_and_29_february():
    births = ["2000-02-29", "2000-03-01", "1999-12-31", "2007-01-01", "1920-06-15", "2013-01-01"]
    refs = ["2013-01-01", "2013-02-28", "2013-03-01", "2012-12-31"]
    birth, on = pd.Series(pd.to_datetime(births)), pd.Series(pd.to_datetime(refs))
    b_row, o_row = np.repeat(np.arange(len(births)), len(refs)), np.tile(np.arange(len(refs)), len(births))
    expected = []
    for b, o in zip(b_row, o_row, strict=True):
        x, y = dt.date.fromisoformat(births[b]), dt.date.fromisoformat(refs[o])
        expected.append(y.year - x.year - ((y.month, y.day) < (x.month, x.day)))
    assert rules._age(birth, b_row, on, o_row).tolist() == expected
    assert rules._age(birth, b_row, on, o_row)[: len(refs)].tolist() == [12, 12, 13, 12]  # born 29/02/2000


@pytest.mark.parametrize("shuffled", [False, True])
def test_first_lines_give_the_text_of_all_the_lines_of_each_group(shuffled):
    rng = np.random.default_rng(7)
    lines = np.arange(2, 62)
    if shuffled:  # file lines not in row order: the sort takes them into account
        rng.shuffle(lines)
    rows = np.sort(rng.choice(60, 40, replace=False))
    group = rng.integers(0, 4, rows.size)
    first = rules._first_lines(lines, rows, group, 5)
    for g in range(5):
        mine = lines[rows[group == g]]
        assert lines_text("patients.csv", first(g)) == lines_text("patients.csv", mine)
    assert len(first(4)) == 0


def _pat_cons(patient_ids, cons_rows):
    pat = pd.DataFrame(
        {
            "contract_id": pd.Categorical(["C1", "C1", "C2", "C2"]),
            "patient_id": pd.array(patient_ids, dtype="str"),
        }
    )
    cons = pd.DataFrame(cons_rows, columns=["contract_id", "patient_id", "consultation_date", "period_id"]).astype(
        {"contract_id": "category", "patient_id": "str", "period_id": "category"}
    )
    cons["consultation_date"] = pd.to_datetime(cons["consultation_date"])
    return pat, cons


P12, P13 = "2012-01-01/2012-12-31", "2013-01-01/2013-12-31"
CONS = [
    ["C1", "ENF-AAAA", "2013-02-01", P13],
    ["C1", "ENF-AAAA", "2013-02-01", P13],  # the same day twice: one day
    ["C1", "ENF-AAAA", "2013-05-01", P13],
    ["C1", "ENF-AAAA", "2012-05-01", P12],  # another period
    ["C1", "ENF-BBBB", "2013-03-01", P13],
    ["C2", "ENF-AAAA", "2013-03-01", P13],  # the other contract's child of the same id
    ["C2", "ENF-ZZZZ", "2013-03-01", P13],  # unknown child
    ["C2", "ENF-CCCC", None, P13],  # no date
]


@pytest.mark.parametrize("ids", [["ENF-AAAA", "ENF-BBBB", "ENF-AAAA", "ENF-CCCC"], ["ENF-AAAA", "B", "ENF-AAAA", "C"]])
def test_child_consultations_count_distinct_days_per_patient_and_period(ids):
    cons_rows = [[c, {"ENF-BBBB": ids[1], "ENF-CCCC": ids[3]}.get(p, p), d, per] for c, p, d, per in CONS]
    pat, cons = _pat_cons(ids, cons_rows)
    params = {"period_id": np.array([P13, P12, P13], dtype=object)}  # periods: C1 2013, C1 2012, C2 2013
    pat_row, per_row = np.array([0, 0, 1, 2, 3]), np.array([0, 1, 0, 2, 2])
    got = rules._child_consultations(pat, cons, params, pat_row, per_row)
    # straightforward: distinct (contract, patient, period, day) counted per pair
    seen = cons.dropna(subset=["consultation_date"]).drop_duplicates()
    expected = []
    for i, j in zip(pat_row, per_row, strict=True):
        mine = seen[
            (seen["contract_id"] == pat["contract_id"][i])
            & (seen["patient_id"] == pat["patient_id"][i])
            & (seen["period_id"] == params["period_id"][j])
        ]
        expected.append(len(mine))
    assert got.tolist() == expected == [2, 1, 1, 1, 0]
