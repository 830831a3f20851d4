"""Règlement arbitral rules, vectorised over all contracts of the periods.

Per contract period: the patientèle ``P`` (sum over doctors of their latest observation),
the indicator table in force on the period's last active day, the latest assessment of each
indicator. If a socle prerequisite is not achieved at 100 %, one zero line says why and
nothing else is due. Otherwise each assessed indicator pays
``(fixed + variable × P / reference) × achieved % × point value`` and the precarity uplift
pays ``u × point value × Σ variable points (scaled, achieved) of the flagged indicators``
with ``u = min(max(share CMU-C/AME − national share, 0), cap)``. One rounding per line.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import numpy as np
import pandas as pd

from nmr_engine.errors import Problem
from nmr_engine.money import ROUNDING_RULE, div_round
from nmr_engine.plugin import CalculationContext, Explanation, lines_frame
from nmr_engine.plugin.api import euros

KEYS = ["contract_id", "period_id"]


def calculate(context: CalculationContext) -> pd.DataFrame:
    frame = indicator_frame(context, period_frame(context))
    return lines_frame(indicator_lines(context, frame))


def indicator_lines(context: CalculationContext, frame: pd.DataFrame) -> list[dict]:
    """The socle gate, one line per assessed indicator and the precarity uplift, per period.

    Shared with the regimes built on the same points mechanics (the ACI MSP of 2017)."""
    if frame.empty:
        return []
    frame = with_gate(with_points(frame))
    records = [_gate_line(context, group) for _, group in frame[frame["_gate_failed"]].groupby(KEYS, sort=True)]
    paying = frame[~frame["_gate_failed"] & frame["pct"].notna()].copy()
    # (points × ref) × pct × point value / (100 × ref): exact int64, then one rounding.
    ref, pv, pct = paying["ref"].to_numpy(np.int64), paying["pv"].to_numpy(np.int64), paying["pct"].astype("int64")
    paying["amount"] = div_round(paying["points_x_ref"].to_numpy(np.int64) * pv * pct.to_numpy(), 100 * ref)
    records += [_indicator_line(context, row) for row in paying.itertuples(index=False)]
    records += [_precarity_line(context, group) for _, group in paying.groupby(KEYS, sort=True)]
    return records


def with_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``points_x_ref`` = (fixed + extra) × reference + variable × patientèle (exact int64)."""
    if "points_x_ref" in frame:
        return frame
    fixed = frame["fixed"].to_numpy(np.int64) + frame["extra"].to_numpy(np.int64)
    variable = frame["variable"].to_numpy(np.int64) * frame["patients"].to_numpy(np.int64)
    return frame.assign(points_x_ref=fixed * frame["ref"].to_numpy(np.int64) + variable)


