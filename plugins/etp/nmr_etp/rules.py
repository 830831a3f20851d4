"""Module 2 (ETP) rules, vectorised over all contracts of the periods at once.

- Training: each training of a professional pays ``training.amount`` (in force on the
  training date), up to ``training.max_per_professional_per_period`` per professional and
  contract period; the next ones pay nothing and the line says why.
- Structuring: the first claim of a contract pays ``structuring.amount`` once; later claims
  pay nothing ("déjà versé").
- Patient forfait: sessions of one patient in one programme form cycles, each opened by a
  diagnostic (``kind=diagnostic``). A cycle's authorised sessions choose the tier of
  ``patient.tiers`` in force on the cycle's completion date (its last authorised session),
  and the cycle belongs to that date's contract period. Sessions outside the programme's
  ARS authorisation count for nothing; cycles below the first tier pay nothing; above the
  top tier ``patient.above_top_tier`` decides; at most ``patient.max_cycles_per_period``
  cycles per patient, programme and period are paid.
"""

from __future__ import annotations

import attrs
import numpy as np
import pandas as pd

from nmr_engine.plugin import CalculationContext, lines_frame
from nmr_engine.plugin.helpers import in_computed_periods, priced_lines, sort_key, sort_rows, zero_lines


def calculate(context: CalculationContext) -> pd.DataFrame:
    records = []
    records += _trainings(context)
    records += _structuring(context)
    records += _patients(context)
    return lines_frame(records)


# -- trainings --------------------------------------------------------------------------
def _trainings(context: CalculationContext) -> list[dict]:
    t = context.tables["trainings"]
    if t.empty:
        return []
    t = t.sort_values(["contract_id", "professional_id", "period_id", "training_date", "_line"], kind="stable")
    rank = t.groupby(["contract_id", "professional_id", "period_id"]).cumcount() + 1
    cap = context.lookup("training.max_per_professional_per_period", t["contract_id"], t["training_date"])
    paid_mask = rank.to_numpy() <= cap.values(missing=0)
    t = t.assign(_paid=paid_mask)
    t = in_computed_periods(context, t)
    paid, excess = t[t["_paid"]], t[~t["_paid"]]
    price = context.lookup("training.amount", paid["contract_id"], paid["training_date"])
    cap_versions = _versions_used(cap)
    records = priced_lines(
        context,
        paid,
        price,
        component="formation",
        label="Formation de professionnels à l'ETP",
        unit_word="formation(s)",
        extra_parameters=cap_versions,
    )
    records += zero_lines(
        context,
        excess,
        component="formation_au_dela_du_plafond",
        label="Formations au-delà du plafond par professionnel",
        unit_word="formation(s)",
        reason={
            key: (
                f"plafond de {cap_versions[0].value if cap_versions else '?'} formations payées par professionnel "
                f"et par période atteint ({n} professionnel(s) concerné(s))"
            )
            for key, n in _per_period(excess, "professional_id").nunique().items()
        },
        parameters=cap_versions,
    )
    return records


# -- structuring ------------------------------------------------------------------------
def _structuring(context: CalculationContext) -> list[dict]:
    s = context.tables["structuring"]
    if s.empty:
        return []
    s = s.sort_values(["contract_id", "claim_date", "_line"], kind="stable")
    first = ~s.duplicated("contract_id", keep="first")
    first_date = s[first].set_index("contract_id")["claim_date"]
    s = in_computed_periods(context, s.assign(_first=first.to_numpy()))
    paid, again = s[s["_first"]], s[~s["_first"]]
    price = context.lookup("structuring.amount", paid["contract_id"], paid["claim_date"])
    records = priced_lines(
        context,
        paid,
        price,
        component="structuration",
        label="Aide à la structuration initiale du projet",
        unit_word="forfait(s)",
    )
    records += zero_lines(
        context,
        again,
        component="structuration_deja_versee",
        label="Aide à la structuration déjà versée",
        unit_word="demande(s)",
        reason={
            (c, p): f"forfait unique par contrat, déjà accordé sur la demande du {first_date[c]:%d/%m/%Y}"
            for c, p in _per_period(again, "contract_id").size().index
        },
    )
    return records


