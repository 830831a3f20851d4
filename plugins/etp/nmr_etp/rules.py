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
from nmr_engine.plugin.helpers import in_computed_periods, priced_lines, zero_lines


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
# Sessions are sorted once (contract, programme, patient, date, diagnostic first, file line) with
# integer codes; cycles are then runs of that order, reduced with numpy, not pandas groups.
def _patients(context: CalculationContext) -> list[dict]:
    s = context.tables["sessions"]
    if s.empty:
        return []
    attrs = dict(s.attrs)
    progs = context.tables["programmes"]
    contract_code, contracts = sorted_codes(s["contract_id"])
    programme_code, programme_ids = sorted_codes(s["programme_id"])
    # Patients need not be in text order: nothing computed depends on the order between them.
    patient_code, _ = pd.factorize(s["patient_id"])
    prog_row = declared_programmes(progs, contracts, programme_ids, contract_code, programme_code)
    day = s["session_date"].to_numpy()
    auth_from = np.append(progs["authorised_from"].to_numpy(), np.datetime64("NaT"))[prog_row]
    auth_to = np.append(progs["authorised_to"].to_numpy(), np.datetime64("NaT"))[prog_row]
    authorised = (day >= auth_from) & (np.isnat(auth_to) | (day <= auth_to))
    diag = s["kind"].eq("diagnostic").to_numpy(dtype=bool)
    line = s["_line"].to_numpy()

    # Within a day the diagnostic comes first; a cycle is opened by each diagnostic.
    ns_per_day = 86_400_000_000_000
    order, first_of_patient = _patient_order(
        [contract_code, programme_code, patient_code], day.view(np.int64) // ns_per_day, diag, line
    )
    cycle = _cumsum_within(diag[order], first_of_patient)
    o_authorised = authorised[order]

    records = []
    unauthorised = _session_rows(s, order[~o_authorised], ["programme_id"], attrs)
    rows_prog = prog_row[order[~o_authorised]]
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

    diag_required = context.lookup("patient.diagnostic_required", s["contract_id"], s["session_date"])
    required = diag_required.values(missing=True).astype(bool)[order]
    orphan = (cycle == 0) & required & o_authorised
    orphans = in_computed_periods(context, _session_rows(s, order[orphan], ["patient_id"], attrs))
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
    counted = np.flatnonzero(o_authorised & ~orphan)
    if counted.size == 0:
        return records
    patient_no = (np.cumsum(first_of_patient) - 1)[counted]
    c_cycle = cycle[counted]
    starts = np.flatnonzero(np.r_[True, (patient_no[1:] != patient_no[:-1]) | (c_cycle[1:] != c_cycle[:-1])])
    rows = order[counted]
    c_diag = diag[rows]
    has_diag = np.logical_or.reduceat(c_diag, starts)
    # A cycle whose diagnostic is not authorised has no authorised diagnostic row.
    keep = has_diag | (c_cycle[starts] == 0)
    starts_kept = starts[keep]
    sessions = np.add.reduceat((~c_diag).astype(np.int64), starts)[keep]
    completed = np.maximum.reduceat(day[rows], starts)[keep]
    first_line = np.minimum.reduceat(line[rows], starts)[keep]
    cycle_contract = contract_code[rows[starts_kept]]
    cycle_patient = patient_no[starts_kept]
    if sessions.size == 0:
        return records
    # The cycle belongs to the period of its completion date.
    history = context.history
    period_row = _period_rows(history, contracts, cycle_contract, completed)
    # contract and period as categories in text order: grouped as their texts, without a text per cycle
    period_code, period_names = pd.factorize(history["period_id"], sort=True)
    cycles = pd.DataFrame(
        {
            "contract_id": pd.Categorical.from_codes(cycle_contract, categories=contracts),
            "period_id": pd.Categorical.from_codes(np.append(period_code, -1)[period_row], categories=period_names),
            "completed_on": completed,
            "sessions": sessions,
            "_line": first_line,
        }
    )
    cycles.attrs = dict(attrs)

    tiers = context.lookup("patient.tiers", cycles["contract_id"], cycles["completed_on"])
    above = context.lookup("patient.above_top_tier", cycles["contract_id"], cycles["completed_on"])
    tier_no, tier_label, beyond_top = _tier_of(sessions, tiers, above)
    cycles["_tier"] = tier_no
    cycles["_beyond_top"] = beyond_top

    # Cap on cycles per patient, programme and period: cycles run in completion order per patient.
    cap = context.lookup("patient.max_cycles_per_period", cycles["contract_id"], cycles["completed_on"])
    payable = tier_no >= 0
    group_start = np.r_[True, (cycle_patient[1:] != cycle_patient[:-1]) | (period_row[1:] != period_row[:-1])]
    rank = _cumsum_within(payable, group_start)
    over_cap = payable & (period_row >= 0) & (rank > cap.values(missing=0))

    wanted = _selected_history(context)
    sel = (period_row >= 0) & np.append(wanted, False)[period_row]
    too_few = cycles[sel & (tier_no == -1)]
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
    too_many = cycles[sel & (tier_no == -2)]
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
    capped = cycles[sel & payable & over_cap]
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
    paid = sel & payable & ~over_cap
    # The above-top-tier rule explains a line only when it capped one of its cycles: the lines
    # concerned are found once from the cycles' keys, and the rule's versions once for all lines
    # (not a group frame and a pass over every cycle per line).
    above_used = _versions_used(above) if beyond_top[paid].any() else ()
    for label in sorted(set(tier_label[paid])):
        mask = paid & (tier_label == label)
        group = cycles[mask]
        group.attrs = dict(attrs)
        price = context.lookup("patient.tiers", group["contract_id"], group["completed_on"])
        amounts = _tier_amounts(group["_tier"].to_numpy(), price)
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
    """The (contract_id, period_id) of the rows selected by ``mask`` (only those rows converted)."""
    if not mask.any():
        return set()
    return set(zip(rows["contract_id"][mask].tolist(), rows["period_id"][mask].tolist(), strict=True))


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
    out = s[["contract_id", "period_id", "_line", *extra]].iloc[rows].reset_index(drop=True)
    out.attrs = dict(attrs)
    return out


