"""ACI MSP rules, vectorised over all contracts of the periods.

Per contract period: the patientèle ``P`` of the SISA-associate doctors (sum over those
doctors of their latest observation; doctors not associated on the observation date are
left out), the number ``A`` of associates on the period's last active day, the indicator
table in force on that day (2017 → 2021, then avenant 1 from 2022), the latest assessment
of each indicator.

- **Advance** (instalment ``avance``, due on the first ``advance.due_month_day`` of the
  period): ``advance.share`` × the amount of every socle indicator (prerequisites included)
  at 100 %. It is deducted from the balance (component ``avance_socle``, instalment ``solde``).
- **Balance** (instalment ``solde``, due on the first ``payment.due_month_day`` after the
  period, 30 April N+1): if a socle prerequisite is not achieved at 100 %, one zero line says
  why and no indicator is paid (the advance is taken back). Otherwise each assessed
  indicator pays ``(fixed + associate_points × max(A − included, 0) + variable × P / reference)
  × achieved % × point value`` and the precarity uplift pays
  ``u × point value × Σ variable points (scaled, achieved) of the flagged indicators`` with
  ``u = min(max(share CMU-C/AME − national share, 0), cap)``.

One rounding per line, half-up to the cent.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
from nmr_reglement_arbitral.rules import (
    KEYS,
    common_parameters,
    first_after,
    indicator_frame,
    indicator_lines,
    pct_text,
    period_frame,
    points_text,
    record,
    with_gate,
    with_points,
)

from nmr_engine.money import ROUNDING_RULE, div_round
from nmr_engine.plugin import CalculationContext, Explanation, lines_frame
from nmr_engine.plugin.api import euros

#: Parameters the ACI reads beyond those of the règlement arbitral (name, column).
ACI_LOOKUPS = (
    ("advance.share", "adv_share"),
    ("advance.due_month_day", "adv_md"),
    ("information_system.included_associates", "included"),
)


def calculate(context: CalculationContext) -> pd.DataFrame:
    """The règlement arbitral's points (SISA-associate patientèle, information-system points per
    associate) paid as a balance, plus the advance on the socle and its deduction."""
    periods = period_frame(context, patientele_of=sisa_patientele, lookups=ACI_LOOKUPS)
    if periods.empty:
        return lines_frame([])
    frame = indicator_frame(context, with_associates(context, periods))
    if frame.empty:
        return lines_frame([])
    included = frame["included"].fillna(0).astype("int64")
    frame["extra"] = frame["associate_points"].astype("int64") * (frame["associates"] - included).clip(lower=0)
    frame = with_gate(with_points(frame))
    records = [{**r, "instalment": "solde"} for r in indicator_lines(context, frame)]
    records += advance_lines(context, frame)
    return lines_frame(records)


def with_associates(context: CalculationContext, periods: pd.DataFrame) -> pd.DataFrame:
    """Add the associates count, the doctors left out of the patientèle, and the advance date."""
    periods = periods.copy()
    periods["excluded"] = periods["excluded"].fillna(0).astype("int64")
    periods["patient_lines"] = periods["patient_lines"] + np.where(
        periods["excluded"] > 0,
        "; médecin(s) non associé(s) de la SISA exclu(s) : " + periods["excluded"].astype(str),
        "",
    )
    periods = periods.merge(associates_count(context, periods), on=KEYS, how="left")
    periods["associates"] = periods["associates"].fillna(0).astype("int64")
    periods["advance_date"] = [
        _first_on_or_after(start, md) for start, md in zip(periods["period_start"], periods["adv_md"], strict=True)
    ]
    return periods


def sisa_patientele(context: CalculationContext) -> pd.DataFrame:
    """Per (contract, period): patients of the SISA-associate doctors, CMU-C/AME patients, the file
    lines counted, and how many doctors were left out (not associated on the observation date)."""
    pat = context.tables["patientele"]
    if pat.empty:
        return pd.DataFrame(columns=[*KEYS, "patients", "cmu", "patient_lines", "excluded"])
    doctors = context.tables["associates"]
    doctors = doctors.loc[doctors["doctor"].fillna(False).astype(bool)]
    doctors = doctors[["contract_id", "professional_id", "joined_on", "left_on"]]
    pos = pat.assign(_pos=np.arange(len(pat)))
    hits = pos.merge(doctors, left_on=["contract_id", "doctor_id"], right_on=["contract_id", "professional_id"])
    inside = (hits["joined_on"] <= hits["observed_on"]) & (
        hits["left_on"].isna() | (hits["observed_on"] <= hits["left_on"])
    )
    associated = np.zeros(len(pat), dtype=bool)
    associated[hits.loc[inside, "_pos"].to_numpy()] = True
    excluded = pat[~associated].groupby(KEYS)["doctor_id"].nunique().rename("excluded")
    file = pat.attrs.get("file", "patientele.csv")
    pat = pat[associated]
    if pat.empty:
        return excluded.reset_index()
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
    out["patient_lines"] = (
        out["doctors"].astype(str) + " médecin(s) associé(s) de la SISA, " + file + ", ligne(s) " + out["lines"]
    )
    out["patients"] = out["patients"].astype("int64")
    out["cmu"] = out["cmu"].astype("int64")
    out = out[["patients", "cmu", "patient_lines"]].join(excluded, how="outer")
    return out.reset_index()


def associates_count(context: CalculationContext, periods: pd.DataFrame) -> pd.DataFrame:
    """Per (contract, period): the professionals associated in the SISA on the period's last active day."""
    assoc = context.tables["associates"]
    pairs = periods[[*KEYS, "active_end"]].merge(assoc, on="contract_id")
    active = (pairs["joined_on"] <= pairs["active_end"]) & (
        pairs["left_on"].isna() | (pairs["active_end"] <= pairs["left_on"])
    )
    out = pairs[active].groupby(KEYS).agg(associates=("professional_id", "nunique"))
    return out.reset_index() if not out.empty else pd.DataFrame(columns=[*KEYS, "associates"])


