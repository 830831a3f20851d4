"""Helpers for plugin authors: turn priced rows into explained payment lines.

Rows are one per payable unit (a patient cycle, a training…), already tagged with
``contract_id`` and ``period_id``; the price comes from a vectorised parameter
lookup (:class:`ParamColumn`). Grouping and summing are vectorised; only the few
resulting lines are explained one by one.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import row_problems  # noqa: F401 - re-exported for plugin authors
from ..inputs.snapshots import (
    frozen_data,
    keep_positions,
    kept_origin,
    positions_name,
    read_positions,
    values_digest,
)
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
    # Python ints once for all parts (a NumPy scalar per part converts slowly)
    p_version, p_amount, p_count = p_version.tolist(), p_amount.tolist(), p_count.tolist()
    sources = groups.source_texts(file)
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds.tolist())):
        contract_id, period_id = groups.keys[i]
        if hi - lo == 1:  # one price for the whole line (the usual case): its part is the line
            v, a, qty = p_version[lo], p_amount[lo], p_count[lo]
            used, total, units = [price.versions[v]], qty * a, [a]
            formula = f"{qty} {unit_word} × {format_eur(a)} = {format_eur(total)}"
        else:
            items = list(zip(p_version[lo:hi], p_amount[lo:hi], p_count[lo:hi], strict=True))
            used = [price.versions[v] for v in dict.fromkeys(v for v, _, _ in items)]
            qty = sum(n for _, _, n in items)
            total = sum(n * a for _, a, n in items)
            units = sorted({a for _, a, _ in items})
            formula = (
                " + ".join(
                    f"{n} {unit_word} × {format_eur(a)} (valeur du {price.versions[v].start:%d/%m/%Y})"
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
                    inputs=((f"{unit_word} retenus", f"{qty} ({sources[i]})"),),
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

    def grouped(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows`` reordered group after group (one copy; then each group is a cheap slice)."""
        return rows.iloc[self._positions[self.order]]

    def rows_of(self, grouped: pd.DataFrame, i: int, attrs: dict) -> pd.DataFrame:
        """The rows of group ``i`` (original order) from :meth:`grouped`, with ``attrs``."""
        group = grouped.iloc[self.starts[i] : self.ends[i]]
        group.attrs = dict(attrs)
        return group

    def source_texts(self, file: str, limit: int = 8) -> list[str]:
        """'sessions.csv, ligne(s) 2, 5, 9…' (:func:`source_lines`) of every group, from one sort
        of all the rows' lines (by group, then line; none when the rows are in file order), only
        the first ``limit`` lines of each group made text."""
        if not self.count:
            return []
        lines = self.lines_sorted
        rising = lines[1:] > lines[:-1]
        rising[self.starts[1:] - 1] = True  # a new group may start lower
        # rows in file order keep their lines in order within each group: no sort then
        first = lines if rising.all() else lines[sort_rows([self.sorted_code, lines])]
        return _runs_texts(file, first, self.starts, self.ends, limit)


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
            *(info[col].tolist() for col in ("contract_id", "period_id", "payee_id")),
            info["period_end"],
            strict=True,
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
    sources = groups.source_texts(file)
    sizes = (groups.ends - groups.starts).tolist()
    parameters = tuple(parameters)
    records = []
    for i in range(groups.count):
        contract_id, period_id = groups.keys[i]
        n = sizes[i]
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
                    inputs=((f"{unit_word} concernés", f"{n} ({sources[i]})"),),
                    parameters=parameters,
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
    out = rows[in_computed_periods_mask(context, rows)].reset_index(drop=True)
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