def with_gate(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``_gate_failed``: a socle prerequisite of the period is not achieved at 100 %."""
    if "_gate_failed" in frame:
        return frame
    gate = frame[frame["kind"].eq("socle_prerequisite")].assign(_missed=lambda f: f["pct"].fillna(-1).ne(100))
    failed = gate.groupby(KEYS)["_missed"].any()
    frame = frame.merge(failed.rename("_gate_failed").reset_index(), on=KEYS, how="left")
    frame["_gate_failed"] = frame["_gate_failed"].fillna(False).astype(bool)
    return frame


# -- inputs -----------------------------------------------------------------------------------
#: Parameters read per period (name, column); ``<column>_v`` holds the version used.
PERIOD_LOOKUPS = (
    ("precarity.national_share", "national"),
    ("precarity.cap", "cap"),
    ("payment.due_month_day", "due_md"),
)


def period_frame(context: CalculationContext, patientele_of=None, lookups=()) -> pd.DataFrame:
    """One row per computed (contract, period): patientèle, parameters in force on the last
    active day (with their versions), due date, and the index of the indicator table."""
    periods = context.periods[[*KEYS, "active_end", "period_start", "period_end", "payee_id"]].copy()
    if periods.empty:
        return periods
    periods = periods.merge((patientele_of or patientele)(context), on=KEYS, how="left")
    periods["patients"] = periods["patients"].fillna(0).astype("int64")
    periods["cmu"] = periods["cmu"].fillna(0).astype("int64")
    periods["patient_lines"] = periods["patient_lines"].fillna("aucune observation")
    cids, days = periods["contract_id"], periods["active_end"]
    table = context.lookup("indicators", cids, days)
    periods["_table"] = table.index
    periods["table_v"] = [table.version_at(i) for i in range(len(periods))]
    for name, col in (("point_value", "pv"), ("reference_patients", "ref")):
        lookup = context.lookup(name, cids, days)
        periods[col] = lookup.values(missing=0)
        periods[f"{col}_v"] = [lookup.version_at(i) for i in range(len(periods))]
    for name, col in (*PERIOD_LOOKUPS, *lookups):
        lookup = context.lookup(name, cids, days)
        periods[col] = list(lookup.values(missing=None))
        periods[f"{col}_v"] = [lookup.version_at(i) for i in range(len(periods))]
    periods["due_date"] = [
        first_after(end, md) for end, md in zip(periods["period_end"], periods["due_md"], strict=True)
    ]
    return periods


def indicator_frame(context: CalculationContext, periods: pd.DataFrame) -> pd.DataFrame:
    """One row per (contract, period, indicator of the table in force) with everything a line needs."""
    if periods.empty:
        return pd.DataFrame()
    table = context.lookup("indicators", periods["contract_id"], periods["active_end"])
    rows = []
    for v_index in np.unique(periods["_table"]):
        if v_index >= len(table.versions) or not table.versions[v_index].in_force:
            continue
        indicators = pd.DataFrame(list(table.versions[v_index].value)).rename(
            columns={"fixed_points": "fixed", "variable_points": "variable", "confidence": "row_confidence"}
        )
        rows.append(periods[periods["_table"] == v_index].merge(indicators, how="cross"))
    if not rows:
        return pd.DataFrame()
    frame = pd.concat(rows, ignore_index=True)
    if "extra" not in frame:
        frame["extra"] = 0  # points a regime adds to an indicator's fixed points (none here)
    latest = assessments(context)
    frame = frame.merge(latest, left_on=[*KEYS, "code"], right_on=[*KEYS, "indicator"], how="left")
    return frame.sort_values([*KEYS, "code"], kind="stable").reset_index(drop=True)


def patientele(context: CalculationContext) -> pd.DataFrame:
    """Per (contract, period): patients, CMU-C/AME patients, and the file lines counted."""
    pat = context.tables["patientele"]
    if pat.empty:
        return pd.DataFrame(columns=[*KEYS, "patients", "cmu", "patient_lines"])
    latest = pat.sort_values([*KEYS, "doctor_id", "observed_on", "_line"], kind="stable").drop_duplicates(
        [*KEYS, "doctor_id"], keep="last"
    )
    file = pat.attrs.get("file", "patientele.csv")
    out = latest.groupby(KEYS).agg(
        patients=("mt_patients", "sum"),
        cmu=("cmu_ame_patients", "sum"),
        doctors=("doctor_id", "nunique"),
        lines=("_line", lambda s: ", ".join(str(x) for x in sorted(s))),
    )
    out["patient_lines"] = out["doctors"].astype(str) + " médecin(s), " + file + ", ligne(s) " + out["lines"]
    out["patients"] = out["patients"].astype("int64")
    out["cmu"] = out["cmu"].astype("int64")
    return out[["patients", "cmu", "patient_lines"]].reset_index()


def assessments(context: CalculationContext) -> pd.DataFrame:
    """Latest assessment of each indicator per (contract, period): pct and its file line."""
    ind = context.tables["indicators"]
    cols = [*KEYS, "indicator", "pct", "assessed_on", "assessment_line"]
    if ind.empty:
        return pd.DataFrame(columns=cols)
    latest = ind.sort_values([*KEYS, "indicator", "assessed_on", "_line"], kind="stable").drop_duplicates(
        [*KEYS, "indicator"], keep="last"
    )
    latest = latest.rename(columns={"achieved_pct": "pct", "_line": "assessment_line"})
    latest["pct"] = latest["pct"].astype("Int64")
    latest.attrs["file"] = ind.attrs.get("file", "indicators.csv")
    return latest[cols]


def unknown_indicators(context: CalculationContext, ind: pd.DataFrame) -> np.ndarray:
    """Mask of the assessment rows whose code is not in the table in force on their date."""
    if ind.empty:
        return np.zeros(0, dtype=bool)
    table = context.lookup("indicators", ind["contract_id"], ind["assessed_on"])
    known = [{r["code"] for r in v.value} if v.in_force else set() for v in table.versions] + [
        set()
    ]  # the sentinel slot: no version in force
    codes = ind["indicator"].to_numpy()
    return np.array([code not in known[i] for code, i in zip(codes, table.index, strict=True)], dtype=bool)


def check_inputs(tables, context) -> list[Problem]:
    """CMU-C/AME patients within the patientèle; rates ≤ 100 %; indicator codes known."""
    problems = []
    pat = tables["patientele"]
    file = pat.attrs.get("file", "patientele.csv")
    for line in pat.loc[pat["cmu_ame_patients"] > pat["mt_patients"], "_line"].head(20):
        problems.append(
            Problem(file, "plus de patients CMU-C/AME que de patients médecin traitant", int(line), "cmu_ame_patients")
        )
    ind = tables["indicators"]
    file = ind.attrs.get("file", "indicators.csv")
    for line in ind.loc[ind["achieved_pct"] > 100, "_line"].head(20):
        problems.append(Problem(file, "taux d'atteinte supérieur à 100", int(line), "achieved_pct"))
    bad = ind[unknown_indicators(context, ind)].head(20)
    for code, day, line in zip(bad["indicator"], bad["assessed_on"], bad["_line"], strict=True):
        message = f"indicateur « {code} » absent de la table des indicateurs en vigueur le {day:%d/%m/%Y}"
        problems.append(Problem(file, message, int(line), "indicator"))
    return problems


# -- lines ------------------------------------------------------------------------------------
def record(context, row, component, label, amount, quantity, unit, explanation, instalment="unique", due=None) -> dict:
    """A line of this family of regimes (the due date of the period unless ``due``)."""
    return {
        "contract_id": row.contract_id,
        "module": context.module.code,
        "period_id": row.period_id,
        "component": component,
        "label": label,
        "payee_id": row.payee_id,
        "instalment": instalment,
        "due_date": row.due_date if due is None else due,
        "quantity": quantity,
        "unit_amount_cents": unit,
        "amount_cents": int(amount),
        "explanation": explanation,
    }


#: Version columns every line of a period cites (those a regime does not read are absent).
COMMON_PARAMETERS = ("pv_v", "ref_v", "table_v", "due_md_v", "included_v")


def common_parameters(row) -> tuple:
    return tuple(v for v in (getattr(row, c, None) for c in COMMON_PARAMETERS) if v is not None)


def _gate_line(context, group: pd.DataFrame) -> dict:
    prereq = group[group["kind"].eq("socle_prerequisite")]
    missed = prereq[prereq["pct"].fillna(-1).ne(100)]
    reasons = [
        f"« {r.label} » ({r.code}) " + ("non évalué" if pd.isna(r.pct) else f"atteint à {int(r.pct)} %")
        for r in missed.itertuples()
    ]
    row = next(group.itertuples(index=False))
    explanation = Explanation(
        summary=f"Prérequis du socle non atteints : {len(missed)} sur {len(prereq)}, rien n'est dû",
        formula="aucun indicateur n'est rémunéré tant que tous les prérequis du socle ne sont pas atteints à 100 % "
        "= 0,00 €",
        inputs=tuple(
            (
                f"évaluation {r.code}",
                "absente" if pd.isna(r.pct) else f"{int(r.pct)} % (ligne {int(r.assessment_line)})",
            )
            for r in prereq.itertuples()
        ),
        parameters=common_parameters(row),
        reason="prérequis du socle non atteints : " + " ; ".join(reasons),
    )
    return record(context, row, "socle_non_atteint", "Prérequis du socle non atteints", 0, len(missed), 0, explanation)


def _indicator_line(context, row) -> dict:
    pct = int(row.pct)
    scaled = Fraction(int(row.variable) * int(row.patients), int(row.ref))
    points = int(row.fixed) + int(row.extra) + scaled
    extra = (
        f" + {row.associate_points} points × {int(row.associates) - int(row.included)} associé(s) au-delà de "
        f"{row.included}"
        if row.extra
        else ""
    )
    formula = (
        f"({row.fixed} points fixes{extra} + {row.variable} points variables × {row.patients} patients / {row.ref}) "
        f"× {pct} % × {euros(row.pv)} = {points_text(points)} points × {pct} % × {euros(row.pv)} "
        f"= {euros(row.amount)}"
    )
    label = f"Indicateur {_kind_label(row.kind)} : {row.label}"
    associates = (("professionnels associés de la SISA", str(row.associates)),) if hasattr(row, "associates") else ()
    explanation = Explanation(
        summary=f"{label} : {points_text(points * pct / 100)} points rémunérés",
        formula=formula,
        inputs=(
            ("patientèle médecin traitant", f"{row.patients} patients ({row.patient_lines})"),
            *associates,
            ("taux d'atteinte", f"{pct} % (indicators.csv, ligne {int(row.assessment_line)})"),
            ("fiabilité de la ligne du barème", f"{row.row_confidence} — {row.source}"),
        ),
        parameters=common_parameters(row),
        reason=None if row.amount else f"{points_text(points)} points atteints à {pct} % : rien n'est dû",
        rounding=ROUNDING_RULE,
        warnings=(f"points de l'indicateur {row.code} de fiabilité {row.row_confidence}",)
        if row.row_confidence in ("LOW", "OPEN")
        else (),
    )
    return record(context, row, f"indicateur_{row.code}", label, row.amount, 1, pd.NA, explanation)


def _precarity_line(context, group: pd.DataFrame) -> dict:
    row = next(group.itertuples(index=False))
    flagged = group[group["precarity"].astype(bool)]
    base = sum(
        (Fraction(int(r.variable) * int(r.patients) * int(r.pct), int(r.ref) * 100) for r in flagged.itertuples()),
        Fraction(0),
    )
    share = Fraction(int(row.cmu), int(row.patients)) if row.patients else Fraction(0)
    gap = share - Fraction(row.national)
    uplift = min(max(gap, Fraction(0)), Fraction(row.cap))
    exact = base * uplift * int(row.pv)
    amount = div_round(exact.numerator, exact.denominator)
    capped = gap > Fraction(row.cap)
    reason = None
    if amount == 0:
        reason = (
            f"part de patients CMU-C/AME de la structure ({pct_text(share)}) non supérieure à la part nationale "
            f"({pct_text(Fraction(row.national))})"
            if uplift == 0
            else "aucun point variable majorable"
        )
    explanation = Explanation(
        summary=f"Majoration pour précarité : {pct_text(uplift)}" + (" (plafonnée)" if capped else ""),
        formula=(
            f"min(max({pct_text(share)} − {pct_text(Fraction(row.national))}, 0), {pct_text(Fraction(row.cap))}) "
            f"= {pct_text(uplift)} ; {points_text(base)} points variables majorables × {pct_text(uplift)} "
            f"× {euros(row.pv)} = {euros(amount)}"
        ),
        inputs=(
            ("patientèle médecin traitant", f"{row.patients} patients ({row.patient_lines})"),
            ("patients CMU-C/AME", str(row.cmu)),
            ("indicateurs majorables", ", ".join(flagged["code"]) or "aucun"),
        ),
        parameters=tuple(v for v in (*common_parameters(row), row.national_v, row.cap_v) if v is not None),
        reason=reason,
        rounding=ROUNDING_RULE,
    )
    return record(context, row, "majoration_precarite", "Majoration pour précarité", amount, 1, pd.NA, explanation)


# -- small helpers -----------------------------------------------------------------------------
def _kind_label(kind: str) -> str:
    return {"socle_prerequisite": "socle prérequis", "socle": "socle", "optional": "optionnel"}.get(kind, kind)


def first_after(day, month_day: str | None) -> pd.Timestamp:
    """The first MM-DD strictly after ``day``."""
    day = pd.Timestamp(day).date()
    month, dom = (int(x) for x in (month_day or "04-30").split("-"))
    candidate = dt.date(day.year, month, dom)
    if candidate <= day:
        candidate = dt.date(day.year + 1, month, dom)
    return pd.Timestamp(candidate)


def points_text(value: Fraction) -> str:
    """Exact decimal when it terminates within 4 digits, else rounded with '≈'."""
    value = Fraction(value)
    scaled = value * 10_000
    if scaled.denominator == 1:
        whole, frac = divmod(int(scaled), 10_000)
        return f"{whole}" + (f",{frac:04d}".rstrip("0") if frac else "")
    approx = div_round(scaled.numerator, scaled.denominator)
    whole, frac = divmod(approx, 10_000)
    return f"≈ {whole}" + (f",{frac:04d}".rstrip("0") if frac else "")


def pct_text(rate: Fraction) -> str:
    return points_text(Fraction(rate) * 100) + " %"