def sorted_codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """An int64 code per row (-1: missing) and the distinct values in text order, as
    ``pd.factorize(column, sort=True)`` gives for text — read from the codes when the column is
    a category (the reader's ``contract_id`` and ``Column(category=True)``), no row hashed."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        if not column.cat.categories.is_monotonic_increasing:  # factorize would follow their order
            column = column.cat.reorder_categories(column.cat.categories.sort_values())
        codes = column.cat.codes.to_numpy().astype(np.int64)
        present = codes >= 0
        used = np.bincount(codes[present], minlength=len(column.cat.categories)) > 0
        if not used.all():  # number the categories present only, as factorize does
            codes[present] = (np.cumsum(used) - 1)[codes[present]]
        return codes, pd.Index(column.cat.categories[used])
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.int64), pd.Index(uniques)


def declared_programmes(progs, contracts, programme_ids, contract_code, programme_code) -> np.ndarray:
    """Row of ``programmes`` declaring each session's programme (-1: none), given the sessions'
    contract and programme codes into ``contracts`` and ``programme_ids``."""
    width = max(len(programme_ids), 1)
    p_contract = pd.Index(contracts).get_indexer(progs["contract_id"]).astype(np.int64)
    p_programme = pd.Index(programme_ids).get_indexer(progs["programme_id"]).astype(np.int64)
    known = (p_contract >= 0) & (p_programme >= 0)
    # a (contract, programme) grid: one gather per session instead of hashing its key
    grid = np.full(max(len(contracts), 1) * width + 1, -1, dtype=np.int64)  # last cell: missing code
    grid[p_contract[known] * width + p_programme[known]] = np.flatnonzero(known)
    cell = contract_code * width + programme_code
    return grid[np.where((contract_code >= 0) & (programme_code >= 0), cell, len(grid) - 1)]


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


def _patient_order(codes: list[np.ndarray], day: np.ndarray, diag: np.ndarray, line: np.ndarray):
    """Row order by the key codes, date, diagnostic first, file line — for codes factorized in
    text order, what ``sort_values`` on the text columns gives — and where each key starts."""
    codes = [np.asarray(c, dtype=np.int64) for c in codes]
    sizes = [int(c.max()) + 1 if c.size else 1 for c in codes]
    if sizes[0] * sizes[1] * sizes[2] < 2**62:
        keys = [(codes[0] * sizes[1] + codes[1]) * sizes[2] + codes[2]]
    else:  # too many distinct values for one key: sort on the three codes
        keys = codes
    not_diag = (~diag).astype(np.int64)
    low, span = (int(day.min()), int(day.max()) - int(day.min()) + 1) if day.size else (0, 1)
    if len(keys) == 1 and (int(keys[0].max(initial=0)) + 1) * span * 2 < 2**62:
        # one int64 key (patient, date, diagnostic first); the line breaks ties. Without ties (the
        # reader refuses duplicate séances) any sort gives that order, and a plain one is faster.
        key = (keys[0] * span + (day - low)) * 2 + not_diag
        order = np.argsort(key)
        ordered = key[order]
        if bool((ordered[1:] == ordered[:-1]).any()):
            order = np.lexsort((line, key))
            ordered = key[order]
        sorted_keys = [ordered // (span * 2)]
    else:
        order = np.lexsort((line, not_diag, day, *reversed(keys)))
        sorted_keys = [k[order] for k in keys]
    first = np.ones(order.size, dtype=bool)
    if order.size:
        first[1:] = np.logical_or.reduce([k[1:] != k[:-1] for k in sorted_keys])
    return order, first


def _cumsum_within(flags: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running count of ``flags`` restarting at each ``first`` row (groupby(...).cumsum())."""
    flags = np.asarray(flags, dtype=np.int64)
    total = np.cumsum(flags)
    before = np.where(first, total - flags, 0)
    return total - np.maximum.accumulate(before)


def _tier_of(sessions: np.ndarray, tiers, above) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tier index per cycle (-1: below the first tier, -2: above the top and not paid), a label,
    and whether the cycle had more séances than the top tier."""
    tier_no = np.full(len(sessions), -1, dtype=np.int64)
    beyond_top = np.zeros(len(sessions), dtype=bool)
    labels = np.full(len(sessions), "", dtype=object)
    policy = above.values(missing="top_tier")
    for v_index in np.unique(tiers.index):
        version = tiers.versions[v_index] if v_index < len(tiers.versions) else None
        rows = tiers.index == v_index
        if version is None or not version.in_force:
            continue
        table = version.value
        for i, tier in enumerate(table):
            hit = rows & (sessions >= tier["min_sessions"]) & (sessions <= tier["max_sessions"])
            tier_no[hit] = i
            labels[hit] = f"{tier['min_sessions']}_{tier['max_sessions']}"
        top = table[-1]
        beyond = rows & (sessions > top["max_sessions"])
        beyond_top |= beyond
        capped = beyond & (policy == "top_tier")
        tier_no[capped] = len(table) - 1
        labels[capped] = f"{top['min_sessions']}_{top['max_sessions']}"
        tier_no[beyond & (policy != "top_tier")] = -2
    return tier_no, labels, beyond_top


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
