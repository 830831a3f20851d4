"""Date-interval helpers for plugin authors (vectorised over pandas columns).

Presence of professionals, staff FTE, enrolments: many inputs are dated intervals. These
helpers measure them against contract periods without per-row Python loops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
YEAR = pd.DateOffset(years=1)


def with_nominal_days(context) -> pd.DataFrame:
    """``context.periods`` plus ``nominal_days``: the days of the full 12-month contract period.

    A first period cut by the contract start is measured back from its end; any other period
    forward from its start (a full period: its own length)."""
    hist = context.history.drop_duplicates(["contract_id", "period_id"])[
        ["contract_id", "period_id", "period_start", "period_end"]
    ].copy()
    first = hist.groupby("contract_id")["period_start"].transform("min").eq(hist["period_start"])
    last = hist.groupby("contract_id")["period_end"].transform("max").eq(hist["period_end"])
    after_start = hist["period_start"] + YEAR
    full = (hist["period_end"] + DAY).eq(after_start)
    cut_at_start = first & ~last & ~full
    end_excl = (hist["period_end"] + DAY).where(cut_at_start, after_start)
    start = (hist["period_end"] + DAY - YEAR).where(cut_at_start, hist["period_start"])
    hist["nominal_days"] = (end_excl - start).dt.days.astype("int64")
    out = context.periods.merge(hist[["contract_id", "period_id", "nominal_days"]], on=["contract_id", "period_id"])
    return out.sort_values(["contract_id", "period_start"], kind="stable").reset_index(drop=True)


def overlap_days(frame: pd.DataFrame, start: str, end: str, win_start: str, win_end: str) -> pd.Series:
    """Days of [start, end] (end empty: open) inside [win_start, win_end], 0 when disjoint."""
    lo = frame[start].where(frame[start] > frame[win_start], frame[win_start])
    e = frame[end].fillna(frame[win_end])
    hi = e.where(e < frame[win_end], frame[win_end])
    days = (hi - lo).dt.days + 1
    return days.clip(lower=0).fillna(0).astype("int64")


def overlapping_intervals(frame: pd.DataFrame, keys: list[str], start: str, end: str) -> pd.DataFrame:
    """Rows whose interval overlaps the previous interval of the same keys: columns ``_line`` and ``_prev_line``."""
    if frame.empty:
        return frame.assign(_prev_line=pd.Series(dtype="int64"))
    s = frame.sort_values([*keys, start, "_line"], kind="stable")
    far = pd.Timestamp("2262-04-01")
    ends = s[end].fillna(far)
    groups = [s[k] for k in keys]
    # latest end among the earlier rows of the group (built-in grouped shift and cummax, no Python per group)
    prev_end = ends.groupby(groups).shift().groupby(groups).cummax()
    prev_line = s["_line"].groupby([s[k] for k in keys]).shift()
    hit = (prev_end.notna() & (s[start] <= prev_end)).to_numpy()
    out = s[hit].copy()
    # name the earlier row that still runs: the last previous one ending on or after this start
    out["_prev_line"] = prev_line[hit].astype("int64")
    return out


def suspended_days(context, frame: pd.DataFrame, start: str, end: str, contract: str = "contract_id") -> pd.Series:
    """Days of each row's [start, end] (datetime columns, both included) inside a suspension of
    its contract (0 when none). Subtract it from a count of days over ``active_start``..
    ``active_end`` (or any span) so that suspended days pay nothing."""
    out = np.zeros(len(frame), dtype=np.int64)
    for row in context.suspensions.itertuples(index=False):  # one loop per suspension
        mine = (frame[contract] == row.contract_id).to_numpy()
        if not mine.any():
            continue
        lo = frame[start].where(frame[start] > row.start, row.start)
        hi = frame[end].where(frame[end] < row.end, row.end)
        days = ((hi - lo).dt.days + 1).clip(lower=0).fillna(0).to_numpy(dtype=np.int64)
        out += np.where(mine, days, 0)
    return pd.Series(out, index=frame.index, dtype="int64")
