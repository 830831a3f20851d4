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
from nmr_engine.plugin.helpers import priced_lines, source_lines, zero_lines
from nmr_engine.plugin.intervals import overlap_days, suspended_days, with_nominal_days

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


def _selected(context: CalculationContext, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.merge(context.periods[KEYS], on=KEYS, how="inner")
    out.attrs = dict(frame.attrs)
    return out


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


# -- nurse time ------------------------------------------------------------------------------
def _segments(context: CalculationContext, periods: pd.DataFrame, name: str) -> tuple[pd.DataFrame, tuple]:
    """Runs of days of each active period with the same version of ``name`` (in force or not)."""
    days = pd.concat(
        [
            pd.DataFrame(
                {
                    "contract_id": r.contract_id,
                    "period_id": r.period_id,
                    "day": pd.date_range(r.active_start, r.active_end, freq="D"),
                }
            )
            for r in periods.itertuples(index=False)
        ],
        ignore_index=True,
    )
    # Suspended days of the contract pay nothing: they leave the grid (active_days excludes them too).
    days = days[suspended_days(context, days, "day", "day").to_numpy() == 0].reset_index(drop=True)
    col = context.lookup(name, days["contract_id"], days["day"])
    days["_v"] = col.index
    days["_in_force"] = col.in_force()
    days["_value"] = col.values(missing=0)
    keys = days[["contract_id", "period_id", "_v"]]
    gap = days["day"].diff().ne(pd.Timedelta(days=1))  # a suspension cuts a run of days
    run = ((keys != keys.shift()).any(axis=1) | gap).cumsum()
    seg = days.groupby(run, sort=False).agg(
        contract_id=("contract_id", "first"),
        period_id=("period_id", "first"),
        seg_start=("day", "min"),
        seg_end=("day", "max"),
        _v=("_v", "first"),
        _in_force=("_in_force", "first"),
        _value=("_value", "first"),
    )
    return seg.reset_index(drop=True), col.versions


def _nurse_time(context: CalculationContext, periods: pd.DataFrame) -> list[dict]:
    name = "nurse.amount_per_fte"
    staff = context.tables["staff"].copy()
    file = staff.attrs.get("file", "staff.csv")
    staff["_micro"] = decimal_micro(staff["fte"])
    seg, versions = _segments(context, periods, name)
    m = staff.merge(seg, on="contract_id")
    m["_days"] = overlap_days(m, "present_from", "present_to", "seg_start", "seg_end")
    m = m[(m["_days"] > 0) & (m["_micro"] > 0)].copy()
    m["_fte_days"] = m["_micro"] * m["_days"]
    m["_money"] = m["_fte_days"] * m["_value"].astype("int64")
    nurses = m[m["role"] == "infirmier"]
    gps = m[m["role"] == "medecin"]

    # Rows of each (contract, period), found once (a boolean filter per period is quadratic).
    nurse_rows = nurses.groupby(KEYS, sort=False).indices if len(nurses) else {}
    gp_days = gps.groupby(KEYS, sort=False)["_fte_days"].sum().to_dict() if len(gps) else {}
    funded = set(zip(seg.loc[seg["_in_force"], "contract_id"], seg.loc[seg["_in_force"], "period_id"], strict=True))
    records = []
    for row in periods.itertuples(index=False):
        key = (row.contract_id, row.period_id)
        mine = nurses.iloc[nurse_rows[key]] if key in nurse_rows else nurses.iloc[0:0]
        mine.attrs["file"] = file
        paid, outside = mine[mine["_in_force"]], mine[~mine["_in_force"]]
        gp_fte_days = int(gp_days.get(key, 0))
        nurse_fte_days = int(mine["_fte_days"].sum())
        warnings = _ratio_warnings(context, row, nurse_fte_days, gp_fte_days)
        used = tuple(versions[i] for i in sorted(set(mine["_v"])) if i < len(versions))
        if not paid.empty:
            total = round_cents_of(int(paid["_money"].sum()), MICRO * int(row.nominal_days))
            parts = " + ".join(
                f"{micro_text(int(g['_fte_days'].sum()))} ETP×jours × {format_eur(int(v))}"
                for v, g in paid.groupby("_value", sort=True)
            )
            paid.attrs["file"] = file
            records.append(
                _record(
                    context,
                    row,
                    "temps_infirmier",
                    "Temps d'infirmier Asalée (délégation de tâches)",
                    paid["person_id"].nunique(),
                    total,
                    Explanation(
                        summary=(
                            f"Temps infirmier Asalée : {paid['person_id'].nunique()} infirmier(s), "
                            f"{decimal_text_micro(int(paid['_fte_days'].sum()), int(row.active_days))} ETP moyen "
                            "sur la période active"
                        ),
                        formula=(
                            f"({parts}) / {row.nominal_days} jours de l'année de contrat = {format_eur(total)}, "
                            "avec ETP×jours = Σ(ETP × jours de présence pendant le financement)"
                        ),
                        inputs=(
                            ("présences d'infirmiers retenues", source_lines(paid)),
                            (
                                "ETP × jours",
                                f"{micro_text(int(paid['_fte_days'].sum()))} ETP×jours d'infirmier",
                            ),
                        ),
                        parameters=tuple(v for v in used if v.in_force) + _ratio_params(context, row),
                        rounding="arrondi une fois au centime (demi-centime au supérieur)",
                        warnings=warnings,
                    ),
                )
            )
        if not outside.empty:
            outside.attrs["file"] = file
            records.append(
                _record(
                    context,
                    row,
                    "temps_infirmier_hors_validite",
                    "Temps d'infirmier Asalée hors période de financement",
                    outside["person_id"].nunique(),
                    0,
                    Explanation(
                        summary="Temps infirmier Asalée hors période de financement du protocole, rien n'est dû",
                        formula=f"{int(outside['_days'].sum())} jour(s)-personne × 0,00 € = 0,00 €",
                        inputs=(("présences concernées", source_lines(outside)),),
                        parameters=used,
                        reason=_outside_reason(context, name),
                        warnings=() if not paid.empty else warnings,
                    ),
                )
            )
        if mine.empty:
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
                            if key in funded
                            else _outside_reason(context, name)
                        ),
                        warnings=warnings,
                    ),
                )
            )
    return records