def advance_lines(context, frame: pd.DataFrame) -> list[dict]:
    """Per period: the advance (``avance``) and its deduction from the balance (``solde``)."""
    socle = frame[frame["kind"].isin(["socle_prerequisite", "socle"])]
    records = []
    for _, group in socle.groupby(KEYS, sort=True):
        row = next(group.itertuples(index=False))
        share, pv, ref = Fraction(row.adv_share), int(row.pv), int(row.ref)
        points = Fraction(int(group["points_x_ref"].sum()), ref)
        exact = points * pv * share
        amount = div_round(exact.numerator, exact.denominator)
        params = tuple(v for v in (*common_parameters(row), row.adv_share_v, row.adv_md_v) if v is not None)
        inputs = (
            ("patientèle médecin traitant", f"{row.patients} patients ({row.patient_lines})"),
            ("professionnels associés de la SISA", str(row.associates)),
            ("indicateurs du socle", ", ".join(group["code"])),
        )
        formula = f"{points_text(points)} points du socle à 100 % × {euros(pv)} × {pct_text(share)} = {euros(amount)}"
        advance = Explanation(
            summary=f"Avance de {pct_text(share)} du socle à 100 %",
            formula=formula,
            inputs=inputs,
            parameters=params,
            rounding=ROUNDING_RULE,
            reason=None if amount else "aucun point au socle",
        )
        label = "Avance sur la rémunération du socle"
        records.append(
            record(context, row, "avance_socle", label, amount, 1, pd.NA, advance, "avance", row.advance_date)
        )
        failed = bool(group["_gate_failed"].any())
        deduction = Explanation(
            summary=f"Déduction de l'avance versée le {row.advance_date:%d/%m/%Y}",
            formula=f"− {euros(amount)}",
            inputs=inputs,
            parameters=params,
            reason=None if amount else "aucune avance versée",
            warnings=("prérequis du socle non atteints : l'avance est reprise",) if failed else (),
        )
        records.append(
            record(context, row, "avance_socle", "Déduction de l'avance versée", -amount, 1, pd.NA, deduction, "solde")
        )
    return records


def _first_on_or_after(day, month_day: str | None) -> pd.Timestamp:
    """The first MM-DD on or after ``day``."""
    return first_after(pd.Timestamp(day) - pd.Timedelta(days=1), month_day)
