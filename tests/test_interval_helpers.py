"""The plugin helpers that pair rows and measure date intervals on arrays (hand-computed cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nmr_engine.plugin.helpers import lines_text, lines_texts, pair_rows
from nmr_engine.plugin.intervals import clip_intervals, overlapping_intervals


def _days(*texts):
    return np.array([t or "NaT" for t in texts], dtype="datetime64[ns]")


def test_pair_rows_gives_the_pairs_of_an_inner_merge_in_its_order():
    left = pd.Series(["B", "A", "C", "B"], dtype="category")
    right = pd.Series(["A", "B", "B", "D"])
    i, j = pair_rows(left, right)
    merged = pd.DataFrame({"k": left, "i": range(4)}).merge(pd.DataFrame({"k": right, "j": range(4)}), on="k")
    assert list(zip(i, j, strict=True)) == list(zip(merged["i"], merged["j"], strict=True))
    assert list(zip(i, j, strict=True)) == [(0, 1), (0, 2), (1, 0), (3, 1), (3, 2)]  # C and D pair with nothing


def test_clip_intervals_counts_the_days_inside_the_window():
    lo, hi, days = clip_intervals(
        _days("2012-12-20", "2013-03-01", "2013-02-01", "2014-01-01"),
        _days("2013-01-10", None, "2013-01-31", None),  # open-ended, and an interval ended before
        _days("2013-01-01", "2013-01-01", "2013-02-01", "2013-01-01"),
        _days("2013-12-31", "2013-12-31", "2013-12-31", "2013-12-31"),
    )
    assert days.tolist() == [10, 306, 0, 0]  # 1–10 January; 1 March–31 December; disjoint twice
    assert lo[0] == np.datetime64("2013-01-01") and hi[1] == np.datetime64("2013-12-31")


def test_overlaps_are_still_named_with_the_earlier_line():
    frame = pd.DataFrame(
        {
            "contract_id": pd.Series(["C1", "C1", "C1", "C2"], dtype="category"),
            "person": ["A", "A", "B", "A"],
            "start": _days("2012-01-01", "2012-06-01", "2012-03-01", "2012-03-01"),
            "end": _days(None, "2012-12-31", "2012-04-01", "2012-04-01"),
            "_line": [2, 3, 4, 5],
        }
    )
    found = overlapping_intervals(frame, ["contract_id", "person"], "start", "end")
    assert found["_line"].tolist() == [3] and found["_prev_line"].tolist() == [2]  # A's first row is open-ended
    apart = frame.assign(end=_days("2012-05-31", "2012-12-31", "2012-04-01", "2012-04-01"))
    assert overlapping_intervals(apart, ["contract_id", "person"], "start", "end").empty


def test_lines_text_sorts_and_shortens_the_file_lines():
    assert lines_text("f.csv", [9, 2, 5]) == "f.csv, ligne(s) 2, 5, 9"
    assert lines_text("f.csv", list(range(20, 2, -1))) == "f.csv, ligne(s) 3, 4, 5, 6, 7, 8, 9, 10…"


@pytest.mark.parametrize("case", ["one run per group", "groups mixed", "lines shuffled", "runs, lines shuffled"])
def test_lines_texts_give_the_text_of_all_the_lines_of_each_group(case):
    rng = np.random.default_rng(7)
    lines = np.arange(2, 62)
    if "shuffled" in case:  # file lines not in row order: the sort takes them into account
        rng.shuffle(lines)
    rows = np.sort(rng.choice(60, 40, replace=False))
    runs = case.startswith(("one run", "runs"))
    group = np.repeat([2, 0, 3], [10, 20, 10]) if runs else rng.integers(0, 4, rows.size)
    texts = lines_texts("patients.csv", lines[rows], group, 5)
    for g in range(4):
        mine = lines[rows[group == g]]
        assert texts[g] == (lines_text("patients.csv", mine) if mine.size else None)
    assert texts[4] is None
    assert lines_texts("patients.csv", np.zeros(0, np.int64), np.zeros(0, np.int64), 2) == [None, None]


def test_lines_texts_show_the_first_lines_of_a_group_in_order():
    texts = lines_texts("f.csv", np.array([30, 4, 12, 7, 3, 9, 5, 6, 8, 10, 11]), np.array([1] * 10 + [0]), 2, limit=3)
    assert texts == ["f.csv, ligne(s) 11", "f.csv, ligne(s) 3, 4, 5…"]
