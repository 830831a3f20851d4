"""ACI CPTS rules, vectorised over all contracts of the periods.

Contract periods run from one anniversary of the contract to the next (``periods.anchor``
is the signature's month-day). Per contract period:

- **Size** from the latest population observed in the period, by the bands of ``sizes``
  in force on the period's last active day (bounds included). No population: nothing is
  paid and a zero line says so.
- **Operating budget** of the size: the first period pays it whole at its start (the
  signature); each later period pays ``payment.operating_advance_share`` (75 %) at the
  anniversary and the rest ``payment.balance_days_after_period`` days after it ends.
- **Missions** (``missions.csv``): the fixed part of the size, pro-rated by the days from
  the mission's start (or the anniversary) to the end of the period over the period's days,
  rounded once, then 75 % at that start (``avance``) and the rest with the balance
  (``solde``); the variable part of the size × the latest achievement in the period.
- **Annual maximum** of the size: when the period's lines exceed it, a negative line
  ``plafond_annuel`` brings the total down to it.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd

from nmr_engine.money import ROUNDING_RULE, apply_rate, div_round
from nmr_engine.plugin import CalculationContext, Explanation, lines_frame
from nmr_engine.plugin.api import euros

KEYS = ["contract_id", "period_id"]


def calculate(context: CalculationContext) -> pd.DataFrame:
    periods = period_frame(context)
    records: list[dict] = []
    for row in periods.itertuples(index=False):
        if row.size == 0:
            records.append(_unknown_size_line(context, row))
        else:
            records += _operating_lines(context, row)
    missions = mission_frame(context, periods[periods["size"] > 0])
    for row in missions.itertuples(index=False):
        records += _mission_lines(context, row)
    records += _cap_lines(context, periods, records)
    return lines_frame(records)


# -- inputs -----------------------------------------------------------------------------------
def period_frame(context: CalculationContext) -> pd.DataFrame:
    """One row per (contract, period): population, size and its amounts, parameters, due dates."""
    cols = [*KEYS, "period_start", "period_end", "period_days", "active_start", "active_end", "payee_id"]
    periods = context.periods[cols].copy()
    first = context.history.groupby("contract_id")["active_start"].min().rename("first_start")
    periods = periods.merge(first.reset_index(), on="contract_id", how="left")
    periods["first"] = periods["active_start"].eq(periods["first_start"])
    periods = periods.merge(_population(context), on=KEYS, how="left")
    periods["population"] = periods["population"].astype("Int64")
    cids, days = periods["contract_id"], periods["active_end"]
    sizes = context.lookup("sizes", cids, days)
    periods["sizes_v"] = [sizes.version_at(i) for i in range(len(periods))]
    for name, col in (
        ("payment.operating_advance_share", "op_share"),
        ("payment.mission_fixed_advance_share", "mission_share"),
        ("payment.balance_days_after_period", "balance_days"),
    ):
        lookup = context.lookup(name, cids, days)
        periods[col] = list(lookup.values(missing=None))
        periods[f"{col}_v"] = [lookup.version_at(i) for i in range(len(periods))]
    periods["balance_due"] = periods["period_end"] + pd.to_timedelta(
        periods["balance_days"].fillna(1).astype("int64"), unit="D"
    )
    periods["size"] = 0
    periods["budget"] = 0
    periods["annual_max"] = 0
    pop = periods["population"].fillna(-1).to_numpy(np.int64)
    for v_index in np.unique(sizes.index):
        if v_index >= len(sizes.versions) or not sizes.versions[v_index].in_force:
            continue
        rows = sizes.index == v_index
        for band in sizes.versions[v_index].value:
            hit = rows & (pop >= band["min_population"]) & (pop <= band["max_population"])
            periods.loc[hit, "size"] = band["size"]
            periods.loc[hit, "budget"] = band["operating_budget"]
            periods.loc[hit, "annual_max"] = band["annual_max"]
            periods.loc[hit, "band"] = _band_text(band)
    for col in ("size", "budget", "annual_max"):
        periods[col] = periods[col].astype("int64")
    return periods.sort_values(KEYS, kind="stable").reset_index(drop=True)


def _population(context: CalculationContext) -> pd.DataFrame:
    pop = context.tables["population"]
    if pop.empty:
        return pd.DataFrame(columns=[*KEYS, "population", "population_line"])
    latest = pop.sort_values([*KEYS, "observed_on", "_line"], kind="stable").drop_duplicates(KEYS, keep="last")
    latest = latest.rename(columns={"_line": "population_line"})
    latest["population_line"] = (
        pop.attrs.get("file", "population.csv") + ", ligne " + latest["population_line"].astype(str)
    )
    return latest[[*KEYS, "population", "population_line"]]


def mission_frame(context: CalculationContext, periods: pd.DataFrame) -> pd.DataFrame:
    """One row per (contract, period, mission started by the period's end) with its amounts."""
    missions = context.tables["missions"].rename(columns={"_line": "mission_line"})
    frame = periods.merge(missions, on="contract_id")
    frame = frame[frame["started_on"] <= frame["active_end"]].copy()
    if frame.empty:
        return frame
    frame["counted_from"] = frame[["started_on", "active_start"]].max(axis=1)
    frame["days"] = ((frame["active_end"] - frame["counted_from"]).dt.days + 1).astype("int64")
    table = context.lookup("missions", frame["contract_id"], frame["active_end"])
    frame["missions_v"] = [table.version_at(i) for i in range(len(frame))]
    fixed = np.zeros(len(frame), dtype=np.int64)
    variable = np.zeros(len(frame), dtype=np.int64)
    labels = np.full(len(frame), "", dtype=object)
    sizes, codes = frame["size"].to_numpy(), frame["mission"].to_numpy()
    for v_index in np.unique(table.index):
        if v_index >= len(table.versions) or not table.versions[v_index].in_force:
            continue
        rows = table.index == v_index
        for m in table.versions[v_index].value:
            for size in range(1, 5):
                hit = rows & (codes == m["mission"]) & (sizes == size)
                fixed[hit], variable[hit], labels[hit] = m[f"fixed_{size}"], m[f"variable_{size}"], m["label"]
    frame["fixed_year"], frame["variable_max"], frame["label"] = fixed, variable, labels
    # Fixed part pro-rated to the anniversary, rounded once: fixed × days / period days.
    frame["fixed"] = div_round(frame["fixed_year"] * frame["days"], frame["period_days"])
    results = context.tables["mission_results"]
    latest = results.sort_values([*KEYS, "mission", "assessed_on", "_line"], kind="stable").drop_duplicates(
        [*KEYS, "mission"], keep="last"
    )
    latest = latest.rename(columns={"achieved_pct": "pct", "_line": "result_line"})[
        [*KEYS, "mission", "pct", "result_line"]
    ]
    frame = frame.merge(latest, on=[*KEYS, "mission"], how="left")
    pct = frame["pct"].fillna(0).astype("int64")
    frame["variable"] = div_round(frame["variable_max"] * pct, 100)
    return frame.sort_values([*KEYS, "mission"], kind="stable").reset_index(drop=True)


def unknown_missions(context: CalculationContext, missions: pd.DataFrame) -> np.ndarray:
    """Mask of the missions whose code is not in the table in force on their start date."""
    if missions.empty:
        return np.zeros(0, dtype=bool)
    table = context.lookup("missions", missions["contract_id"], missions["started_on"])
    known = [{m["mission"] for m in v.value} if v.in_force else set() for v in table.versions] + [set()]
    codes = missions["mission"].to_numpy()
    return np.array([code not in known[i] for code, i in zip(codes, table.index, strict=True)], dtype=bool)


# -- lines ------------------------------------------------------------------------------------
def _record(context, row, component, label, amount, instalment, due, explanation, quantity=1, unit=pd.NA) -> dict:
    return {
        "contract_id": row.contract_id,
        "module": context.module.code,
        "period_id": row.period_id,
        "component": component,
        "label": label,
        "payee_id": row.payee_id,
        "instalment": instalment,
        "due_date": due,
        "quantity": quantity,
        "unit_amount_cents": unit,
        "amount_cents": int(amount),
        "explanation": explanation,
    }


def _params(row, *names) -> tuple:
    return tuple(v for v in (getattr(row, n) for n in ("sizes_v", *names)) if v is not None)


def _size_inputs(row) -> tuple:
    return (
        ("population couverte", f"{int(row.population)} habitants ({row.population_line})"),
        ("taille", f"{row.size} ({row.band})"),
    )


def _unknown_size_line(context, row) -> dict:
    explanation = Explanation(
        summary="Taille de la CPTS inconnue, rien n'est dû",
        formula="0,00 €",
        parameters=_params(row),
        reason="aucune population couverte déclarée dans la période (population.csv) : la taille ne peut être fixée",
    )
    return _record(
        context,
        row,
        "taille_inconnue",
        "Taille de la CPTS inconnue",
        0,
        "unique",
        row.period_start,
        explanation,
        quantity=0,
        unit=0,
    )


def _operating_lines(context, row) -> list[dict]:
    label = "Budget de fonctionnement"
    budget = int(row.budget)
    if row.first:
        explanation = Explanation(
            summary=f"{label}, taille {row.size}, versé en totalité à la signature",
            formula=f"budget annuel de la taille {row.size} = {euros(budget)}",
            inputs=_size_inputs(row),
            parameters=_params(row),
        )
        return [
            _record(context, row, "fonctionnement", label, budget, "unique", row.period_start, explanation, unit=budget)
        ]
    share = Fraction(row.op_share)
    advance = int(apply_rate(budget, share))
    params = _params(row, "op_share_v", "balance_days_v")
    return [
        _record(
            context,
            row,
            "fonctionnement",
            label,
            advance,
            "avance",
            row.period_start,
            Explanation(
                summary=f"{label}, taille {row.size} : avance à l'anniversaire du contrat",
                formula=f"{euros(budget)} × {_pct(share)} = {euros(advance)}",
                inputs=_size_inputs(row),
                parameters=params,
                rounding=ROUNDING_RULE,
            ),
        ),
        _record(
            context,
            row,
            "fonctionnement",
            label,
            budget - advance,
            "solde",
            row.balance_due,
            Explanation(
                summary=f"{label}, taille {row.size} : solde",
                formula=f"{euros(budget)} − {euros(advance)} versés en avance = {euros(budget - advance)}",
                inputs=_size_inputs(row),
                parameters=params,
            ),
        ),
    ]


def _mission_lines(context, row) -> list[dict]:
    code, label = row.mission, f"Mission « {row.label} »"
    share = Fraction(row.mission_share)
    fixed = int(row.fixed)
    advance = int(apply_rate(fixed, share))
    start = pd.Timestamp(row.counted_from)
    prorata = f" × {row.days} j / {row.period_days} j (du {start:%d/%m/%Y} à l'anniversaire)"
    prorated = row.days != row.period_days
    inputs = (
        *_size_inputs(row),
        ("démarrage de la mission", f"{row.started_on:%d/%m/%Y} (missions.csv, ligne {row.mission_line})"),
    )
    params = _params(row, "missions_v", "mission_share_v", "balance_days_v")
    fixed_formula = f"{euros(row.fixed_year)}{prorata if prorated else ''} = {euros(fixed)}"
    records = [
        _record(
            context,
            row,
            f"mission_{code}_fixe",
            f"{label}, part fixe",
            advance,
            "avance",
            start,
            Explanation(
                summary=f"{label}, part fixe : {_pct(share)} au démarrage" + (" (au prorata)" if prorated else ""),
                formula=f"{fixed_formula} ; × {_pct(share)} = {euros(advance)}",
                inputs=inputs,
                parameters=params,
                rounding=ROUNDING_RULE,
            ),
        ),
        _record(
            context,
            row,
            f"mission_{code}_fixe",
            f"{label}, part fixe",
            fixed - advance,
            "solde",
            row.balance_due,
            Explanation(
                summary=f"{label}, part fixe : solde" + (" (au prorata)" if prorated else ""),
                formula=f"{fixed_formula} ; − {euros(advance)} versés au démarrage = {euros(fixed - advance)}",
                inputs=inputs,
                parameters=params,
                rounding=ROUNDING_RULE,
            ),
        ),
    ]
    assessed = not pd.isna(row.pct)
    pct = int(row.pct) if assessed else 0
    reason = None
    if not assessed:
        reason = "indicateurs de la mission non évalués dans la période (mission_results.csv)"
    elif row.variable == 0:
        reason = f"indicateurs de la mission atteints à {pct} %"
    result = f"{pct} % (mission_results.csv, ligne {int(row.result_line)})" if assessed else "non évalué"
    records.append(
        _record(
            context,
            row,
            f"mission_{code}_variable",
            f"{label}, part variable",
            row.variable,
            "solde",
            row.balance_due,
            Explanation(
                summary=f"{label}, part variable : {pct} % des indicateurs",
                formula=f"{euros(row.variable_max)} × {pct} % = {euros(row.variable)}",
                inputs=(*_size_inputs(row), ("atteinte des indicateurs", result)),
                parameters=params,
                reason=reason,
                rounding=ROUNDING_RULE,
            ),
        )
    )
    return records


def _cap_lines(context, periods: pd.DataFrame, records: list[dict]) -> list[dict]:
    if not records:
        return []
    totals = pd.DataFrame(records).groupby(KEYS)["amount_cents"].sum()
    out = []
    for row in periods[periods["size"] > 0].itertuples(index=False):
        total = int(totals.get((row.contract_id, row.period_id), 0))
        if total <= row.annual_max:
            continue
        cut = int(row.annual_max) - total
        out.append(
            _record(
                context,
                row,
                "plafond_annuel",
                "Écrêtement au plafond annuel",
                cut,
                "solde",
                row.balance_due,
                Explanation(
                    summary=f"Plafond annuel de la taille {row.size} dépassé : écrêtement",
                    formula=f"{euros(row.annual_max)} − {euros(total)} = {euros(cut)}",
                    inputs=(*_size_inputs(row), ("total de la période avant plafond", euros(total))),
                    parameters=_params(row),
                ),
            )
        )
    return out


def _band_text(band: dict) -> str:
    low, high = band["min_population"], band["max_population"]
    return f"{low} à {high} habitants" if high < 999_999_999 else f"{low} habitants et plus"


def _pct(rate: Fraction) -> str:
    pct = Fraction(rate) * 100
    return f"{pct.numerator} %" if pct.denominator == 1 else f"{pct.numerator}/{pct.denominator} %"
