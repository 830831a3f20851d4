"""Module 3 (protocole de coopération Asalée) rules, vectorised over all contracts of the periods.

The module is financed only while its parameters are in force (from December 2012 to
31/12/2015; ``null`` from 2016-01-01): what falls outside pays nothing and the line says why.

- **Nurse time**: Σ over nurse presence intervals and in-force days of
  ``nurse.amount_per_fte`` × FTE × days / days of the full contract year (exact integer
  arithmetic on micro-FTE, rounded once per line). The line warns when the structure has
  more nurse FTE than its GP FTE allow at the ``ratio.gp_fte_per_nurse_fte`` ratio (1 : 5).
- **Patients followed**: per delegated act, each patient counts once per period at the
  ``patient.amounts`` amount of the act in force on the date of the first follow-up.
- **Concertation**: doctors' minutes × ``concertation.amount_per_hour`` / 60.

Every line is paid to the payee of the contract's enrolment (the Asalée association when
the contract says so).
"""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pandas as pd

from nmr_engine.decimals import MICRO, decimal_micro, decimal_text
from nmr_engine.money import format_eur, round_cents
from nmr_engine.plugin import CalculationContext, Explanation, lines_frame
from nmr_engine.plugin.helpers import (
    in_computed_periods,
    in_computed_periods_mask,
    key_codes,
    pair_rows,
    priced_lines,
    zero_lines,
)
from nmr_engine.plugin.intervals import clip_intervals, suspended_days, with_nominal_days

from .tables import ACT_LABELS, ACTS

KEYS = ["contract_id", "period_id"]


def calculate(context: CalculationContext) -> pd.DataFrame:
    periods = with_nominal_days(context)
    if periods.empty:
        return lines_frame([])
    records = []
    records += _nurse_time(context, periods)
    records += _patients(context)
    records += _concertation(context)
    return lines_frame(records)


def validity_text(context: CalculationContext, name: str) -> str:
    """'du 01/12/2012 au 31/12/2015' from the base versions of a parameter."""
    versions = context.parameters[context.param(name)].versions
    live = [v for v in versions if v.in_force]
    if not live:
        return "à aucune date"
    end = next((v.start for v in versions if not v.in_force and v.start > live[0].start), None)
    text = f"du {live[0].start:%d/%m/%Y}"
    if end is not None:
        text += f" au {(end - pd.Timedelta(days=1)):%d/%m/%Y}"
    return text


def _outside_reason(context: CalculationContext, name: str) -> str:
    return (
        f"le protocole Asalée n'est financé que {validity_text(context, name)} "
        f"(paramètre {context.param(name)} non en vigueur à ces dates)"
    )


# -- grouped sums ----------------------------------------------------------------------------
class _Groups:
    """Rows grouped by an integer key: sums, distinct counts, parts and file lines of every
    group from one sort of the keys (no pandas group per contract period).

    Groups are in ascending key order; the rows of each group are sorted by file line."""

    def __init__(self, key: np.ndarray, line: np.ndarray):
        self.key = np.asarray(key, dtype=np.int64)
        self.order = np.lexsort((line, self.key))
        sorted_key = self.key[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) if sorted_key.size else _NONE
        self.keys = sorted_key[self.starts]
        self.ends = np.r_[self.starts[1:], sorted_key.size].astype(np.int64)
        self.lines = np.asarray(line)[self.order]
        self.at = {int(k): i for i, k in enumerate(self.keys)}

    def sum(self, values: np.ndarray) -> np.ndarray:
        if not self.starts.size:
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat(np.asarray(values, dtype=np.int64)[self.order], self.starts)

    def nunique(self, codes: np.ndarray) -> np.ndarray:
        """Distinct ``codes`` (integers) per group."""
        if not self.starts.size:
            return np.zeros(0, dtype=np.int64)
        order = np.lexsort((codes, self.key))
        k, c = self.key[order], np.asarray(codes)[order]
        new = np.r_[True, (k[1:] != k[:-1]) | (c[1:] != c[:-1])]
        return np.add.reduceat(new.astype(np.int64), self.starts)

    def parts(self, values: np.ndarray, weights: np.ndarray | None = None) -> dict[int, list]:
        """key -> [(value, Σ weights)] by ascending value (weights None: the distinct values only)."""
        if not self.starts.size:
            return {}
        values = np.asarray(values)
        order = np.lexsort((values, self.key))
        k, v = self.key[order], values[order]
        starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]) | (v[1:] != v[:-1])])
        sums = np.add.reduceat(np.asarray(weights, dtype=np.int64)[order], starts) if weights is not None else None
        out: dict[int, list] = {}
        for j, start in enumerate(starts):
            item = int(v[start]) if sums is None else (int(v[start]), int(sums[j]))
            out.setdefault(int(k[start]), []).append(item)
        return out

    def lines_of(self, i: int) -> np.ndarray:
        return self.lines[self.starts[i] : self.ends[i]]


