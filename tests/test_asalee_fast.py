"""Module 3's first follow-up of each patient and act (integer codes, no sort) equals what a sort
and ``drop_duplicates`` give, on a small hand-made table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from nmr_asalee import rules

DAYS = ["2013-05-01", "2013-02-01", "2013-03-01", "2013-03-01", "2012-09-01", "2013-02-01", "2013-04-01", "2013-04-01"]


@pytest.mark.parametrize("lines", [[2, 3, 4, 5, 6, 7, 8, 9], [9, 8, 7, 6, 5, 4, 3, 2]])
def test_first_follow_ups_equal_sort_then_drop_duplicates(lines):
    f = pd.DataFrame(
        {
            "contract_id": pd.Categorical(["C1"] * 6 + ["C2"] * 2),
            "period_id": pd.Categorical(["P13"] * 4 + ["P12", "P13", "P13", "P13"]),
            "patient_id": pd.array(["PAT-A", "PAT-A", "PAT-A", "PAT-B", "PAT-A", "PAT-A", "PAT-A", "PAT-A"], "str"),
            "act": pd.Categorical(["diab", "diab", "bpco", "diab", "diab", "diab", "diab", "diab"]),
            "followed_on": pd.to_datetime(DAYS),
            "_line": lines,
        }
    )
    got = rules._first_follow_ups(f)
    order = np.lexsort((f["_line"].to_numpy(), f["followed_on"].to_numpy().view(np.int64)))
    expected = f.iloc[order].drop_duplicates(["contract_id", "period_id", "patient_id", "act"], keep="first")
    assert sorted(got.tolist()) == sorted(expected.index.tolist())
    assert got.tolist() == sorted(got.tolist())  # in row order
    assert (6 in got) != (7 in got)  # the same day twice: the earlier file line
