"""Module 1's vectorised counting (pairs, ages, consultation days, source lines) equals a
straightforward computation on small hand-made frames, including the cases its fast paths skip."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from nmr_coordination import rules

from nmr_engine.plugin.helpers import pair_rows


def test_pairs_equal_pair_rows_with_one_or_several_periods_per_contract():
    left = pd.Series(["B", "A", None, "C", "B"], dtype="category")
    for right in (pd.Series(["A", "B", "D"], dtype="str"), pd.Series(["A", "B", "B", "D"], dtype="str")):
        fast, plain = rules._pairs(left, right), pair_rows(left, right)
        assert [a.tolist() for a in fast] == [a.tolist() for a in plain]
    assert [a.tolist() for a in rules._pairs(left, pd.Series(["A", "B", "D"], dtype="str"))] == [[0, 1, 4], [1, 0, 1]]
    every = pd.Series(["B", "A", "C", "B"], dtype="category")  # each row pairs once: the rows themselves
    right = pd.Series(["A", "B", "C"], dtype="str")
    rows, periods = rules._pairs(every, right)
    assert rows is None and periods.tolist() == pair_rows(every, right)[1].tolist() == [1, 0, 2, 1]
    assert pair_rows(every, right)[0].tolist() == [0, 1, 2, 3]


def test_younger_than_whole_years_around_birthdays_and_29_february():
    births = ["2000-02-29", "2000-03-01", "1999-12-31", "2007-01-01", "1920-06-15", "2013-01-01", "2012-02-29"]
    refs = ["2013-01-01", "2013-02-28", "2013-03-01", "2012-12-31", "2012-02-29", "2016-02-29"]
    b_row, o_row = np.repeat(np.arange(len(births)), len(refs)), np.tile(np.arange(len(refs)), len(births))
    born = pd.to_datetime(births).to_numpy()[b_row]
    ages = []
    for b, o in zip(b_row, o_row, strict=True):
        x, y = dt.date.fromisoformat(births[b]), dt.date.fromisoformat(refs[o])
        ages.append(y.year - x.year - ((y.month, y.day) < (x.month, x.day)))
    for years in (0, 1, 4, 6, 12, 13, 16, 92, 93):
        limit = rules._years_before(pd.Series(pd.to_datetime(refs)), np.full(len(refs), years))
        assert (born > limit[o_row]).tolist() == [a < years for a in ages], years
    assert ages[: len(refs)] == [12, 12, 13, 12, 12, 16]  # born 29/02/2000: 13 on 1 March 2013, not on 28 February
    # the day a year before 29 February 2012 is 28 February 2011; four years before, 29 February 2008
    before = rules._years_before(pd.Series(pd.to_datetime(["2012-02-29"] * 2)), np.array([1, 4]))
    assert [str(d)[:10] for d in before] == ["2011-02-28", "2008-02-29"]


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


def _nominal_days_reference(context) -> pd.DataFrame:
    """The straightforward with_nominal_days: a Python pass over the history, one period at a time."""
    year, day = pd.DateOffset(years=1), pd.Timedelta(days=1)
    hist = context.history
    first, last, spans = {}, {}, {}
    for cid, pid, start, end in zip(
        hist["contract_id"], hist["period_id"], hist["period_start"], hist["period_end"], strict=True
    ):
        spans.setdefault((cid, pid), (start, end))
        first[cid] = min(first.get(cid, start), start)
        last[cid] = max(last.get(cid, end), end)
    nominal = {}
    for (cid, pid), (start, end) in spans.items():
        if start == first[cid] and end != last[cid] and end + day != start + year:
            nominal[cid, pid] = (end + day - (end + day - year)).days
        else:
            nominal[cid, pid] = (start + year - start).days
    periods = context.periods
    keys = list(zip(periods["contract_id"], periods["period_id"], strict=True))
    out = periods[np.array([k in nominal for k in keys], dtype=bool)]
    out = out.assign(nominal_days=np.array([nominal[k] for k in keys if k in nominal], dtype=np.int64))
    return out.sort_values(["contract_id", "period_start"], kind="stable").reset_index(drop=True)


def test_nominal_days_equal_the_straightforward_computation():
    from types import SimpleNamespace

    from nmr_engine.plugin.intervals import with_nominal_days

    def period(cid, start, end):
        return {
            "contract_id": cid,
            "period_id": f"{start}/{end}",
            "period_start": pd.Timestamp(start),
            "period_end": pd.Timestamp(end),
        }

    history = pd.DataFrame(
        [
            period("B", "2012-03-01", "2012-12-31"),  # first period cut by the contract start: measured back
            period("B", "2013-01-01", "2013-12-31"),
            period("B", "2014-01-01", "2014-06-30"),  # last one cut by the contract end: measured forward
            period("A", "2012-02-29", "2013-02-27"),  # from 29 February
            period("A", "2013-02-28", "2014-02-27"),
            period("A", "2013-02-28", "2014-02-27"),  # a repeated row: the first one counts
            period("C", "2013-01-01", "2013-06-30"),  # a single, cut period
        ]
    ).astype({"contract_id": "str", "period_id": "str"})
    periods = pd.concat([history.iloc[[6, 1, 4, 0]], pd.DataFrame([period("D", "2013-01-01", "2013-12-31")])])
    context = SimpleNamespace(history=history, periods=periods.reset_index(drop=True))
    got = with_nominal_days(context)
    assert got.equals(_nominal_days_reference(context))
    assert got[["contract_id", "nominal_days"]].values.tolist() == [
        ["A", 365],
        ["B", 366],  # back from 1 January 2013: 2012 is a leap year
        ["B", 365],
        ["C", 365],  # a lone period (also the contract's last): a full year forward from its start
    ]  # D is not in the history: left out, as by an inner merge


def test_a_bad_input_on_the_fast_lookup_still_gives_its_message(tmp_path, monkeypatch):
    from nmr_engine.plugin import helpers

    from .test_coordination import CID, adults, problems_of, workspace

    def no_exact_path(*args):
        raise AssertionError("the fixed-width keys should be matched on the fast path")

    monkeypatch.setattr(helpers, "_row_positions_exact", no_exact_path)
    consultations = [["A000", "2013-02-01", "G1"], ["A009", "2013-02-01", "G1"], ["A001", "2013-02-01", "G7"]]
    ws = workspace(tmp_path, patients=adults(2), consultations=consultations)
    file = tmp_path / "data" / "coordination" / "child_consultations.csv"
    assert problems_of(ws) == [
        f"{file}, ligne 3, champ « patient_id » : patient « A009 » absent de patients.csv pour le contrat {CID}",
        f"{file}, ligne 4, champ « doctor_id » : médecin « G7 » absent des généralistes de professionals.csv "
        f"pour le contrat {CID}",
    ]