_NONE = np.zeros(0, dtype=np.int64)


def _codes(values) -> np.ndarray:
    return pd.factorize(np.asarray(values, dtype=object))[0].astype(np.int64)


# -- nurse time ------------------------------------------------------------------------------
DAY_NS = 86_400_000_000_000


def _segments(context: CalculationContext, periods: pd.DataFrame, name: str) -> tuple[pd.DataFrame, tuple]:
    """Runs of days of each active period with the same version of ``name`` (in force or not).

    The day grid of all periods is built at once with numpy (a period's row ``_p`` repeated
    over its active days); runs are cut where the period or the version changes or where a
    suspension leaves a gap."""
    start = periods["active_start"].to_numpy("datetime64[ns]").view(np.int64) // DAY_NS
    end = periods["active_end"].to_numpy("datetime64[ns]").view(np.int64) // DAY_NS
    n = np.clip(end - start + 1, 0, None)
    p = np.repeat(np.arange(len(periods), dtype=np.int64), n)
    first = np.cumsum(n) - n
    day = start[p] + (np.arange(p.size, dtype=np.int64) - first[p])
    contract = periods["contract_id"].to_numpy(dtype=object)
    # Suspended days of the contract pay nothing: they leave the grid (active_days excludes them too).
    suspended = context.suspensions["contract_id"]
    if len(suspended):
        concerned = np.flatnonzero(np.isin(contract[p], np.asarray(suspended.unique(), dtype=object)))
        if concerned.size:
            some = pd.DataFrame(
                {"contract_id": contract[p[concerned]], "day": (day[concerned] * DAY_NS).astype("datetime64[ns]")}
            )
            gone = concerned[suspended_days(context, some, "day", "day").to_numpy() > 0]
            keep = np.ones(p.size, dtype=bool)
            keep[gone] = False
            p, day = p[keep], day[keep]
    days = (day * DAY_NS).astype("datetime64[ns]")
    col = context.lookup(name, pd.Series(contract[p], dtype=object), pd.Series(days))
    v = np.asarray(col.index, dtype=np.int64)
    cut = np.r_[True, (p[1:] != p[:-1]) | (v[1:] != v[:-1]) | (day[1:] != day[:-1] + 1)] if p.size else _NONE
    runs = np.flatnonzero(cut)
    last = np.r_[runs[1:], p.size][: runs.size] - 1  # no run when every day is suspended
    seg = pd.DataFrame(
        {
            "contract_id": pd.Series(contract[p[runs]], dtype=periods["contract_id"].dtype),
            "_p": p[runs],
            "seg_start": days[runs],
            "seg_end": days[last],
            "_v": v[runs],
            "_in_force": col.in_force()[runs],
            "_value": np.asarray(col.values(missing=0))[runs],
        }
    )
    return seg, col.versions