def lines_texts(file: str, lines: np.ndarray, group: np.ndarray, n: int, limit: int = 8) -> list[str | None]:
    """:func:`lines_text` of the rows of each group ``0`` to ``n - 1`` at once (None: a group
    without rows), from the rows' file ``lines`` and ``group`` (aligned, any order): one text per
    result of a module without a pass per result. No sort when the lines rise row after row and
    each group is one run of rows (a file in contract order); one stable sort by group when only
    the lines rise; otherwise one sort by group and line. Only the first ``limit`` lines of each
    group are made text."""
    lines, group = np.asarray(lines), np.asarray(group)
    if not group.size:
        return [None] * n
    runs = np.flatnonzero(group[1:] != group[:-1]) + 1
    rising = bool((lines[1:] > lines[:-1]).all())
    if rising and np.unique(group[np.r_[0, runs]]).size == runs.size + 1:  # one run per group
        starts = np.zeros(n, dtype=np.int64)
        ends = np.zeros(n, dtype=np.int64)
        starts[group[np.r_[0, runs]]] = np.r_[0, runs]
        ends[group[np.r_[0, runs]]] = np.r_[runs, group.size]
        ordered = lines
    else:
        order = sort_rows([group] if rising else [group, lines])
        bounds = np.searchsorted(group[order], np.arange(n + 1))
        starts, ends = bounds[:-1], bounds[1:]
        ordered = lines[order]
    texts = _runs_texts(file, ordered, starts, ends, limit)
    return [text if size else None for text, size in zip(texts, (ends - starts).tolist(), strict=True)]


def _runs_texts(file: str, lines: np.ndarray, starts: np.ndarray, ends: np.ndarray, limit: int) -> list[str]:
    """:func:`lines_text` of each run ``lines[starts[i]:ends[i]]`` (ascending): only the first
    ``limit`` lines of each run made Python ints, then text."""
    sizes = ends - starts
    shown = np.minimum(sizes, limit)
    offset = np.arange(int(shown.sum())) - np.repeat(np.cumsum(shown) - shown, shown)
    texts = list(map(str, lines[np.repeat(starts, shown) + offset].tolist()))
    last = np.cumsum(shown).tolist()
    return [
        _lines_text(file, texts[end - k : end], more)
        for end, k, more in zip(last, shown.tolist(), (sizes > limit).tolist(), strict=True)
    ]


def lines_text(file: str, lines, limit: int = 8) -> str:
    """As :func:`source_lines`, from the file's name and the rows' ``_line`` values (any order):
    no frame to build for each line of a result."""
    return _format_lines(file, np.sort(np.asarray(lines)), limit)


def _format_lines(file: str, lines: np.ndarray, limit: int = 8) -> str:
    shown = list(map(str, np.asarray(lines[:limit]).tolist()))  # Python ints: str() of numpy ints is slow
    return _lines_text(file, shown, len(lines) > limit)


def _lines_text(file: str, shown: list[str], more: bool) -> str:
    """'sessions.csv, ligne(s) 2, 5, 9…': the lines shown, and "…" when there are more."""
    return f"{file}, ligne(s) {', '.join(shown)}{'…' if more else ''}"


#: Rows at a time where a pass would otherwise make an array of every row (e.g. positions).
_CHUNK = 1 << 20


def _or_positions(packed: np.ndarray) -> None:
    """Each row's position OR-ed into ``packed`` (int64, in place), a chunk of rows at a time:
    no array of every position."""
    n = len(packed)
    for start in range(0, n, _CHUNK):
        packed[start : start + _CHUNK] |= np.arange(start, min(start + _CHUNK, n), dtype=np.int64)


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
    _or_positions(packed)
    packed.sort()
    packed &= (1 << row_bits) - 1  # the row positions, in place
    return packed


