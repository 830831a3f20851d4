"""Core domain model: structures, contracts, their modules and periods (attrs values)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

import attrs
import numpy as np
import pandas as pd

from .periods import DateRange, anchored_periods

STRUCTURE_KINDS = ("MSP", "pole", "centre", "CPTS")
#: The one datetime dtype of every date column the core hands to plugins.
DATE_DTYPE = "datetime64[ns]"


@attrs.frozen
class Structure:
    """A pluri-professional health structure, identified by its FINESS number."""

    finess: str
    name: str
    kind: str
    territory: str
    commune: str = ""


@attrs.frozen
class Payee:
    """Who receives a payment: the structure by default, or another body (e.g. an association)."""

    id: str
    name: str
    iban: str | None = None
    bic: str | None = None


@attrs.frozen
class Enrolment:
    """A module the contract subscribes to, over its own span."""

    module: str
    span: DateRange
    payee: str = "structure"


@attrs.frozen
class ContractEvent:
    """A dated event of a contract's history (signature aside): an amendment, a suspension,
    a resumption or a termination. ``date``: when it takes effect; ``recorded_on``: when the
    engine learned it. ``description``: French summary for statements and explanations."""

    date: dt.date
    recorded_on: dt.date
    kind: str
    reference: str
    description: str
    source: str = ""


@attrs.frozen
class ContractPeriod:
    """One accounting period of a contract (not necessarily a calendar year)."""

    contract_id: str
    span: DateRange

    @property
    def id(self) -> str:
        return self.span.id


@attrs.frozen
class Contract:
    """The convention signed by a structure, the ARS and the caisse."""

    id: str
    structure: Structure
    ars: str
    caisse: str
    signed_on: dt.date
    span: DateRange
    anchor: tuple[int, int]
    enrolments: tuple[Enrolment, ...]
    payees: tuple[Payee, ...]
    source: str = ""
    illustrative: tuple[str, ...] = ()
    #: History (see :mod:`nmr_engine.contracts.history`): spans where the contract is suspended,
    #: the first day it no longer runs after a termination, payee details changed from a date,
    #: the events applied, and the date the engine's knowledge is taken at (None: everything known).
    suspensions: tuple[DateRange, ...] = ()
    terminated_on: dt.date | None = None
    payee_changes: tuple[tuple[dt.date, Payee], ...] = ()
    events: tuple[ContractEvent, ...] = ()
    known_on: dt.date | None = None
    signed_end: dt.date | None = None

    def periods(self) -> list[ContractPeriod]:
        return [ContractPeriod(self.id, span) for span in _cut(self.span, self.anchor)]

    def payee(self, payee_id: str, on: dt.date | None = None) -> Payee | None:
        """The payee's details; with ``on``, as amended up to that date (bank details change)."""
        found = next((p for p in self.payees if p.id == payee_id), None)
        if on is not None:
            for start, payee in self.payee_changes:  # sorted by date
                if payee.id == payee_id and start <= on:
                    found = payee
        return found

    def cut_spans(self) -> list[tuple[DateRange, str]]:
        """Spans inside the signed span where activity pays nothing: suspensions, and the days
        after a termination up to the signed end. Each with a French reason."""
        out = [(s, f"contrat suspendu {s}") for s in self.suspensions]
        if self.terminated_on is not None and self.signed_end is not None and self.terminated_on <= self.signed_end:
            out.append(
                (
                    DateRange(self.terminated_on, self.signed_end),
                    f"contrat résilié à compter du {self.terminated_on:%d/%m/%Y}",
                )
            )
        return out

    def suspended_days(self, span: DateRange) -> int:
        """Number of days of ``span`` inside a suspension."""
        return sum(part.days for s in self.suspensions if (part := s.intersect(span)) is not None)

    def modules(self) -> list[str]:
        return sorted({e.module for e in self.enrolments})


@functools.lru_cache(maxsize=8192)
def _cut(span: DateRange, anchor: tuple[int, int]) -> tuple[DateRange, ...]:
    """The periods of a span (cached: thousands of contracts share a few spans and anchors)."""
    return tuple(anchored_periods(span, *anchor))


def module_periods_frame(contracts: list[Contract], module: str, periods: list[str] | None = None) -> pd.DataFrame:
    """One row per (contract, period) where ``module`` is active, with the active days.

    Columns: contract_id, period_id, period_start, period_end, period_days,
    active_start, active_end, active_days, suspended_days, payee_id, finess, structure_name.
    ``active_days`` leaves out the days the contract is suspended (``suspended_days``): a
    suspension pays nothing for its days; ``active_start``/``active_end`` still bound the span.
    ``periods``: optional filter on period ids or on years (periods starting that year).
    """
    cols, keep = _period_rows(contracts, [module], periods)[module]
    if not all(keep):
        cols = {name: [v for v, k in zip(values, keep, strict=True) if k] for name, values in cols.items()}
    return _periods_frame(cols)