def _nurse_time(context: CalculationContext, periods: pd.DataFrame) -> list[dict]:
    name = "nurse.amount_per_fte"
    table = context.tables["staff"]
    file = table.attrs.get("file", "staff.csv")
    micro = decimal_micro(table["fte"]).to_numpy(dtype=np.int64)
    seg, versions = _segments(context, periods, name)
    # each staff row with its contract's segments, by row positions (an inner merge's pairs)
    si, sj = pair_rows(table["contract_id"], seg["contract_id"])
    day = "datetime64[ns]"
    seg_start, seg_end = seg["seg_start"].to_numpy(day)[sj], seg["seg_end"].to_numpy(day)[sj]
    present_from, present_to = table["present_from"].to_numpy(day)[si], table["present_to"].to_numpy(day)[si]
    _, _, days = clip_intervals(present_from, present_to, seg_start, seg_end)
    keep = (days > 0) & (micro[si] > 0)
    si, sj, days = si[keep], sj[keep], days[keep]
    fte_days = micro[si] * days
    money = fte_days * np.asarray(seg["_value"].to_numpy()[sj], dtype=np.int64)
    role = table["role"].to_numpy(dtype=object)[si]
    p = seg["_p"].to_numpy(dtype=np.int64)[sj]
    in_force = seg["_in_force"].to_numpy(dtype=bool)[sj]
    line = table["_line"].to_numpy(dtype=np.int64)[si]
    person = table["person_id"].to_numpy(dtype=object)[si]
    value = np.asarray(seg["_value"].to_numpy()[sj], dtype=np.int64)
    version = seg["_v"].to_numpy()[sj]

    # Every count of every (period, in force or not) from one sort: no group per period.
    nurse = role == "infirmier"
    gps = role == "medecin"
    gp_fte_days = np.zeros(len(periods), dtype=np.int64)
    np.add.at(gp_fte_days, p[gps], fte_days[gps])
    key = p[nurse] * 2 + in_force[nurse]  # 2p: outside the financing, 2p + 1: paid
    groups = _Groups(key, line[nurse])
    g_fte_days = groups.sum(fte_days[nurse])
    g_money = groups.sum(money[nurse])
    g_days = groups.sum(days[nurse])
    g_people = groups.nunique(_codes(person[nurse]))
    value_parts = groups.parts(value[nurse], fte_days[nurse])
    used_of = _Groups(p[nurse], np.zeros(int(nurse.sum()), dtype=np.int64)).parts(version[nurse])
    funded = np.zeros(len(periods), dtype=bool)
    funded[seg["_p"].to_numpy()[seg["_in_force"].to_numpy(dtype=bool)]] = True

    ratio = _RatioParams(context)
    records = []
    for i, row in enumerate(periods.itertuples(index=False)):
        paid, outside = groups.at.get(2 * i + 1), groups.at.get(2 * i)
        nurse_fte_days = sum(int(g_fte_days[j]) for j in (paid, outside) if j is not None)
        warnings = _ratio_warnings(ratio, row, nurse_fte_days, int(gp_fte_days[i]))
        used = tuple(versions[v] for v in used_of.get(i, ()) if v < len(versions))
        if paid is not None:
            total = round_cents_of(int(g_money[paid]), MICRO * int(row.nominal_days))
            parts = " + ".join(f"{micro_text(fd)} ETP×jours × {format_eur(v)}" for v, fd in value_parts[2 * i + 1])
            people = int(g_people[paid])
            paid_fte_days = int(g_fte_days[paid])
            records.append(
                _record(
                    context,
                    row,
                    "temps_infirmier",
                    "Temps d'infirmier Asalée (délégation de tâches)",
                    people,
                    total,
                    Explanation(
                        summary=(
                            f"Temps infirmier Asalée : {people} infirmier(s), "
                            f"{decimal_text_micro(paid_fte_days, int(row.active_days))} ETP moyen "
                            "sur la période active"
                        ),
                        formula=(
                            f"({parts}) / {row.nominal_days} jours de l'année de contrat = {format_eur(total)}, "
                            "avec ETP×jours = Σ(ETP × jours de présence pendant le financement)"
                        ),
                        inputs=(
                            ("présences d'infirmiers retenues", _source_lines(file, groups.lines_of(paid))),
                            ("ETP × jours", f"{micro_text(paid_fte_days)} ETP×jours d'infirmier"),
                        ),
                        parameters=tuple(v for v in used if v.in_force) + ratio.params(row),
                        rounding="arrondi une fois au centime (demi-centime au supérieur)",
                        warnings=warnings,
                    ),
                )
            )
        if outside is not None:
            records.append(
                _record(
                    context,
                    row,
                    "temps_infirmier_hors_validite",
                    "Temps d'infirmier Asalée hors période de financement",
                    int(g_people[outside]),
                    0,
                    Explanation(
                        summary="Temps infirmier Asalée hors période de financement du protocole, rien n'est dû",
                        formula=f"{int(g_days[outside])} jour(s)-personne × 0,00 € = 0,00 €",
                        inputs=(("présences concernées", _source_lines(file, groups.lines_of(outside))),),
                        parameters=used,
                        reason=_outside_reason(context, name),
                        warnings=() if paid is not None else warnings,
                    ),
                )
            )
        if paid is None and outside is None:
            records.append(
                _record(
                    context,
                    row,
                    "temps_infirmier",
                    "Temps d'infirmier Asalée (délégation de tâches)",
                    0,
                    0,
                    Explanation(
                        summary="Temps infirmier Asalée : aucun, rien n'est dû",
                        formula="0,00 €",
                        inputs=(("période active", f"du {row.active_start:%d/%m/%Y} au {row.active_end:%d/%m/%Y}"),),
                        parameters=used,
                        reason=(
                            "aucun temps d'infirmier Asalée déclaré dans la période (staff.csv)"
                            if funded[i]
                            else _outside_reason(context, name)
                        ),
                        warnings=warnings,
                    ),
                )
            )
    return records