def sort_key(key: np.ndarray, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Row order by one non-negative integer ``key`` (ties in row order, as :func:`sort_rows`) and
    ``key`` in that order: both read from the one packed sort (the sorted key is not gathered
    from the rows again, a pass of random reads at millions of rows). ``overwrite``: an int64
    ``key`` may be sorted in place (then returned as the sorted key), sparing a copy."""
    key = np.asarray(key)
    n = len(key)
    if n == 0:
        return np.zeros(0, dtype=np.int64), key.astype(np.int64)
    row_bits = max(int(n - 1).bit_length(), 1)
    if int(key.min()) < 0 or (int(key.max()) + 1).bit_length() + row_bits > 63:
        order = sort_rows([key])
        return order, key[order].astype(np.int64, copy=False)
    in_place = overwrite and key.dtype == np.int64 and key.flags.writeable
    packed = np.left_shift(key, row_bits, out=key if in_place else None, dtype=np.int64)
    _or_positions(packed)
    packed.sort()
    order = packed & ((1 << row_bits) - 1)
    packed >>= row_bits  # the keys, in place
    return order, packed


# -- row lookups on keys (appended: generic, for any plugin) ----------------------------------
def joint_codes(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes of ``a`` and ``b`` in one space of equal values (0 for a missing value, so two missing
    values are equal), and the size of that space. Two categorical columns are coded through their
    categories (no pass over the values' texts)."""
    if isinstance(a.dtype, pd.CategoricalDtype) and isinstance(b.dtype, pd.CategoricalDtype):
        na = len(a.cat.categories)
        both = pd.concat([a.cat.categories.to_series(), b.cat.categories.to_series()], ignore_index=True)
        codes, uniques = pd.factorize(both)
        per_a, per_b = np.append(codes[:na] + 1, 0), np.append(codes[na:] + 1, 0)
        return per_a[a.cat.codes.to_numpy()], per_b[b.cat.codes.to_numpy()], len(uniques) + 1
    if _text_like(a) and _text_like(b):  # one categorical: the other's values among its categories
        if isinstance(a.dtype, pd.CategoricalDtype):
            return _category_codes(a, b)
        if isinstance(b.dtype, pd.CategoricalDtype):
            codes_b, codes_a, span = _category_codes(b, a)
            return codes_a, codes_b, span
    a, b = (s.astype(str) if isinstance(s.dtype, pd.CategoricalDtype) else s for s in (a, b))
    codes, uniques = pd.factorize(pd.concat([a, b], ignore_index=True))
    return codes[: len(a)] + 1, codes[len(a) :] + 1, len(uniques) + 1


def _text_like(values: pd.Series) -> bool:
    """Text values, or a categorical of text categories."""
    dtype = values.cat.categories.dtype if isinstance(values.dtype, pd.CategoricalDtype) else values.dtype
    return isinstance(dtype, pd.StringDtype)


def _category_codes(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`joint_codes` of a categorical ``a`` and a text column ``b``: ``b``'s values found
    among ``a``'s categories, the others coded after them."""
    categories = a.cat.categories
    at = categories.get_indexer(b)
    codes_b = at.astype(np.int64) + 1
    other = (at < 0) & b.notna().to_numpy()
    extra, uniques = pd.factorize(b[other])
    codes_b[other] = len(categories) + 1 + extra
    return a.cat.codes.to_numpy().astype(np.int64) + 1, codes_b, len(categories) + len(uniques) + 1


def row_positions(table: pd.DataFrame, columns: Sequence[str], rows: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """For each row of ``rows``, the position in ``table`` of the row whose ``columns`` equal its
    ``keys`` (-1 when none); ``table`` must be unique on ``columns`` (e.g. a declared unique key).
    Missing values are equal to each other, as in :func:`joint_codes`.

    Fast path, exact: categorical columns by their joint codes, fixed-width text columns by their
    bytes read in place as 64-bit words; the words of each key are hashed to one integer, rows are
    matched on that hash and every match is then checked word by word. Other columns, a hash shared
    by two rows of ``table`` or a match that is not equal fall back to :func:`joint_codes` on every
    column (the straightforward path, which also raises on a ``table`` that is not unique).

    The answers of the last few calls are kept (e.g. from a plugin's checks to its calculation):
    asked again for the same two frames, an answer is given again when their key columns are
    seen unchanged. An Arrow-backed text column is unchanged when it still holds the same Arrow
    array (Arrow arrays are immutable: pandas replaces the array when a value is set), a
    categorical column of a kept table when it still holds the same read-only codes and
    categories (:func:`~nmr_engine.inputs.snapshots.frozen_data`); any other column is unchanged
    when every row is found again at its row with equal key words (a frame changed otherwise, or
    a row not found, is looked up anew).

    When one side's key columns are still columns read from a table kept on disk, and the other
    side's too or that side is a small frame (named by its values), the answer is kept next to
    the tables and read back by the next runs (see :mod:`nmr_engine.inputs.snapshots`)."""
    key = (id(table), id(rows), tuple(columns), tuple(keys))
    held = [frozen_data(table[c]) for c in columns] + [frozen_data(rows[k]) for k in keys]
    last = _LAST_POSITIONS.get(key)
    if last is not None and last[0]() is table and last[1]() is rows and _same_data(held, last[3]):
        sides = zip(held[: len(columns)], held[len(columns) :], strict=True)
        proven = [a is not None and b is not None for a, b in sides]
        other = [i for i, sure in enumerate(proven) if not sure]
        if not other:  # the same key values: the same answer
            return last[2].copy()
        words = _key_words(table, [columns[i] for i in other], rows, [keys[i] for i in other], copy=False)
        if words is not None and _all_equal(*words, last[2], runs=len(other) == len(columns)):
            return last[2].copy()
    kept = _kept_lookup(table, columns, rows, keys)
    found = read_positions(*kept, len(rows), len(table)) if kept is not None else None
    if found is None:
        words = _key_words(table, columns, rows, keys)
        found = _hash_match(*words) if words is not None else None
        if found is None:
            found = _row_positions_exact(table, columns, rows, keys)
            if kept is not None:
                keep_positions(*kept, found)
            return found
        if kept is not None:
            keep_positions(*kept, found)
    while len(_LAST_POSITIONS) >= 4:  # the last few answers only
        del _LAST_POSITIONS[next(iter(_LAST_POSITIONS))]
    _LAST_POSITIONS[key] = (weakref.ref(table), weakref.ref(rows), found.copy(), held)
    for frame in (table, rows):  # the arrays held are let go with their frames
        weakref.finalize(frame, _LAST_POSITIONS.pop, key, None)
    return found


def _kept_lookup(table, columns, rows, keys) -> tuple[Path, str] | None:
    """(store folder, file name) of the lookup kept for these key columns: when one side's key
    columns are columns read from a kept table (see
    :func:`~nmr_engine.inputs.snapshots.kept_origin`) and the other side's are too (same store),
    or are a small frame named by its values (:func:`~nmr_engine.inputs.snapshots.values_digest`,
    e.g. the general practitioners selected from a small table); else None."""
    sides = [(table, list(columns)), (rows, list(keys))]
    named: list[list[str] | None] = []
    folders = set()
    for frame, names in sides:
        origins = [kept_origin(frame[c]) for c in names]
        if origins and all(o is not None for o in origins):
            folders |= {o[0] for o in origins}
            named.append([o[1] for o in origins])
        else:
            named.append(None)
    if len(folders) != 1:  # neither side kept, or kept in two stores
        return None
    for i, (frame, names) in enumerate(sides):
        if named[i] is None:
            digest = values_digest(frame, names) if len(frame) <= DIGESTED_ROWS else None
            if digest is None:
                return None
            named[i] = [digest]
    return folders.pop(), positions_name(named[0], named[1])


#: A side of a row lookup that is not a kept table is named by its values up to this many rows.
DIGESTED_ROWS = 100_000


#: The last answers of :func:`row_positions`: (table id, rows id, columns, keys) -> (weak
#: references to the two frames, positions, the key columns' Arrow arrays or None).
_LAST_POSITIONS: dict = {}


def _same_data(now: list, before: list) -> bool:
    """Whether each column holds the same objects as before (:func:`frozen_data`; None: either)."""
    if len(now) != len(before):
        return False
    for a, b in zip(now, before, strict=True):
        if (a is None) != (b is None) or (a is not None and any(x is not y for x, y in zip(a, b, strict=True))):
            return False
    return True


def _all_equal(left: list[np.ndarray], right: list[np.ndarray], found: np.ndarray, runs: bool = True) -> bool:
    """Whether every row of ``right`` is found (``found`` ≥ 0) at a row of ``left`` with equal words.
    ``runs``: the words are the whole key (equal rows in a run are found at one row)."""
    if len(found) != (len(right[0]) if right else 0) or (found < 0).any() or (found >= len(left[0])).any():
        return False
    runs = _runs(right) if runs else None
    if runs is not None:  # a row equal to the one before it must be found at the same row
        starts, run = runs
        if (found != found[starts][run]).any():
            return False
        right, found = [w[starts] for w in right], found[starts]
    return all((lw[found] == rw).all() for lw, rw in zip(left, right, strict=True))


def _runs(words: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """Runs of consecutive rows with equal words (a table sorted on its key has few): the first
    row of each run and each row's run; None when runs would not save much."""
    n = len(words[0]) if words else 0
    if n < 2:
        return None
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for w in words:
        new[1:] |= w[1:] != w[:-1]
    starts = np.flatnonzero(new)
    if starts.size > 0.7 * n:
        return None
    return starts, np.cumsum(new) - 1


def _row_positions_exact(table: pd.DataFrame, columns: Sequence[str], rows: pd.DataFrame, keys: Sequence[str]):
    """:func:`row_positions` through :func:`joint_codes` and a pandas index (the reference path)."""
    left = np.zeros(len(table), dtype=np.int64)
    right = np.zeros(len(rows), dtype=np.int64)
    for column, key in zip(columns, keys, strict=True):
        a, b, span = joint_codes(table[column], rows[key])
        left = left * span + a
        right = right * span + b
    return pd.Index(left).get_indexer(right)


_MIX = np.uint64(0xBF58476D1CE4E5B9)


def _key_words(table, columns, rows, keys, copy: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Exact 64-bit words of every key column on both sides (equal words ⇔ equal values), or None
    when a column has no such form (then the exact path is taken); ``copy`` False: text words are
    views of the Arrow buffers (to read a few rows)."""
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    for column, key in zip(columns, keys, strict=True):
        a, b = table[column], rows[key]
        if isinstance(a.dtype, pd.CategoricalDtype) and isinstance(b.dtype, pd.CategoricalDtype):
            codes_a, codes_b, _ = joint_codes(a, b)
            left.append(codes_a.astype(np.uint64))
            right.append(codes_b.astype(np.uint64))
            continue
        words_a, words_b = _text_words(a, copy), _text_words(b, copy)
        if words_a is None or words_b is None or len(words_a) != len(words_b):
            return None
        if words_a and words_b and (words_a[0][1] != words_b[0][1]):  # widths differ
            return None
        left += [w for w, _ in words_a]
        right += [w for w, _ in words_b]
    return left, right


def _text_words(values: pd.Series, copy: bool = True) -> list[tuple[np.ndarray, int]] | None:
    """The UTF-8 bytes of an Arrow-backed text column whose values all have one width and none is
    missing, as (uint64 words, width) read in place from its buffers; None for any other column."""
    if not isinstance(values.dtype, pd.StringDtype) or values.dtype.storage != "pyarrow":
        return None
    import pyarrow as pa

    per_chunk: list[list[np.ndarray]] = []
    width = None
    for chunk in pa.chunked_array(values.array.__arrow_array__()).chunks:
        if not len(chunk):
            continue
        if chunk.null_count or not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return None
        _, offsets, data = chunk.buffers()
        kind = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(offsets, dtype=kind)[chunk.offset : chunk.offset + len(chunk) + 1].astype(np.int64)
        width = int(offsets[1] - offsets[0]) if width is None else width
        if (np.diff(offsets) != width).any():
            return None
        per_chunk.append(_fixed_width_words(data, int(offsets[0]), len(chunk), width, copy))
    if width is None:
        return []
    columns = [np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*per_chunk, strict=True)]
    return [(c, width) for c in columns]


def _fixed_width_words(data, base: int, n: int, width: int, copy: bool = True) -> list[np.ndarray]:
    """``n`` strings of ``width`` bytes from ``base`` in ``data`` as uint64 words: bytes [0, 8),
    [8, 16)… and the last 8 (overlapping), so that every byte is in some word; byte by byte when
    shorter than 8."""
    if width == 0:
        return [np.zeros(n, dtype=np.uint64)]
    if width < 8:
        byte = [np.ndarray((n,), "u1", buffer=data, offset=base + s, strides=(width,)) for s in range(width)]
        return [b.astype(np.uint64) for b in byte]
    starts = [*range(0, width - 7, 8), *([width - 8] if width % 8 else [])]
    words = [np.ndarray((n,), "<u8", buffer=data, offset=base + s, strides=(width,)) for s in starts]
    # copied to aligned contiguous arrays: hashing and gathering them is then faster than the copy
    return [w.copy() for w in words] if copy else words


def _hash64(words: list[np.ndarray], n: int) -> np.ndarray:
    h = np.full(n, 0x9E3779B97F4A7C15, dtype=np.uint64)
    for w in words:
        h = (h ^ w) * _MIX
        h ^= h >> np.uint64(31)
    return h


def _bit_of(word: np.ndarray, bits: int) -> np.ndarray:
    """A slot among 2**bits for each word (the high bits of a multiplicative hash)."""
    return (word * _MIX) >> np.uint64(64 - bits)


def _hash_match(left: list[np.ndarray], right: list[np.ndarray], runs: bool = True) -> np.ndarray | None:
    """Positions of ``right`` keys in ``left`` (unique) matched on hashes and checked word by word;
    None when a hash is shared by two ``left`` rows or a match is not equal. Runs of equal
    ``right`` keys are looked up once (``runs``)."""
    n_left, n_right = len(left[0]) if left else 0, len(right[0]) if right else 0
    if not n_left or not n_right:
        return np.full(n_right, -1, dtype=np.int64)
    found_runs = _runs(right) if runs else None
    if found_runs is not None:
        starts, run = found_runs
        found = _hash_match(left, [w[starts] for w in right], runs=False)
        return None if found is None else found[run]
    if n_left <= n_right:  # index the smaller side
        index = pd.Index(_hash64(left, n_left).view(np.int64))
        if not index.is_unique:
            return None
        found = index.get_indexer(_hash64(right, n_right).view(np.int64))
    else:  # the distinct keys of ``right``, each found among ``left``
        codes, uniques = pd.factorize(_hash64(right, n_right).view(np.int64))
        # a bit table on one word first: most ``left`` rows leave there, neither hashed nor searched
        bits = int(np.clip(np.ceil(np.log2(8 * len(uniques))), 10, 26))
        table = np.zeros(1 << bits, dtype=bool)
        table[_bit_of(right[-1], bits)] = True
        candidates = np.flatnonzero(table[_bit_of(left[-1], bits)])
        hit = pd.Index(uniques).get_indexer(_hash64([w[candidates] for w in left], len(candidates)).view(np.int64))
        matched = hit >= 0
        hit, matched_rows = hit[matched], candidates[matched]
        if np.bincount(hit, minlength=len(uniques)).max(initial=0) > 1:
            return None
        at = np.full(len(uniques), -1, dtype=np.int64)
        at[hit] = matched_rows
        found = at[codes]
    hits = np.flatnonzero(found >= 0)
    if any((lw[found[hits]] != rw[hits]).any() for lw, rw in zip(left, right, strict=True)):
        return None
    return found.astype(np.int64)


class VersionsAt:
    """``context.at(name, day, contract_id)`` asked once per (name, day) for the contracts without
    an override of ``name`` (their answer does not depend on the contract), once per (name, day,
    contract) for the others: the same versions and the same stale-value warnings as each call,
    for loops over thousands of contract periods that share a few first days."""

    def __init__(self, context: CalculationContext):
        self.context = context
        self.overridden = {(contract_id, name) for contract_id, name in context.parameters.overrides()}
        self.found: dict = {}

    def __call__(self, name: str, day, contract_id: str | None = None) -> ParameterVersion | None:
        key = (name, day, contract_id if (contract_id, self.context.param(name)) in self.overridden else None)
        if key not in self.found:
            self.found[key] = self.context.at(name, day, contract_id)
        return self.found[key]


def key_codes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Integer codes of the rows' values on ``columns``: equal codes ⇔ equal values (missing values
    equal to each other, as ``drop_duplicates`` has them), codes from 0 to the number of distinct
    keys - 1 (any order). For de-duplicating or grouping a big table on a text key.

    Fast path, exact: the columns' 64-bit words (as :func:`row_positions`: categorical codes,
    fixed-width Arrow text in place, other columns' factorised codes) hashed to one integer, then
    every row checked word by word against the first row of its code; a hash shared by two
    different keys falls back to combining the columns' factorised codes."""
    words = []
    for column in columns:
        values = frame[column]
        text = None if isinstance(values.dtype, pd.CategoricalDtype) else _text_words(values)
        words += [w for w, _ in text] if text else [_exact_codes(values).astype(np.uint64)]
    runs = _runs(words)  # consecutive equal keys (a table in key order): coded once
    starts, run = runs if runs is not None else (None, None)
    if starts is not None:
        words = [w[starts] for w in words]
    n = len(words[0]) if words else len(frame)
    codes, _ = pd.factorize(_hash64(words, n).view(np.int64))
    first = np.full(int(codes.max(initial=-1)) + 1, n, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(n, dtype=np.int64))
    if all((w[first[codes]] == w).all() for w in words):
        return (codes if run is None else codes[run]).astype(np.int64)
    n = len(frame)
    code = np.zeros(n, dtype=np.int64)
    for column in columns:  # the exact path: one code space after another, kept small
        values = _exact_codes(frame[column])
        code = pd.factorize(code * (int(values.max(initial=0)) + 1) + values)[0].astype(np.int64)
    return code


def _exact_codes(values: pd.Series) -> np.ndarray:
    """Codes of a column's values, 0 for a missing value (categories' codes when categorical)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy().astype(np.int64) + 1
    return pd.factorize(values)[0].astype(np.int64) + 1


def in_computed_periods_mask(context: CalculationContext, rows: pd.DataFrame) -> np.ndarray:
    """Which rows (with ``contract_id`` and ``period_id``) belong to a (contract, period) being
    computed: the rows that :func:`in_computed_periods` keeps, as a boolean array. Two categorical
    key columns are answered by a table over their categories (no pass over texts or tuples)."""
    contract, period = rows["contract_id"], rows["period_id"]
    categorical = isinstance(contract.dtype, pd.CategoricalDtype) and isinstance(period.dtype, pd.CategoricalDtype)
    if not categorical or len(contract.cat.categories) * len(period.cat.categories) > 50_000_000:
        wanted = pd.MultiIndex.from_arrays([context.periods["contract_id"], context.periods["period_id"]])
        return np.asarray(pd.MultiIndex.from_arrays([contract, period]).isin(wanted), dtype=bool)
    c = contract.cat.categories.get_indexer(context.periods["contract_id"])
    p = period.cat.categories.get_indexer(context.periods["period_id"])
    grid = np.zeros((len(contract.cat.categories) + 1, len(period.cat.categories) + 1), dtype=bool)  # last: missing
    known = (c >= 0) & (p >= 0)
    grid[c[known], p[known]] = True
    return grid[contract.cat.codes.to_numpy(), period.cat.codes.to_numpy()]
