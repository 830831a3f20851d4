"""Helpers for plugin authors: turn priced rows into explained payment lines.

Rows are one per payable unit (a patient cycle, a training…), already tagged with
``contract_id`` and ``period_id``; the price comes from a vectorised parameter
lookup (:class:`ParamColumn`). Grouping and summing are vectorised; only the few
resulting lines are explained one by one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import row_problems  # noqa: F401 - re-exported for plugin authors
from ..money import format_eur
from ..parameters.model import ParamColumn, ParameterVersion
from .api import CalculationContext, Explanation

KEYS = ["contract_id", "period_id"]


def period_info(context: CalculationContext) -> pd.DataFrame:
    """(contract_id, period_id) -> payee_id, period_end: defaults for a line's payee and due date."""
    return context.history[["contract_id", "period_id", "payee_id", "period_start", "period_end"]]


def priced_lines(
    context: CalculationContext,
    rows: pd.DataFrame,
    price: ParamColumn,
    *,
    component: str,
    label: str,
    unit_word: str,
    amounts: np.ndarray | None = None,
    extra_parameters: Sequence[ParameterVersion] | Callable[[pd.DataFrame], Sequence[ParameterVersion]] = (),
) -> list[dict]:
    """One line per (contract, period): quantity = number of rows, amount = Σ price in force.

    ``price`` is the lookup made on ``rows`` (aligned); ``amounts`` (cents per row) replaces
    its values when the price is read from a table (e.g. a tier). When the price changed
    inside the period, the explanation lists each part. Rows carry ``_line``.
    ``extra_parameters`` may be a callable of the (contract, period) group's rows."""
    if rows.empty:
        return []
    groups = _Groups(rows)
    if not groups.count:
        return []
    version = np.asarray(price.index, dtype=np.int64)[groups.valid]
    amount = (price.values(missing=0) if amounts is None else np.asarray(amounts, dtype=np.int64))[groups.valid]
    # Count the rows of each (group, version, amount): the parts of a line's formula, sorted.
    g, v, a = groups.code, version, np.asarray(amount, dtype=np.int64)
    order = np.lexsort((a, v, g))
    g, v, a = g[order], v[order], a[order]
    first = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (v[1:] != v[:-1]) | (a[1:] != a[:-1])])
    p_group, p_version, p_amount = g[first], v[first], a[first]
    p_count = np.diff(np.r_[first, g.size])
    bounds = np.flatnonzero(np.r_[True, p_group[1:] != p_group[:-1], True])
    info = _period_lookup(context)
    file = rows.attrs.get("file", "?")
    grouped = groups.grouped(rows) if callable(extra_parameters) else None
    records = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        contract_id, period_id = groups.keys[i]
        items = [(int(p_version[j]), int(p_amount[j]), int(p_count[j])) for j in range(lo, hi)]
        used = [price.versions[v] for v in dict.fromkeys(v for v, _, _ in items)]
        qty = sum(n for _, _, n in items)
        total = sum(n * a for _, a, n in items)
        units = sorted({a for _, a, _ in items})
        formula = (
            " + ".join(
                f"{n} {unit_word} × {format_eur(a)} (valeur du {price.versions[v].start:%d/%m/%Y})"
                if len(items) > 1
                else f"{n} {unit_word} × {format_eur(a)}"
                for v, a, n in items
            )
            + f" = {format_eur(total)}"
        )
        records.append(
            _record(
                context,
                contract_id,
                period_id,
                info[(contract_id, period_id)],
                component,
                label,
                qty,
                units[0] if len(units) == 1 else pd.NA,
                total,
                Explanation(
                    summary=f"{label} : {qty} {unit_word}",
                    formula=formula,
                    inputs=((f"{unit_word} retenus", f"{qty} ({groups.source_lines(i, file)})"),),
                    parameters=(
                        *used,
                        *(
                            extra_parameters(groups.rows_of(grouped, i, rows.attrs))
                            if callable(extra_parameters)
                            else extra_parameters
                        ),
                    ),
                ),
            )
        )
    return records