class _RatioParams:
    """The in-force ``ratio.gp_fte_per_nurse_fte`` version of a period, looked up once per
    (contract, first active day)."""

    def __init__(self, context: CalculationContext):
        self.context = context
        self.found: dict = {}

    def params(self, row) -> tuple:
        key = (row.contract_id, row.active_start)
        if key not in self.found:
            v = self.context.at("ratio.gp_fte_per_nurse_fte", row.active_start.date(), row.contract_id)
            self.found[key] = (v,) if v is not None and v.in_force else ()
        return self.found[key]


def _ratio_warnings(ratios: _RatioParams, row, nurse_fte_days: int, gp_fte_days: int) -> tuple[str, ...]:
    """The protocol's 1 nurse FTE : N GP FTE ratio, checked on average FTE over the active days."""
    if nurse_fte_days <= 0:
        return ()
    params = ratios.params(row)
    if not params:
        return ()
    ratio = params[0].value
    if nurse_fte_days * ratio <= gp_fte_days:
        return ()
    days = int(row.active_days)
    return (
        f"ratio du protocole non respecté : {decimal_text_micro(nurse_fte_days, days, 3)} ETP d'infirmier pour "
        f"{decimal_text_micro(gp_fte_days, days, 3)} ETP de médecin généraliste en moyenne sur la période ; "
        f"la cible est 1 ETP d'infirmier pour {ratio} ETP de médecin (il faudrait au moins "
        f"{decimal_text_micro(nurse_fte_days * ratio, days, 3)} ETP de médecin)",
    )


def micro_text(micro: int) -> str:
    """Exact micro-units as French decimal text without trailing zeros: 24800000 -> '24,8'."""
    whole, frac = divmod(micro, MICRO)
    digits = f"{frac:06d}".rstrip("0")
    return f"{whole},{digits}" if digits else str(whole)


def decimal_text_micro(micro_days: int, days: int, places: int = 2) -> str:
    return decimal_text(Fraction(micro_days, MICRO * days), places)