def modules_periods_frames(
    contracts: list[Contract], modules: Sequence[str], periods: list[str] | None = None
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """For each of ``modules``, ``(module_periods_frame(contracts, module), select_periods(it,
    periods))``, from one pass over the contracts."""
    out = {}
    for module, (cols, keep) in _period_rows(contracts, modules, periods).items():
        every = _periods_frame(cols)
        if not periods:
            out[module] = (every, every)
        elif all(keep):
            out[module] = (every, every.copy(deep=False))
        else:
            out[module] = (every, every[np.asarray(keep, dtype=bool)].reset_index(drop=True))
    return out


def _period_rows(
    contracts: list[Contract], modules: Sequence[str], periods: list[str] | None
) -> dict[str, tuple[dict[str, list], list[bool]]]:
    """Per module, the columns of :func:`module_periods_frame` as Python lists (a few contracts
    cost no pandas operation per row), and whether ``periods`` selects each row."""
    found: dict[str, list[tuple]] = {m: [] for m in modules}  # one tuple per row, columns then keep
    chosen: dict[str, bool] = {}
    for contract in contracts:
        enrolments = [e for e in contract.enrolments if e.module in found]
        if not enrolments:
            continue
        structure = contract.structure
        for period in contract.periods():
            span = period.span
            pid = None
            for enrolment in enrolments:
                active = span.intersect(enrolment.span)
                if active is None:
                    continue
                if pid is None:
                    pid = span.id
                    if pid not in chosen:
                        chosen[pid] = not periods or _selected(span, periods)
                suspended = contract.suspended_days(active) if contract.suspensions else 0
                found[enrolment.module].append(
                    (
                        contract.id,
                        pid,
                        span.start,
                        span.end,
                        span.days,
                        active.start,
                        active.end,
                        active.days - suspended,
                        suspended,
                        enrolment.payee,
                        structure.finess,
                        structure.name,
                        chosen[pid],
                    )
                )
    rows = {}
    for module, tuples in found.items():
        width = len(MODULE_PERIOD_COLUMNS) + 1  # the columns, then whether the row is selected
        columns = [list(c) for c in zip(*tuples, strict=True)] if tuples else [[] for _ in range(width)]
        rows[module] = (dict(zip(MODULE_PERIOD_COLUMNS, columns[:-1], strict=True)), columns[-1])
    return rows


_DATE_COLUMNS = ("period_start", "period_end", "active_start", "active_end")
_INT_COLUMNS = ("period_days", "active_days", "suspended_days")


def _periods_frame(cols: dict[str, list]) -> pd.DataFrame:
    data = {}
    for name, values in cols.items():
        if name in _DATE_COLUMNS:
            data[name] = _date_array(values)
        elif name in _INT_COLUMNS:
            data[name] = np.array(values, dtype=np.int64)
        else:  # text: the dtype pandas infers for a list of str (object when empty)
            data[name] = values if values else np.array([], dtype=object)
    return pd.DataFrame(data, columns=MODULE_PERIOD_COLUMNS)


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _date_array(values: list[dt.date]) -> np.ndarray:
    """``np.array(values, dtype="datetime64[D]")`` as :data:`DATE_DTYPE`, through the dates'
    ordinals (NumPy converts date objects one by one much more slowly)."""
    days = np.fromiter(map(dt.date.toordinal, values), dtype=np.int64, count=len(values)) - _EPOCH_ORDINAL
    return days.astype("datetime64[D]").astype(DATE_DTYPE)


def select_periods(frame: pd.DataFrame, periods: list[str] | None) -> pd.DataFrame:
    """The rows of a :func:`module_periods_frame` whose contract period ``periods`` selects
    (same selectors; all rows when None). Decided once per distinct period, not per row."""
    if not periods or frame.empty:
        return frame
    keep: dict[str, bool] = {}
    mask = []
    for pid, start, end in zip(frame["period_id"], frame["period_start"], frame["period_end"], strict=True):
        if pid not in keep:
            keep[pid] = _selected(DateRange(start.date(), end.date()), periods)
        mask.append(keep[pid])
    return frame[np.asarray(mask, dtype=bool)].reset_index(drop=True)


MODULE_PERIOD_COLUMNS = [
    "contract_id",
    "period_id",
    "period_start",
    "period_end",
    "period_days",
    "active_start",
    "active_end",
    "active_days",
    "suspended_days",
    "payee_id",
    "finess",
    "structure_name",
]


def _selected(span: DateRange, selectors: list[str]) -> bool:
    for sel in selectors:
        sel = str(sel)
        if sel == span.id:
            return True
        if sel.isdigit() and len(sel) == 4 and span.start.year == int(sel):
            return True
        if len(sel) == 10:
            try:
                if dt.date.fromisoformat(sel) in span:
                    return True
            except ValueError:
                pass
    return False