class _Groups:
    """The rows of each (contract, period), in the order ``groupby(KEYS, sort=True)`` gives,
    found with integer codes and one sort instead of a pandas group per line."""

    def __init__(self, rows: pd.DataFrame):
        contract = rows["contract_id"]
        period = rows["period_id"]
        self.valid = _present(contract) & _present(period)  # groupby drops missing keys
        c_code, c_values = pd.factorize(contract[self.valid], sort=True)
        p_code, p_values = pd.factorize(period[self.valid], sort=True)
        code = c_code.astype(np.int64) * max(len(p_values), 1) + p_code
        lines = rows["_line"].to_numpy()[self.valid]
        # By group, then by original position (what a pandas group holds, in that order).
        self.order = np.argsort(code, kind="stable")
        self.sorted_code = code[self.order]
        self.code = code
        starts = np.flatnonzero(np.r_[True, self.sorted_code[1:] != self.sorted_code[:-1]]) if code.size else []
        self.starts = np.asarray(starts, dtype=np.int64)
        self.ends = np.r_[self.starts[1:], code.size].astype(np.int64)
        self.count = len(self.starts)
        first = self.sorted_code[self.starts] if self.count else np.array([], dtype=np.int64)
        n_periods = max(len(p_values), 1)
        c_values, p_values = np.asarray(c_values, dtype=object), np.asarray(p_values, dtype=object)
        self.keys = list(zip(c_values[first // n_periods], p_values[first % n_periods], strict=True))
        self.lines_sorted = lines[self.order]
        self._positions = np.flatnonzero(self.valid)

    def size(self, i: int) -> int:
        return int(self.ends[i] - self.starts[i])

    def grouped(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows`` reordered group after group (one copy; then each group is a cheap slice)."""
        return rows.iloc[self._positions[self.order]]

    def rows_of(self, grouped: pd.DataFrame, i: int, attrs: dict) -> pd.DataFrame:
        """The rows of group ``i`` (original order) from :meth:`grouped`, with ``attrs``."""
        group = grouped.iloc[self.starts[i] : self.ends[i]]
        group.attrs = dict(attrs)
        return group

    def source_lines(self, i: int, file: str, limit: int = 8) -> str:
        lines = np.sort(self.lines_sorted[self.starts[i] : self.ends[i]])
        return _format_lines(file, lines, limit)


def _present(values: pd.Series) -> np.ndarray:
    """Not missing, as a boolean array (a category's codes say it without a pass over the values)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy() >= 0
    return values.notna().to_numpy()


_PERIOD_CACHE: list = [None, None]  # (history frame, lookup) of the last context


def _period_lookup(context: CalculationContext) -> dict:
    """(contract_id, period_id) -> {payee_id, period_end} of the module's history (cached)."""
    if _PERIOD_CACHE[0] is context.history:
        return _PERIOD_CACHE[1]
    info = context.history  # its columns as period_info gives them, without the frame copy
    _PERIOD_CACHE[1] = {
        (c, p): {"payee_id": payee, "period_end": end}
        for c, p, payee, end in zip(
            info["contract_id"], info["period_id"], info["payee_id"], info["period_end"], strict=True
        )
    }
    _PERIOD_CACHE[0] = context.history
    return _PERIOD_CACHE[1]


def _record(context, contract_id, period_id, info_row, component, label, qty, unit, total, explanation) -> dict:
    return {
        "contract_id": contract_id,
        "module": context.module.code,
        "period_id": period_id,
        "component": component,
        "label": label,
        "payee_id": info_row["payee_id"],
        "instalment": "unique",
        "due_date": info_row["period_end"],
        "quantity": qty,
        "unit_amount_cents": unit,
        "amount_cents": total,
        "explanation": explanation,
    }


def zero_lines(
    context: CalculationContext,
    rows: pd.DataFrame,
    *,
    component: str,
    label: str,
    unit_word: str,
    reason: Callable[[pd.DataFrame], str] | Mapping[tuple[str, str], str] | str,
    parameters: Sequence[ParameterVersion] = (),
) -> list[dict]:
    """One zero-amount line per (contract, period) saying why ``rows`` pay nothing.

    ``reason``: a function of the group's rows, or — faster at scale, as no group frame is
    built — the text itself, or a mapping ``(contract_id, period_id) -> text``."""
    if rows.empty:
        return []
    groups = _Groups(rows)
    if isinstance(reason, str):
        text = reason
        reason_of = lambda i: text  # noqa: E731
    elif isinstance(reason, Mapping):
        reason_of = lambda i: reason[groups.keys[i]]  # noqa: E731
    else:
        grouped = groups.grouped(rows)
        reason_of = lambda i: reason(groups.rows_of(grouped, i, rows.attrs))  # noqa: E731
    info = _period_lookup(context)
    file = rows.attrs.get("file", "?")
    records = []
    for i in range(groups.count):
        contract_id, period_id = groups.keys[i]
        n = groups.size(i)
        records.append(
            _record(
                context,
                contract_id,
                period_id,
                info[(contract_id, period_id)],
                component,
                label,
                n,
                0,
                0,
                Explanation(
                    summary=f"{label} : {n} {unit_word}, rien n'est dû",
                    formula=f"{n} {unit_word} × 0,00 € = 0,00 €",
                    inputs=((f"{unit_word} concernés", f"{n} ({groups.source_lines(i, file)})"),),
                    parameters=tuple(parameters),
                    reason=reason_of(i),
                ),
            )
        )
    return records


def in_computed_periods(context: CalculationContext, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows (with ``contract_id`` and ``period_id``) of a (contract, period) being computed
    (``context.periods``), in their order, with their ``attrs`` — what an inner merge on those
    keys gives, without building the merged frame (categories' codes are compared, not texts)."""
    if rows.empty:
        return rows
    wanted = pd.MultiIndex.from_arrays([context.periods["contract_id"], context.periods["period_id"]])
    keys = pd.MultiIndex.from_arrays([rows["contract_id"], rows["period_id"]])
    out = rows[np.asarray(keys.isin(wanted), dtype=bool)].reset_index(drop=True)
    out.attrs = dict(rows.attrs)
    return out


def source_lines(frame: pd.DataFrame, limit: int = 8) -> str:
    """'sessions.csv, lignes 2, 5, 9…' for an explanation."""
    return _format_lines(frame.attrs.get("file", "?"), np.sort(frame["_line"].to_numpy()), limit)


def pair_rows(left: pd.Series, right: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i, j) of every pair with ``left[i] == right[j]``, in the order of an inner merge
    on that key (by ``i``, then ``j``): join two tables by row positions, without copying their
    columns (e.g. each professional's rows with its contract's periods)."""
    codes, uniques = pd.factorize(left)
    right_codes = pd.Index(uniques).get_indexer(right)
    by_code = np.argsort(right_codes, kind="stable")
    sorted_codes = right_codes[by_code]
    first = np.searchsorted(sorted_codes, codes, side="left")
    count = np.searchsorted(sorted_codes, codes, side="right") - first
    count[codes < 0] = 0
    i = np.repeat(np.arange(len(left)), count)
    offset = np.arange(len(i)) - np.repeat(np.cumsum(count) - count, count)
    return i, by_code[np.repeat(first, count) + offset]


def lines_text(file: str, lines, limit: int = 8) -> str:
    """As :func:`source_lines`, from the file's name and the rows' ``_line`` values (any order):
    no frame to build for each line of a result."""
    return _format_lines(file, np.sort(np.asarray(lines)), limit)


def _format_lines(file: str, lines: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(x) for x in lines[:limit])
    more = "…" if len(lines) > limit else ""
    return f"{file}, ligne(s) {shown}{more}"


def sort_rows(keys: Sequence[np.ndarray], sizes: Sequence[int] | None = None) -> np.ndarray:
    """Row order by the non-negative integer ``keys`` (the first the major one), ties in row
    order: what ``np.lexsort(keys[::-1])`` gives (a stable sort).

    ``sizes``: an upper bound (exclusive) of each key, read from the keys when not given. When
    the keys and the row positions fit in one int64, they are packed into it and the values are
    sorted (``np.sort`` of int64 is several times faster than an argsort at millions of rows);
    otherwise ``np.lexsort``."""
    keys = [np.asarray(k) for k in keys]
    n = len(keys[0]) if keys else 0
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if sizes is None:
        sizes = [int(k.max()) + 1 for k in keys]
    row_bits = max(int(n - 1).bit_length(), 1)
    span = 1
    for size in sizes:
        span *= max(int(size), 1)
    if any(int(k.min()) < 0 for k in keys) or span.bit_length() + row_bits > 63:
        return np.lexsort(keys[::-1])
    packed = keys[0].astype(np.int64)  # a copy: the keys are left as they are
    for key, size in zip(keys[1:], sizes[1:], strict=True):
        packed *= max(int(size), 1)
        packed += key
    packed <<= row_bits
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    packed &= (1 << row_bits) - 1  # the row positions, in place
    return packed