def round_cents_of(numerator: int, denominator: int) -> int:
    return round_cents(Fraction(numerator, denominator))


# -- patients followed ---------------------------------------------------------------------
def _patients(context: CalculationContext) -> list[dict]:
    name = "patient.amounts"
    table = context.tables["followed_patients"]
    if table.empty:
        return []
    computed = in_computed_periods_mask(context, table)
    if not computed.any():
        return []
    f = table[[*KEYS, "patient_id", "act", "followed_on", "_line"]][computed].reset_index(drop=True)
    f = f.iloc[_first_follow_ups(f)].reset_index(drop=True)[[*KEYS, "act", "followed_on", "_line"]]
    f.attrs = dict(table.attrs)
    price = context.lookup(name, f["contract_id"], f["followed_on"])
    in_force = price.in_force()
    records = zero_lines(
        context,
        f[~in_force],
        component="suivi_hors_validite",
        label="Patients suivis hors période de financement",
        unit_word="patient(s)-acte",
        reason=_outside_reason(context, name),
        parameters=_used(price, ~in_force),
    )
    paid = f[in_force].reset_index(drop=True)
    paid.attrs = dict(f.attrs)
    for act in ACTS:
        rows = paid[paid["act"] == act].reset_index(drop=True)
        rows.attrs = dict(f.attrs)
        if rows.empty:
            continue
        act_price = context.lookup(name, rows["contract_id"], rows["followed_on"])
        by_version = np.array([_act_amount(v.value, act) for v in act_price.versions] + [0], dtype=np.int64)
        amounts = by_version[act_price.index]
        records += priced_lines(
            context,
            rows,
            act_price,
            amounts=amounts,
            component=f"suivi_{act}",
            label=f"Patients suivis : {ACT_LABELS[act]}",
            unit_word="patient(s)",
        )
    return records


