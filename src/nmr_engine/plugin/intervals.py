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
    forward from its start (a full period: its own length). Vectorised over the history (one
    calendar shift per column, no Python per period)."""
    hist = context.history
    contract = hist["contract_id"]
    start = pd.DatetimeIndex(hist["period_start"])
    end = pd.DatetimeIndex(hist["period_end"])
    first = pd.Series(start, index=hist.index).groupby(contract.to_numpy(), sort=False).transform("min").to_numpy()
    last = pd.Series(end, index=hist.index).groupby(contract.to_numpy(), sort=False).transform("max").to_numpy()
    end_excl = end + DAY
    after_start = start + YEAR
    cut = (start.to_numpy() == first) & (end.to_numpy() != last) & (end_excl != after_start)
    nominal = np.where(cut, (end_excl - (end_excl - YEAR)).days, (after_start - start).days).astype(np.int64)
    # the first row of each (contract, period) of the history (drop_duplicates), then an inner merge
    keys = pd.MultiIndex.from_arrays([contract, hist["period_id"]])
    firsts = ~keys.duplicated(keep="first")
    periods = context.periods
    at = keys[firsts].get_indexer(pd.MultiIndex.from_arrays([periods["contract_id"], periods["period_id"]]))
    kept = at >= 0
    out = periods if kept.all() else periods[kept]
    out = out.assign(nominal_days=nominal[firsts][at[kept]])
    codes = pd.factorize(out["contract_id"], sort=True)[0]
    order = np.lexsort((out["period_start"].to_numpy(), codes))  # stable, as sort_values
    return out.iloc[order].reset_index(drop=True)


def overlap_days(frame: pd.DataFrame, start: str, end: str, win_start: str, win_end: str) -> pd.Series:
    """Days of [start, end] (end empty: open) inside [win_start, win_end], 0 when disjoint."""
    lo = frame[start].where(frame[start] > frame[win_start], frame[win_start])
    e = frame[end].fillna(frame[win_end])
    hi = e.where(e < frame[win_end], frame[win_end])
    days = (hi - lo).dt.days + 1
    return days.clip(lower=0).fillna(0).astype("int64")


def clip_intervals(
    start: np.ndarray, end: np.ndarray, win_start: np.ndarray, win_end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`overlap_days` on aligned datetime64 arrays (``end`` NaT: open), with the clipped
    bounds: ``(lo, hi, days)``, ``days`` 0 when disjoint (e.g. rows paired with periods by
    :func:`nmr_engine.plugin.helpers.pair_rows`)."""
    lo = np.where(start > win_start, start, win_start)
    hi = np.where(np.isnat(end), win_end, end)
    hi = np.where(hi < win_end, hi, win_end)
    days = np.clip((hi - lo) // np.timedelta64(1, "D") + 1, 0, None).astype(np.int64)
    return lo, hi, days


def overlapping_intervals(frame: pd.DataFrame, keys: list[str], start: str, end: str) -> pd.DataFrame:
    """Rows whose interval overlaps the previous interval of the same keys: columns ``_line`` and ``_prev_line``."""
    if frame.empty or not _any_overlap(frame, keys, start, end):  # the usual case, decided with NumPy
        return frame.iloc[0:0].assign(_prev_line=pd.Series(dtype="int64"))
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


_DAY_NS = 86_400_000_000_000


def _any_overlap(frame: pd.DataFrame, keys: list[str], start: str, end: str) -> bool:
    """Whether :func:`overlapping_intervals` finds a row (True when unsure: missing or non-day values)."""
    begin = frame[start].to_numpy("datetime64[ns]").view(np.int64)
    stop = frame[end].to_numpy("datetime64[ns]")
    if np.isnat(begin.view("datetime64[ns]")).any():
        return True
    stop = np.where(np.isnat(stop), np.datetime64("2262-04-01", "ns"), stop).view(np.int64)
    if (begin % _DAY_NS).any() or (stop % _DAY_NS).any():
        return True
    code = np.zeros(len(frame), dtype=np.int64)
    for k in keys:
        codes, uniques = pd.factorize(frame[k])
        if (codes < 0).any():
            return True
        code = code * (len(uniques) + 1) + codes
    begin, stop = begin // _DAY_NS, stop // _DAY_NS
    order = np.lexsort((frame["_line"].to_numpy(), begin, code))
    code, begin, stop = code[order], begin[order], stop[order]
    group = np.cumsum(np.r_[True, code[1:] != code[:-1]]) - 1  # 0, 1, 2… per key, in sorted order
    span = int(max(stop.max(), begin.max()) - min(stop.min(), begin.min())) + 1
    shifted = stop - min(stop.min(), begin.min()) + group * span  # each group above the previous ones
    latest = np.maximum.accumulate(shifted) - group * span + min(stop.min(), begin.min())
    same = np.r_[False, code[1:] == code[:-1]]
    return bool((same[1:] & (begin[1:] <= latest[:-1])).any())


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