def _ratio_params(context, row) -> tuple:
    v = context.at("ratio.gp_fte_per_nurse_fte", row.active_start.date(), row.contract_id)
    return (v,) if v is not None and v.in_force else ()


def _ratio_warnings(context, row, nurse_fte_days: int, gp_fte_days: int) -> tuple[str, ...]:
    """The protocol's 1 nurse FTE : N GP FTE ratio, checked on average FTE over the active days."""
    if nurse_fte_days <= 0:
        return ()
    params = _ratio_params(context, row)
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
    f = context.tables["followed_patients"]
    if f.empty:
        return []
    f = f.sort_values([*KEYS, "patient_id", "act", "followed_on", "_line"], kind="stable")
    f = f.drop_duplicates([*KEYS, "patient_id", "act"], keep="first")
    f = _selected(context, f)
    if f.empty:
        return []
    price = context.lookup(name, f["contract_id"], f["followed_on"])
    in_force = price.in_force()
    records = zero_lines(
        context,
        f[~in_force],
        component="suivi_hors_validite",
        label="Patients suivis hors période de financement",
        unit_word="patient(s)-acte",
        reason=lambda g: _outside_reason(context, name),
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


def _act_amount(table, act: str) -> int:
    """Amount of ``act`` in one version of the ``patient.amounts`` table (0 if absent or not in force)."""
    return next((int(r["amount"]) for r in table or () if r["act"] == act), 0)


def _used(column, mask) -> tuple:
    idx = np.unique(column.index[np.asarray(mask, dtype=bool)])
    return tuple(column.versions[i] for i in idx if i < len(column.versions))


# -- concertation ----------------------------------------------------------------------------
def _concertation(context: CalculationContext) -> list[dict]:
    name = "concertation.amount_per_hour"
    c = _selected(context, context.tables["concertation"])
    if c.empty:
        return []
    file = c.attrs.get("file", "concertation.csv")
    price = context.lookup(name, c["contract_id"], c["session_date"])
    c = c.assign(_in_force=price.in_force(), _value=price.values(missing=0), _v=price.index)
    c["_money"] = c["minutes"].astype("int64") * c["_value"].astype("int64")
    info = {
        (r["contract_id"], r["period_id"]): r for r in context.periods.drop_duplicates(KEYS).to_dict("records")
    }  # one dict per period, instead of a frame lookup and a Series per group
    records = []
    for (cid, pid), g in c.groupby(KEYS, sort=True):
        g.attrs["file"] = file
        row = SimpleNamespace(**info[(cid, pid)])
        paid, outside = g[g["_in_force"]], g[~g["_in_force"]]
        if not paid.empty:
            paid.attrs["file"] = file
            minutes = int(paid["minutes"].sum())
            total = round_cents_of(int(paid["_money"].sum()), 60)
            parts = " + ".join(
                f"{int(gg['minutes'].sum())} min × {format_eur(int(v))}/h" for v, gg in paid.groupby("_value")
            )
            records.append(
                _record(
                    context,
                    row,
                    "concertation",
                    "Temps de concertation des médecins",
                    paid["doctor_id"].nunique(),
                    total,
                    Explanation(
                        summary=f"Concertation médecins-infirmier : {minutes} minutes, "
                        f"{paid['doctor_id'].nunique()} médecin(s)",
                        formula=f"({parts}) / 60 = {format_eur(total)}",
                        inputs=(("séances de concertation", source_lines(paid)),),
                        parameters=_used(price, c.index.isin(paid.index)),
                        rounding="arrondi une fois au centime (demi-centime au supérieur)",
                    ),
                )
            )
        if not outside.empty:
            outside.attrs["file"] = file
            records.append(
                _record(
                    context,
                    row,
                    "concertation_hors_validite",
                    "Concertation hors période de financement",
                    outside["doctor_id"].nunique(),
                    0,
                    Explanation(
                        summary="Concertation hors période de financement du protocole, rien n'est dû",
                        formula=f"{int(outside['minutes'].sum())} min × 0,00 € = 0,00 €",
                        inputs=(("séances concernées", source_lines(outside)),),
                        parameters=_used(price, c.index.isin(outside.index)),
                        reason=_outside_reason(context, name),
                    ),
                )
            )
    return records


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