def _first_follow_ups(f: pd.DataFrame) -> np.ndarray:
    """Positions of the first follow-up (by date, then file line) of each (contract, period,
    patient, act), in row order, from the key's integer codes (:func:`key_codes`): the least
    (day, line) of each code, as one integer when it fits, else by a sort of the rows. What
    follows does not depend on the order of the rows."""
    codes = key_codes(f, [*KEYS, "patient_id", "act"])
    when = f["followed_on"].to_numpy("datetime64[ns]").view(np.int64)  # NaT: the least, as in a sort
    line = f["_line"].to_numpy().astype(np.int64)
    day = when - when.min()
    if not (day % DAY_NS).any():
        day //= DAY_NS
    shift = int(line.max()).bit_length()
    if line.min() >= 0 and int(day.max()).bit_length() + shift < 63:
        rank = (day << shift) | line  # one integer per row, as (date, line): file lines are unique
    else:
        rank = np.empty(len(f), dtype=np.int64)
        rank[np.lexsort((line, when))] = np.arange(len(f))
    least = np.full(int(codes.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(least, codes, rank)
    return np.flatnonzero(rank == least[codes])


def _act_amount(table, act: str) -> int:
    """Amount of ``act`` in one version of the ``patient.amounts`` table (0 if absent or not in force)."""
    return next((int(r["amount"]) for r in table or () if r["act"] == act), 0)


def _used(column, mask) -> tuple:
    idx = np.unique(column.index[np.asarray(mask, dtype=bool)])
    return tuple(column.versions[i] for i in idx if i < len(column.versions))


# -- concertation ----------------------------------------------------------------------------
def _concertation(context: CalculationContext) -> list[dict]:
    name = "concertation.amount_per_hour"
    c = in_computed_periods(context, context.tables["concertation"])
    if c.empty:
        return []
    file = c.attrs.get("file", "concertation.csv")
    price = context.lookup(name, c["contract_id"], c["session_date"])
    in_force = price.in_force()
    value = np.asarray(price.values(missing=0), dtype=np.int64)
    version = np.asarray(price.index, dtype=np.int64)
    minutes = c["minutes"].to_numpy(dtype=np.int64)
    # (contract, period) in the order of groupby(KEYS, sort=True): codes of the sorted keys.
    contract_code, contracts = pd.factorize(c["contract_id"], sort=True)
    period_code, period_ids = pd.factorize(c["period_id"], sort=True)
    width = max(len(period_ids), 1)
    period_key = contract_code.astype(np.int64) * width + period_code
    groups = _Groups(period_key * 2 + (1 - in_force), c["_line"].to_numpy(dtype=np.int64))  # paid first
    g_minutes = groups.sum(minutes)
    g_money = groups.sum(minutes * value)
    g_doctors = groups.nunique(_codes(c["doctor_id"]))
    minute_parts = groups.parts(value, minutes)
    used_of = groups.parts(version)
    periods = context.periods.drop_duplicates(KEYS)
    info = {
        (cid, pid): (payee, end)
        for cid, pid, payee, end in zip(
            periods["contract_id"], periods["period_id"], periods["payee_id"], periods["period_end"], strict=True
        )
    }  # a tuple per period, instead of a frame lookup and a Series per group
    contracts, period_ids = np.asarray(contracts, dtype=object), np.asarray(period_ids, dtype=object)
    records = []
    for i, key in enumerate(groups.keys):
        cid, pid = contracts[key // 2 // width], period_ids[key // 2 % width]
        payee, end = info[(cid, pid)]
        row = SimpleNamespace(contract_id=cid, period_id=pid, payee_id=payee, period_end=end)
        used = tuple(versions_of(price, used_of[int(key)]))
        lines = _source_lines(file, groups.lines_of(i))
        if key % 2 == 0:  # paid
            total = round_cents_of(int(g_money[i]), 60)
            parts = " + ".join(f"{n} min × {format_eur(v)}/h" for v, n in minute_parts[int(key)])
            records.append(
                _record(
                    context,
                    row,
                    "concertation",
                    "Temps de concertation des médecins",
                    int(g_doctors[i]),
                    total,
                    Explanation(
                        summary=f"Concertation médecins-infirmier : {int(g_minutes[i])} minutes, "
                        f"{int(g_doctors[i])} médecin(s)",
                        formula=f"({parts}) / 60 = {format_eur(total)}",
                        inputs=(("séances de concertation", lines),),
                        parameters=used,
                        rounding="arrondi une fois au centime (demi-centime au supérieur)",
                    ),
                )
            )
        else:
            records.append(
                _record(
                    context,
                    row,
                    "concertation_hors_validite",
                    "Concertation hors période de financement",
                    int(g_doctors[i]),
                    0,
                    Explanation(
                        summary="Concertation hors période de financement du protocole, rien n'est dû",
                        formula=f"{int(g_minutes[i])} min × 0,00 € = 0,00 €",
                        inputs=(("séances concernées", lines),),
                        parameters=used,
                        reason=_outside_reason(context, name),
                    ),
                )
            )
    return records


def versions_of(column, indices) -> list:
    """The versions of a lookup at ``indices`` (ascending), without the 'no version' slot."""
    return [column.versions[i] for i in indices if i < len(column.versions)]


def _source_lines(file: str, lines: np.ndarray, limit: int = 8) -> str:
    """'staff.csv, ligne(s) 2, 5, 9…' from sorted file lines (as ``helpers.source_lines`` of a frame)."""
    shown = ", ".join(str(x) for x in lines[:limit])
    return f"{file}, ligne(s) {shown}{'…' if len(lines) > limit else ''}"


def _record(context, row, component, label, quantity, amount, explanation) -> dict:
    return {
        "contract_id": row.contract_id,
        "module": context.module.code,
        "period_id": row.period_id,
        "component": component,
        "label": label,
        "payee_id": row.payee_id,
        "instalment": "unique",
        "due_date": pd.Timestamp(row.period_end),
        "quantity": int(quantity),
        "unit_amount_cents": pd.NA,
        "amount_cents": int(amount),
        "explanation": explanation,
    }