# -- patient forfaits -------------------------------------------------------------------
# Sessions are put once in (contract, programme, patient, date, diagnostic first, file line) order
# with integer codes (one int64 sort, see :func:`_order_by_key`); cycles are then runs of that
# order, reduced with numpy, and only the cycles (≈ 1 per 5 séances) become a frame.
def _patients(context: CalculationContext) -> list[dict]:
    s = context.tables["sessions"]
    if s.empty:
        return []
    attrs = dict(s.attrs)
    progs = context.tables["programmes"]
    contract_code, contracts = category_codes(s["contract_id"])
    programme_code, programme_ids = category_codes(s["programme_id"])
    # Patients need not be in text order: nothing computed depends on the order between them.
    patient_code, _ = category_codes(s["patient_id"])
    grid = programme_grid(progs, contracts, programme_ids)
    cell = _cells(contract_code, programme_code, len(programme_ids), len(grid) - 1)
    day = _days(s["session_date"], dtype=np.int32)  # half the memory of int64 for 5 M séances
    diag = s["kind"].eq("diagnostic").to_numpy(dtype=bool)
    line = s["_line"].to_numpy()
    # authorised days of each (contract, programme) cell's programme (a missing end: none)
    never = np.iinfo(np.int32).max
    auth_from = np.append(_days(progs["authorised_from"], missing=never, dtype=np.int32), never)[grid]
    auth_to = np.append(_days(progs["authorised_to"], missing=never, dtype=np.int32), never)[grid]
    auth_to[grid < 0] = -1
    authorised = day >= auth_from[cell]
    authorised &= day <= auth_to[cell]

    # Each big array is let go as soon as it is used: the next ones reuse its memory (see
    # nmr_engine.memory), instead of pages never touched before.
    key = _patient_key([cell, patient_code], in_place=True)  # the cells become the keys
    del cell
    in_file_order = bool((line[1:] > line[:-1]).all())
    order, key_s, day_s, diag_s = _order_by_key(key, day, diag, line if not in_file_order else None)
    del key, day, diag
    first_of_patient = np.r_[True, key_s[1:] != key_s[:-1]]
    o_authorised = authorised[order]
    del authorised

    records = []
    rows_out = order[~o_authorised]
    unauthorised = _session_rows(s, rows_out, ["programme_id"], attrs)
    rows_prog = grid[_cells(contract_code[rows_out], programme_code[rows_out], len(programme_ids), len(grid) - 1)]
    for col in ("title", "authorised_from", "authorised_to"):
        unauthorised[col] = _take(progs[col], rows_prog)
    unauthorised = in_computed_periods(context, unauthorised)
    records += zero_lines(
        context,
        unauthorised,
        component="forfait_patient_hors_autorisation",
        label="Séances hors autorisation ARS du programme",
        unit_word="séance(s)",
        reason=_unauthorised_reasons(unauthorised),
    )

    # Cycles: each diagnostic opens one; a patient's séances before any diagnostic form cycle 0.
    starts = np.flatnonzero(first_of_patient | diag_s)
    cycle_zero = ~diag_s[starts]
    in_cycle_zero = np.repeat(cycle_zero, np.diff(np.r_[starts, order.size]))
    candidates = np.flatnonzero(in_cycle_zero & o_authorised)
    diag_required, required = _required_at(context, s, order[candidates])
    orphan_rows = candidates[required]
    orphans = in_computed_periods(context, _session_rows(s, order[orphan_rows], ["patient_id"], attrs))
    records += zero_lines(
        context,
        orphans,
        component="forfait_patient_sans_diagnostic",
        label="Séances sans diagnostic éducatif préalable",
        unit_word="séance(s)",
        reason={
            key: f"aucun diagnostic éducatif n'ouvre le cycle de ces séances ({n} patient(s))"
            for key, n in _per_period(orphans, "patient_id").nunique().items()
        },
        parameters=_versions_used(diag_required),
    )

    # One row per cycle: authorised sessions counted; completion = last authorised row.
    counted = o_authorised.copy()
    counted[orphan_rows] = False
    # A cycle whose diagnostic is not authorised has no authorised diagnostic row.
    keep = np.logical_or.reduceat(counted, starts) & (cycle_zero | o_authorised[starts])
    sessions = _count_within(counted & ~diag_s, starts)[keep]
    if sessions.size == 0:
        return records
    # the rows not counted out of the reductions, in place (the sorted days are not needed after)
    uncounted = ~counted
    day_s[uncounted] = np.iinfo(day_s.dtype).min
    completed_day = np.maximum.reduceat(day_s, starts)[keep]
    starts_kept = starts[keep]
    cycle_contract = contract_code[order[starts_kept]]
    if in_file_order:  # the least file line is the least row: the order, no longer needed, in place
        order[uncounted] = len(line)
        first_line = line[np.minimum.reduceat(order, starts)[keep]]
    else:
        line_s = line[order]
        line_s[uncounted] = np.iinfo(line_s.dtype).max
        first_line = np.minimum.reduceat(line_s, starts)[keep]
    del order
    cycle_patient = key_s[starts_kept]
    completed = (completed_day.astype(np.int64) * _NS_PER_DAY).view("datetime64[ns]")
    # The cycle belongs to the period of its completion date.
    history = context.history
    period_row = _period_rows(history, contracts, cycle_contract, completed)

    # The parameters are read for every cycle (their versions and warnings cover all of them);
    # the lines are made of the cycles of the periods computed only.
    contract_of_cycle = pd.Series(pd.Categorical.from_codes(cycle_contract, categories=contracts))
    tiers = context.lookup("patient.tiers", contract_of_cycle, completed)
    above = context.lookup("patient.above_top_tier", contract_of_cycle, completed)
    tier_no, label_code, labels, beyond_top = _tier_of(sessions, tiers, above)

    # Cap on cycles per patient, programme and period: cycles run in completion order per patient.
    cap = context.lookup("patient.max_cycles_per_period", contract_of_cycle, completed)
    payable = tier_no >= 0
    group_start = np.r_[True, (cycle_patient[1:] != cycle_patient[:-1]) | (period_row[1:] != period_row[:-1])]
    rank = _cumsum_within(payable, group_start)
    over_cap = payable & (period_row >= 0) & (rank > cap.values(missing=0))

    wanted = _selected_history(context)
    sel = np.flatnonzero((period_row >= 0) & np.append(wanted, False)[period_row])
    # contract and period as categories in text order: grouped as their texts, without a text per cycle
    period_code, period_names = pd.factorize(history["period_id"], sort=True)
    cycles = pd.DataFrame(
        {
            "contract_id": pd.Categorical.from_codes(cycle_contract[sel], categories=contracts),
            "period_id": pd.Categorical.from_codes(period_code[period_row[sel]], categories=period_names),
            "completed_on": completed[sel],
            "sessions": sessions[sel],
            "_line": first_line[sel],
        }
    )
    cycles.attrs = dict(attrs)
    tier_no, label_code, beyond_top, over_cap = tier_no[sel], label_code[sel], beyond_top[sel], over_cap[sel]
    payable = tier_no >= 0

    too_few = cycles[tier_no == -1]
    too_few.attrs = dict(attrs)
    records += zero_lines(
        context,
        too_few,
        component="forfait_patient_seances_insuffisantes",
        label="Cycles éducatifs sous le premier palier",
        unit_word="cycle(s)",
        reason=_few_sessions_reasons(too_few),
        parameters=_versions_used(tiers),
    )
    too_many = cycles[tier_no == -2]
    too_many.attrs = dict(attrs)
    records += zero_lines(
        context,
        too_many,
        component="forfait_patient_au_dela_du_dernier_palier",
        label="Cycles éducatifs au-delà du dernier palier",
        unit_word="cycle(s)",
        reason="plus de séances que le dernier palier et règle « nothing » en vigueur",
        parameters=(*_versions_used(tiers), *_versions_used(above)),
    )
    capped = cycles[payable & over_cap]
    capped.attrs = dict(attrs)
    records += zero_lines(
        context,
        capped,
        component="forfait_patient_cycle_supplementaire",
        label="Cycles supplémentaires dans la période",
        unit_word="cycle(s)",
        reason="un seul cycle payé par patient, programme et période (paramètre patient.max_cycles_per_period)",
        parameters=_versions_used(cap),
    )
    paid = payable & ~over_cap
    # The above-top-tier rule explains a line only when it capped one of its cycles: the lines
    # concerned are found once from the cycles' keys, and the rule's versions once for all lines
    # (not a group frame and a pass over every cycle per line).
    above_used = _versions_used(above) if beyond_top[paid].any() else ()
    for code in sorted(np.unique(label_code[paid]).tolist(), key=labels.__getitem__):
        label = labels[code]
        mask = paid & (label_code == code)
        group = cycles[mask]
        group.attrs = dict(attrs)
        price = context.lookup("patient.tiers", group["contract_id"], group["completed_on"])
        amounts = _tier_amounts(tier_no[mask], price)
        lines = priced_lines(
            context,
            group,
            price,
            amounts=amounts,
            component=f"forfait_patient_{label}",
            label=f"Forfait patient, diagnostic et {label.replace('_', ' à ')} séances",
            unit_word="patient(s)",
        )
        capped_keys = _keys_where(cycles, mask & beyond_top)
        records += [_with_parameters(r, above_used) if _key(r) in capped_keys else r for r in lines]
    return records


def _keys_where(rows: pd.DataFrame, mask: np.ndarray) -> set:
    """The (contract_id, period_id) of the rows selected by ``mask``: the distinct pairs of
    category codes, then their texts (not a text per row)."""
    contract, period = rows["contract_id"].array, rows["period_id"].array
    mask = mask & (contract.codes >= 0) & (period.codes >= 0)  # a missing key makes no line
    if not mask.any():
        return set()
    width = len(period.categories) + 1
    pairs = np.unique(contract.codes[mask].astype(np.int64) * width + period.codes[mask])
    return set(zip(contract.categories[pairs // width], period.categories[pairs % width], strict=True))


def _key(record: dict) -> tuple:
    return (record["contract_id"], record["period_id"])


def _with_parameters(record: dict, extra: tuple) -> dict:
    """``record`` with ``extra`` parameter versions appended to its explanation's."""
    explanation = record["explanation"]
    return {**record, "explanation": attrs.evolve(explanation, parameters=(*explanation.parameters, *extra))}


def _per_period(rows: pd.DataFrame, column: str):
    """``rows[column]`` grouped by (contract, period), for one-pass reasons of zero lines
    (nothing to group when ``rows`` is empty: a dict of no reason, as the group would give)."""
    if rows.empty:
        return _NoGroups()
    return rows.groupby(["contract_id", "period_id"], sort=False)[column]


class _NoGroups:
    """The reasons' view of an empty grouping (spares pandas' fixed cost on small data)."""

    def nunique(self) -> dict:
        return {}

    def size(self) -> pd.Series:
        return pd.Series([], dtype="int64")


def _unauthorised_reasons(rows: pd.DataFrame) -> dict:
    """(contract, period) -> the programmes outside their authorisation, in order of appearance."""
    first = rows.drop_duplicates(["contract_id", "period_id", "programme_id"])
    texts: dict = {}
    for c, p, pid, title, start, end in zip(
        first["contract_id"],
        first["period_id"],
        first["programme_id"],
        first["title"],
        first["authorised_from"],
        first["authorised_to"],
        strict=True,
    ):
        texts.setdefault((c, p), []).append(
            f"{pid} « {title} » (autorisé du {start:%d/%m/%Y}" + (f" au {end:%d/%m/%Y})" if pd.notna(end) else ")")
        )
    return {k: "programme non autorisé par l'ARS à la date des séances : " + "; ".join(v) for k, v in texts.items()}


def _few_sessions_reasons(rows: pd.DataFrame) -> dict:
    """(contract, period) -> the distinct numbers of séances of its cycles below the first tier."""
    counts = rows[["contract_id", "period_id", "sessions"]].drop_duplicates()
    found: dict = {}
    for c, p, n in zip(counts["contract_id"], counts["period_id"], counts["sessions"], strict=True):
        found.setdefault((c, p), []).append(int(n))
    return {
        k: "moins de séances que le premier palier du barème "
        f"(séances par cycle : {', '.join(str(x) for x in sorted(v))})"
        for k, v in found.items()
    }


def _take(column: pd.Series, rows: np.ndarray) -> pd.Series:
    """``column`` at positions ``rows`` (-1: missing), with a fresh index."""
    column = column.reset_index(drop=True)
    return column.reindex(pd.RangeIndex(len(column) + 1)).iloc[rows].reset_index(drop=True)


def _session_rows(s: pd.DataFrame, rows: np.ndarray, extra: list[str], attrs: dict) -> pd.DataFrame:
    """A narrow copy of the sessions at positions ``rows``: keys, ``_line`` and ``extra`` columns."""
    out = s.iloc[rows][["contract_id", "period_id", "_line", *extra]].reset_index(drop=True)
    out.attrs = dict(attrs)
    return out


def category_codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """An integer code per row (-1: missing) into the returned values: a category's own codes
    (int8 to int32, not copied) and categories (in any order, unused ones included: no pass to
    renumber them), else ``pd.factorize``. For grouping and joining, where the order of the values
    does not matter; widen the codes before any arithmetic."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), pd.Index(column.cat.categories)
    codes, uniques = pd.factorize(column)
    return codes.astype(np.int64), pd.Index(uniques)


def programme_grid(progs: pd.DataFrame, contracts, programme_ids) -> np.ndarray:
    """Row of ``programmes`` declaring each (contract, programme) cell ``contract * len(programme_ids)
    + programme`` (codes into ``contracts`` and ``programme_ids``); -1: none. One more cell at the
    end, -1, for a missing code (see :func:`_cells`)."""
    width = max(len(programme_ids), 1)
    p_contract = pd.Index(contracts).get_indexer(progs["contract_id"]).astype(np.int64)
    p_programme = pd.Index(programme_ids).get_indexer(progs["programme_id"]).astype(np.int64)
    known = (p_contract >= 0) & (p_programme >= 0)
    grid = np.full(max(len(contracts), 1) * width + 1, -1, dtype=np.int64)
    grid[p_contract[known] * width + p_programme[known]] = np.flatnonzero(known)
    return grid


def _cells(contract_code: np.ndarray, programme_code: np.ndarray, n_programmes: int, missing: int) -> np.ndarray:
    """The (contract, programme) cell of each row (see :func:`programme_grid`); ``missing`` when a
    code is missing."""
    cell = contract_code.astype(np.int64)
    cell *= max(n_programmes, 1)
    cell += programme_code
    if contract_code.size and (contract_code.min() < 0 or programme_code.min() < 0):
        cell[(contract_code < 0) | (programme_code < 0)] = missing
    return cell


def undeclared_rows(progs, contracts, programme_ids, contract_code, programme_code) -> np.ndarray:
    """Positions of the sessions whose (contract, programme) no row of ``programmes`` declares
    (:func:`programme_grid` has -1 for their cell), found by cell: the cells used are counted in
    one pass, and rows are looked for only when a cell used is not declared (no gather per
    session)."""
    grid = programme_grid(progs, contracts, programme_ids)
    cell = _cells(np.asarray(contract_code), np.asarray(programme_code), len(programme_ids), len(grid) - 1)
    bad = (np.bincount(cell, minlength=len(grid)) > 0) & (grid < 0)
    if not bad.any():
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(bad[cell])


_NS_PER_DAY = 86_400_000_000_000


def _days(dates, missing: int | None = None, dtype=np.int64) -> np.ndarray:
    """Days since 1970-01-01 of a datetime64 column, as ``dtype`` (int32 holds every date pandas
    holds); ``missing`` for NaT (when given)."""
    raw = np.asarray(dates).astype("datetime64[ns]", copy=False)
    out = np.floor_divide(raw.view(np.int64), _NS_PER_DAY, out=np.empty(raw.shape, dtype=dtype), casting="unsafe")
    if missing is not None:
        out[np.isnat(raw)] = missing
    return out


def _required_at(context: CalculationContext, s: pd.DataFrame, rows: np.ndarray):
    """``patient.diagnostic_required`` looked up for every session (its versions and warnings
    cover them all), and its value at ``rows`` only (no value converted for the other rows)."""
    column = context.lookup("patient.diagnostic_required", s["contract_id"], s["session_date"])
    return column, attrs.evolve(column, index=column.index[rows]).values(missing=True).astype(bool)


def _patient_key(codes: list[np.ndarray], in_place: bool = False) -> np.ndarray:
    """One non-negative int64 per row for its tuple of ``codes`` (-1: missing), in the order of
    the tuples (missing first, as ``np.lexsort`` puts -1). ``in_place``: the first codes, when
    int64, become the key (no copy)."""
    codes = [np.asarray(c) for c in codes]
    sizes = [int(c.max(initial=-1)) + 2 for c in codes]
    if int(np.prod(sizes, dtype=object)) >= 2**62:  # too many distinct values for one key
        stacked = np.stack([c.astype(np.int64) for c in codes])
        return np.unique(stacked, axis=1, return_inverse=True)[1].reshape(-1).astype(np.int64)
    # (((c0 + 1) × s1 + c1 + 1) × s2 + c2 + 1)…: the ones added once at the end, in place
    key = codes[0] if in_place and codes[0].dtype == np.int64 else codes[0].astype(np.int64)
    offset = 1
    for c, size in zip(codes[1:], sizes[1:], strict=True):
        key *= size
        key += c
        offset = offset * size + 1
    key += offset
    return key


def _order_by_key(key: np.ndarray, day: np.ndarray, diag: np.ndarray, line: np.ndarray | None):
    """Row order by ``key``, day, diagnostic first, file line — what ``sort_values`` on the text
    columns gives for codes in text order — with, in that order, the keys, the days and whether
    the row is a diagnostic. ``line`` None: the rows are in file order (their lines rise). The
    key is sorted in place (it is not the caller's to use after).

    Séances are usually listed by date (and a patient's diagnostic before his séances of the same
    day): then one sort by key keeps that order within each key, which is checked; otherwise the
    rows are sorted by day first, then by key (a stable sort keeps the days in order)."""
    if not key.size:
        return np.zeros(0, dtype=np.int64), key, day, np.asarray(diag, dtype=bool)
    low = int(day.min())
    day2 = day - low  # day, then the diagnostic first
    day2 *= 2
    day2 += ~np.asarray(diag, dtype=bool)
    if line is not None:  # rows not in file order: the line breaks ties
        order = np.lexsort((line, day2, key))
        key_s, day2_s = key[order], day2[order]
    else:
        order, key_s = sort_key(key, overwrite=True)
        day2_s = day2[order]
        if bool(((key_s[1:] == key_s[:-1]) & (day2_s[1:] < day2_s[:-1])).any()):
            key = np.empty_like(key_s)  # the rows' keys again (sorted in place above)
            key[order] = key_s
            by_day = sort_rows([day2])
            order = by_day[sort_rows([key[by_day]])]
            key_s, day2_s = key[order], day2[order]
    diag_s = (day2_s & 1) == 0
    day2_s >>= 1
    day2_s += low
    return order, key_s, day2_s, diag_s


def _period_rows(history: pd.DataFrame, contracts, contract_code: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Row of ``history`` whose active span starts last on or before each day, for the same
    contract (as ``merge_asof(direction="backward", by="contract_id")``); -1: none."""
    h_code = pd.Index(contracts).get_indexer(history["contract_id"]).astype(np.int64)
    ns_per_day = 86_400_000_000_000
    h_day = history["active_start"].to_numpy().view(np.int64) // ns_per_day
    q_day = np.asarray(days).astype("datetime64[ns]").view(np.int64) // ns_per_day
    low = min(int(h_day.min(initial=0)), int(q_day.min(initial=0)))
    width = max(int(h_day.max(initial=0)), int(q_day.max(initial=0))) - low + 1
    order = np.lexsort((h_day, h_code))
    order = order[h_code[order] >= 0]
    keys = h_code[order] * width + (h_day[order] - low)
    pos = np.searchsorted(keys, contract_code.astype(np.int64) * width + (q_day - low), side="right") - 1
    found = pos >= 0
    pos = np.where(found, pos, 0)
    found &= h_code[order][pos] == contract_code
    return np.where(found, order[pos], -1)


def _selected_history(context: CalculationContext) -> np.ndarray:
    """For each row of ``context.history``: is its (contract, period) being computed?"""
    keys = pd.MultiIndex.from_arrays([context.history["contract_id"], context.history["period_id"]])
    wanted = pd.MultiIndex.from_arrays([context.periods["contract_id"], context.periods["period_id"]])
    return np.asarray(keys.isin(wanted), dtype=bool)


def _count_within(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The True ``flags`` of each run beginning at ``starts`` (ascending, the first 0), as int64:
    summed as bytes when no run is longer than 255 rows (no int64 copy of the flags)."""
    flags = np.asarray(flags, dtype=bool)
    if not starts.size:
        return np.zeros(0, dtype=np.int64)
    longest = int(np.diff(starts, append=flags.size).max())
    if longest <= np.iinfo(np.uint8).max:
        return np.add.reduceat(flags.view(np.uint8), starts, dtype=np.uint8).astype(np.int64)
    return np.add.reduceat(flags, starts, dtype=np.int64)


def _cumsum_within(flags: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running count of ``flags`` restarting at each ``first`` row (groupby(...).cumsum())."""
    flags = np.asarray(flags, dtype=np.int64)
    total = np.cumsum(flags)
    before = np.where(first, total - flags, 0)
    return total - np.maximum.accumulate(before)


def _tier_of(sessions: np.ndarray, tiers, above) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Tier index per cycle (-1: below the first tier, -2: above the top and not paid), its label
    (a code into the labels returned, "" for none), and whether the cycle had more séances than
    the top tier. Each version's scale is read once into a table by number of séances."""
    top_policy = np.array([not v.in_force or v.value == "top_tier" for v in above.versions] + [True])
    width = int(sessions.max(initial=0)) + 1
    tier_table = np.full((len(tiers.versions) + 1, width), -1, dtype=np.int64)  # last row: no version
    label_table = np.zeros((len(tiers.versions) + 1, width), dtype=np.int64)
    beyond_table = np.zeros((len(tiers.versions) + 1, width), dtype=bool)
    labels = [""]
    counts = np.arange(width)
    for v_index in np.unique(tiers.index).tolist():
        version = tiers.versions[v_index] if v_index < len(tiers.versions) else None
        if version is None or not version.in_force:
            continue
        table = version.value
        for i, tier in enumerate(table):
            hit = (counts >= tier["min_sessions"]) & (counts <= tier["max_sessions"])
            tier_table[v_index, hit] = i
            label_table[v_index, hit] = _label_code(labels, tier)
        beyond_table[v_index] = counts > table[-1]["max_sessions"]
        # more séances than the top tier: the top tier (top_tier policy) or nothing (-2)
        tier_table[v_index, beyond_table[v_index]] = len(table) - 1
        label_table[v_index, beyond_table[v_index]] = _label_code(labels, table[-1])
    version_row = np.asarray(tiers.index)
    tier_no = tier_table[version_row, sessions]
    label_code = label_table[version_row, sessions]
    beyond_top = beyond_table[version_row, sessions]
    refused = beyond_top & ~top_policy[np.asarray(above.index)]
    tier_no[refused] = -2
    label_code[refused] = 0
    return tier_no, label_code, labels, beyond_top


def _label_code(labels: list[str], tier: dict) -> int:
    """Code of a tier's label (``min_max``) in ``labels``, appended when new."""
    label = f"{tier['min_sessions']}_{tier['max_sessions']}"
    if label not in labels:
        labels.append(label)
    return labels.index(label)


def _tier_amounts(tier_no: np.ndarray, tiers) -> np.ndarray:
    amounts = np.zeros(len(tier_no), dtype=np.int64)
    for v_index in np.unique(tiers.index):
        rows = tiers.index == v_index
        version = tiers.versions[v_index]
        table_amounts = np.array([t["amount"] for t in version.value], dtype=np.int64)
        amounts[rows] = table_amounts[tier_no[rows]]
    return amounts


def _versions_used(column) -> tuple:
    idx = np.flatnonzero(np.bincount(column.index)) if len(column.index) else np.array([], dtype=np.int64)
    return tuple(column.versions[i] for i in idx if i < len(column.versions))
