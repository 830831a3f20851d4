"""Module 1 (missions coordonnées) rules, vectorised over all contracts of the periods.

Per contract period (parameters read on the first active day of the period):

- **Eligibility**: at least ``eligibility.min_gps`` GPs and ``eligibility.min_paramedicals``
  paramedical professionals present (half-days > 0) during the period; otherwise one zero line.
- **Patients** counted: declaration in force at some day of the active period; aged
  ``patients.adult_age`` or more on its first day, or aged from ``patients.child_min_age`` and
  seen at least ``patients.child_min_consultations`` times (distinct days) by a structure doctor
  in the period; ALD patients included when ``patients.include_ald``.
- **Class**: the row of ``size_classes`` whose bounds hold the count (redone each period).
- **Part A** = patients × class ``patient_amount`` × pro-rata; **part B** = FTE × class
  ``fte_amount`` × pro-rata, with FTE = Σ(half-days × days present) / (11 × active days).
  Pro-rata (``payment.proration`` = days) = active days / days of the full contract year.
- **Modulation**: ``objectives.share_at_stake`` of A + B depends on the score of the contract's
  indicators (``objectives.indicators``, weighted), each scored by ``objectives.scoring``. Parts A
  and B keep the rest and are paid by ``payment.instalments`` (80 % at the start, 20 % three months
  later by default); the modulated part is paid once at the end of the period.

Each line is rounded once (half-up to the cent); instalments round all but the last.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import pandas as pd

from nmr_engine.decimals import decimal_text, parse_decimal, percent_text
from nmr_engine.money import format_eur, round_cents, split_instalments
from nmr_engine.plugin import CalculationContext, Explanation, lines_frame
from nmr_engine.plugin.helpers import lines_text, pair_rows
from nmr_engine.plugin.intervals import clip_intervals, suspended_days, with_nominal_days

KEYS = ["contract_id", "period_id"]
SCORINGS = ("all_or_nothing", "linear")


def calculate(context: CalculationContext) -> pd.DataFrame:
    periods = with_nominal_days(context)
    if periods.empty:
        return lines_frame([])
    presence = _presence(context, periods)
    patients = _patients(context, periods)
    results = context.tables["objectives"]
    # Rows of each (contract, period), found once (a boolean filter per period is quadratic).
    objectives: dict = {}
    for cid, pid, ind, achieved, target, floor, line in zip(
        results["contract_id"], results["period_id"], results["indicator"], results["achieved"],
        results["target"], results["floor"], results["_line"], strict=True,
    ):  # fmt: skip
        objectives.setdefault((cid, pid), {})[ind] = (achieved, target, floor, line)
    records: list[dict] = []
    for row in periods.itertuples(index=False):
        key = (row.contract_id, row.period_id)
        records += _period_lines(context, row, presence.get(key), patients.get(key), objectives.get(key, {}))
    return lines_frame(records)


# -- inputs per period --------------------------------------------------------------------
def _period_params(context: CalculationContext, periods: pd.DataFrame) -> dict[str, np.ndarray]:
    """Patient-count parameters in force on each period's first active day (arrays, one item per
    row of ``periods``), with the rows' contract_id, period_id, active_start and active_end."""
    out = {col: periods[col].to_numpy() for col in (*KEYS, "active_start", "active_end")}
    contracts, starts = periods["contract_id"], periods["active_start"]
    for name in ("child_min_age", "adult_age", "child_min_consultations"):
        out[name] = np.asarray(context.lookup(f"patients.{name}", contracts, starts).values(missing=0), dtype="int64")
    include = context.lookup("patients.include_ald", contracts, starts)
    out["include_ald"] = include.values(missing=True).astype(bool)
    return out


def _presence(context: CalculationContext, periods: pd.DataFrame) -> dict:
    """(contract, period) -> presence summary: half-day-days, GPs, paramedicals, source lines.

    Each professional row is paired with its contract's periods by row positions (NumPy), and
    the sums are taken over integer period codes: no merge, no pandas group per period."""
    prof = context.tables["professionals"]
    file = prof.attrs.get("file", "professionals.csv")
    per = periods[[*KEYS, "active_start", "active_end"]]
    pi, pj = pair_rows(prof["contract_id"], per["contract_id"])
    day = "datetime64[ns]"
    win_start = per["active_start"].to_numpy(day)[pj]
    win_end = per["active_end"].to_numpy(day)[pj]
    present_from = prof["present_from"].to_numpy(day)[pi]
    present_to = prof["present_to"].to_numpy(day)[pi]
    lo, hi, days = clip_intervals(present_from, present_to, win_start, win_end)
    if not context.suspensions.empty:
        spans = pd.DataFrame({"contract_id": prof["contract_id"].to_numpy()[pi], "_lo": lo, "_hi": hi})
        days -= suspended_days(context, spans, "_lo", "_hi").to_numpy()
    half_days = prof["half_days_per_week"].to_numpy()[pi]
    keep = (days > 0) & (half_days > 0)
    if not keep.any():
        return {}
    pi, pj, days, half_days = pi[keep], pj[keep], days[keep], half_days[keep]
    # one code per (contract, period) key (the frame may, in principle, repeat a key)
    key_of: dict = {}
    pairs = zip(per["contract_id"], per["period_id"], strict=True)
    per_key = np.array([key_of.setdefault(k, len(key_of)) for k in pairs], dtype=np.int64)
    keys = list(key_of)
    code = per_key[pj]
    n = len(keys)
    hd = np.zeros(n, dtype=np.int64)
    np.add.at(hd, code, half_days.astype(np.int64) * days)
    # each professional once per key, with the role of its first row (as drop_duplicates keeps)
    person = pd.factorize(prof["professional_id"].to_numpy()[pi])[0].astype(np.int64)
    _, first = np.unique(code * (int(person.max()) + 1) + person, return_index=True)
    role = prof["role"].to_numpy()[pi][first]
    people = np.bincount(code[first], minlength=n)
    counts = {r: np.bincount(code[first][role == r], minlength=n) for r in ("generaliste", "paramedical", "autre")}
    lines = prof["_line"].to_numpy()[pi]
    order = np.lexsort((lines, code))
    bounds = np.searchsorted(code[order], np.arange(n + 1))
    out = {}
    for k in np.unique(code):
        out[keys[k]] = {
            "hd_days": int(hd[k]),
            "gps": int(counts["generaliste"][k]),
            "paramedicals": int(counts["paramedical"][k]),
            "others": int(counts["autre"][k]),
            "people": int(people[k]),
            "lines": lines_text(file, lines[order[bounds[k] : bounds[k + 1]]]),
        }
    return out


def _patients(context: CalculationContext, periods: pd.DataFrame) -> dict:
    """(contract, period) -> counts of the patientèle (vectorised over every patient).

    Each patient is paired with each period of its contract by row positions (NumPy), so no
    text column is copied per pair: the national patientèle (millions of rows) is counted
    without materialising a patients × periods table."""
    pat = context.tables["patients"]
    file = pat.attrs.get("file", "patients.csv")
    params = _period_params(context, periods)
    pat_row, per_row = pair_rows(pat["contract_id"], periods["contract_id"])
    day = "datetime64[ns]"
    start = params["active_start"].astype(day)[per_row]
    end = params["active_end"].astype(day)[per_row]
    declared = pat["declared_on"].to_numpy(day)[pat_row]
    ended = pat["ended_on"].to_numpy(day)[pat_row]
    keep = (declared <= end) & (np.isnat(ended) | (ended >= start))
    pat_row, per_row = pat_row[keep], per_row[keep]
    age = _age(pat["birth_date"], pat_row, periods["active_start"], per_row)
    consultations = _child_consultations(pat, context.tables["child_consultations"], params, pat_row, per_row)
    young = age < params["child_min_age"][per_row]
    child = ~young & (age < params["adult_age"][per_row])
    child_ok = child & (consultations >= params["child_min_consultations"][per_row])
    ald = pat["ald"].fillna(False).to_numpy(bool)[pat_row]
    ald_out = ald & ~params["include_ald"][per_row]
    counted = ((~young & ~child) | child_ok) & ~ald_out
    flags = {
        "counted": counted,
        "adults": ~young & ~child & counted,
        "ald": ald & counted,
        "children": child_ok,
        "children_not": child & ~child_ok,
        "young": young,
        "ald_out": ald_out,
    }
    n = len(periods)
    sums = {name: np.bincount(per_row[flag], minlength=n) for name, flag in flags.items()}
    present = np.bincount(per_row, minlength=n) > 0
    kept_period = per_row[counted]
    kept_lines = pat["_line"].to_numpy()[pat_row[counted]]
    order = np.argsort(kept_period, kind="stable")
    bounds = np.searchsorted(kept_period[order], np.arange(n + 1))
    contract_ids, period_ids = params["contract_id"], params["period_id"]
    out = {}
    for i in np.flatnonzero(present):
        counts = {name: int(values[i]) for name, values in sums.items()}
        lines = kept_lines[order[bounds[i] : bounds[i + 1]]]
        counts["lines"] = lines_text(file, lines) if len(lines) else "aucune ligne"
        out[(contract_ids[i], period_ids[i])] = counts
    return out


def _age(birth: pd.Series, born_row: np.ndarray, on: pd.Series, on_row: np.ndarray) -> np.ndarray:
    """Age in whole years on ``on[on_row]`` of people born on ``birth[born_row]`` (date columns):
    year, month and day read once per row of each column, then paired."""

    def parts(days: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index = pd.DatetimeIndex(days)
        return tuple(np.asarray(getattr(index, f), dtype=np.int64)[rows] for f in ("year", "month", "day"))

    (ref_y, ref_m, ref_d), (birth_y, birth_m, birth_d) = parts(on, on_row), parts(birth, born_row)
    before_birthday = (ref_m < birth_m) | ((ref_m == birth_m) & (ref_d < birth_d))
    return ref_y - birth_y - before_birthday.astype(np.int64)


def _child_consultations(
    pat: pd.DataFrame, cons: pd.DataFrame, params: dict, pat_row: np.ndarray, per_row: np.ndarray
) -> np.ndarray:
    """Distinct consultation days of each (patient, period) pair in its period (0 when none)."""
    if len(pat_row) == 0 or cons.empty:
        return np.zeros(len(pat_row), dtype="int64")
    pat_contract, cons_contract, _ = _joint_codes(pat["contract_id"], cons["contract_id"])
    pat_patient, cons_patient, n_pat = _joint_codes(pat["patient_id"], cons["patient_id"])
    period_codes, period_ids = pd.factorize(params["period_id"])
    n_per = len(period_ids) + 1
    cons_period = pd.Index(period_ids).get_indexer(cons["period_id"])
    cons_key = (cons_contract.astype(np.int64) * n_pat + cons_patient) * n_per + cons_period
    days = cons["consultation_date"].to_numpy("datetime64[ns]")
    ok = (cons_period >= 0) & ~np.isnat(days)
    key, when = cons_key[ok], days[ok].view(np.int64)
    order = np.lexsort((when, key))
    key, when = key[order], when[order]
    distinct = np.r_[True, (key[1:] != key[:-1]) | (when[1:] != when[:-1])] if len(key) else np.zeros(0, bool)
    keys, seen = np.unique(key[distinct], return_counts=True)
    pair_key = (pat_contract.astype(np.int64)[pat_row] * n_pat + pat_patient[pat_row]) * n_per + period_codes[per_row]
    pos = np.minimum(np.searchsorted(keys, pair_key), max(len(keys) - 1, 0))
    hit = keys[pos] == pair_key if len(keys) else np.zeros(len(pair_key), bool)
    return np.where(hit, seen[pos] if len(keys) else 0, 0).astype("int64")


def _joint_codes(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes of ``a`` and ``b`` in one space of equal values (0 for a missing value), and its size."""
    if isinstance(a.dtype, pd.CategoricalDtype) and isinstance(b.dtype, pd.CategoricalDtype):
        na = len(a.cat.categories)
        both = pd.concat([a.cat.categories.to_series(), b.cat.categories.to_series()], ignore_index=True)
        codes, uniques = pd.factorize(both)
        per_a, per_b = np.append(codes[:na] + 1, 0), np.append(codes[na:] + 1, 0)
        return per_a[a.cat.codes.to_numpy()], per_b[b.cat.codes.to_numpy()], len(uniques) + 1
    a, b = (s.astype(str) if isinstance(s.dtype, pd.CategoricalDtype) else s for s in (a, b))
    codes, uniques = pd.factorize(pd.concat([a, b], ignore_index=True))
    return codes[: len(a)] + 1, codes[len(a) :] + 1, len(uniques) + 1


# -- one contract period -------------------------------------------------------------------
def _at(context: CalculationContext, name: str, row):
    return context.at(name, row.active_start.date(), row.contract_id)


def _period_lines(
    context: CalculationContext, row, presence: dict | None, patients: dict | None, objective_rows=None
) -> list[dict]:
    presence = presence or {"hd_days": 0, "gps": 0, "paramedicals": 0, "others": 0, "people": 0, "lines": "aucune"}
    patients = patients or {
        "counted": 0, "adults": 0, "ald": 0, "children": 0, "children_not": 0, "young": 0, "ald_out": 0,
        "lines": "aucune ligne",
    }  # fmt: skip
    p = {
        name: _at(context, name, row)
        for name in (
            "eligibility.min_gps",
            "eligibility.min_paramedicals",
            "size_classes",
            "fte.half_days_per_fte",
            "objectives.share_at_stake",
            "objectives.scoring",
            "objectives.indicators",
            "payment.instalments",
            "payment.proration",
            "patients.child_min_age",
            "patients.adult_age",
            "patients.child_min_consultations",
            "patients.include_ald",
        )
    }
    presence_input = (
        "professionnels présents",
        f"{presence['gps']} généraliste(s), {presence['paramedicals']} paramédical(aux), "
        f"{presence['others']} autre(s) ({presence['lines']})",
    )
    min_gps, min_para = p["eligibility.min_gps"].value, p["eligibility.min_paramedicals"].value
    if presence["gps"] < min_gps or presence["paramedicals"] < min_para:
        return [
            _record(
                context,
                row,
                "forfait_non_eligible",
                "Forfait de coordination — structure non éligible",
                "unique",
                row.period_end,
                presence["people"],
                0,
                Explanation(
                    summary="Forfait de coordination : structure non éligible dans la période, rien n'est dû",
                    formula="0,00 €",
                    inputs=(presence_input,),
                    parameters=(p["eligibility.min_gps"], p["eligibility.min_paramedicals"]),
                    reason=(
                        f"la structure compte {presence['gps']} médecin(s) généraliste(s) et "
                        f"{presence['paramedicals']} professionnel(s) paramédical(aux) présents dans la période ; "
                        "il en faut au moins "
                        f"{min_gps} et {min_para}"
                    ),
                ),
            )
        ]

    n = patients["counted"]
    size_class = next(
        (c for c in p["size_classes"].value if c["min_patients"] <= n <= c["max_patients"]),
        None,
    )
    if size_class is None:
        return [
            _record(
                context, row, "forfait_sans_classe", "Forfait de coordination — aucune classe de taille", "unique",
                row.period_end, n, 0,
                Explanation(
                    summary="Forfait de coordination : aucune classe de taille ne contient la patientèle",
                    formula="0,00 €",
                    inputs=(("patients comptés", str(n)),),
                    parameters=(p["size_classes"],),
                    reason=f"{n} patients : hors des bornes de la table des classes (paramètre size_classes)",
                ),
            )
        ]  # fmt: skip

    if p["payment.proration"].value == "days":
        prorate = Fraction(int(row.active_days), int(row.nominal_days))
        prorate_text = f" × {row.active_days}/{row.nominal_days} jours"
    else:
        prorate, prorate_text = Fraction(1), ""
    share = Fraction(p["objectives.share_at_stake"].value)
    fixed = 1 - share
    hd_per_fte = p["fte.half_days_per_fte"].value
    fte = Fraction(presence["hd_days"], hd_per_fte * int(row.active_days))
    part_a = n * size_class["patient_amount"] * prorate
    part_b = size_class["fte_amount"] * fte * prorate
    class_text = (
        f"classe {size_class['size_class']} ({size_class['min_patients']} à {size_class['max_patients']} patients)"
    )
    fixed_text = f" × (100 % − {percent_text(share)} modulés)" if share else ""
    common_params = (
        p["size_classes"],
        p["payment.proration"],
        p["objectives.share_at_stake"],
        p["payment.instalments"],
    )

    records = []
    a_total = round_cents(part_a * fixed)
    records += _instalment_lines(
        context,
        row,
        p["payment.instalments"],
        component="part_a_patientele",
        label="Part A — patientèle médecin traitant",
        quantity=n,
        total=a_total,
        summary=f"Part A (temps de management) : {n} patients, {class_text}",
        formula=f"{n} patients × {format_eur(size_class['patient_amount'])}{prorate_text}{fixed_text}",
        inputs=(
            (
                "patients comptés",
                f"{n} dont {patients['adults']} ayant déclaré leur médecin traitant (dont {patients['ald']} en ALD) et "
                f"{patients['children']} enfant(s) vus au moins {p['patients.child_min_consultations'].value} fois "
                f"({patients['lines']})",
            ),
            (
                "patients non comptés",
                f"{patients['children_not']} enfant(s) vus moins de {p['patients.child_min_consultations'].value} "
                f"fois, {patients['young']} enfant(s) de moins de {p['patients.child_min_age'].value} ans"
                + (f", {patients['ald_out']} patient(s) en ALD exclus" if patients["ald_out"] else ""),
            ),
            ("jours actifs de la période", f"{row.active_days} sur {row.nominal_days} (année de contrat complète)"),
        ),
        parameters=(
            *common_params,
            p["patients.child_min_age"],
            p["patients.adult_age"],
            p["patients.child_min_consultations"],
            p["patients.include_ald"],
        ),
    )
    b_total = round_cents(part_b * fixed)
    records += _instalment_lines(
        context,
        row,
        p["payment.instalments"],
        component="part_b_temps_professionnels",
        label="Part B — temps des professionnels (ETP)",
        quantity=presence["people"],
        total=b_total,
        summary=f"Part B (temps de coordination) : {decimal_text(fte)} ETP, {class_text}",
        formula=(
            f"{decimal_text(fte)} ETP × {format_eur(size_class['fte_amount'])}{prorate_text}{fixed_text}, "
            f"avec ETP = {presence['hd_days']} demi-journées×jours / ({hd_per_fte} × {row.active_days} jours) "
            "exactement"
        ),
        inputs=(presence_input, ("demi-journées hebdomadaires × jours de présence", str(presence["hd_days"]))),
        parameters=(*common_params, p["fte.half_days_per_fte"]),
    )
    if share:
        records.append(_objectives_line(context, row, p, (part_a + part_b) * share, n, objective_rows))
    return records


def _instalment_lines(
    context, row, instalments, *, component, label, quantity, total, summary, formula, inputs, parameters
) -> list[dict]:
    table = instalments.value
    shares = [Fraction(r["share_percent"], 100) for r in table]
    parts = split_instalments(total, shares)
    names = ["unique"] if len(table) == 1 else [r["instalment"] for r in table]
    out = []
    for i, (spec, part, name) in enumerate(zip(table, parts, names, strict=True)):
        due = _months_after(row.active_start, int(spec["months_after_start"]))
        if len(table) == 1:
            split_text = ""
        elif i < len(table) - 1:
            split_text = f" ; {name} {spec['share_percent']} % = {format_eur(part)}"
        else:
            split_text = f" ; {name} = {format_eur(total)} − {format_eur(total - part)} = {format_eur(part)}"
        out.append(
            _record(
                context,
                row,
                component,
                label,
                name,
                due,
                quantity,
                part,
                Explanation(
                    summary=summary + ("" if len(table) == 1 else f" — {name} ({spec['share_percent']} %)"),
                    formula=f"{formula} = {format_eur(total)}{split_text}",
                    inputs=inputs,
                    parameters=parameters,
                    rounding=(
                        "montant de la part arrondi une fois au centime (demi-centime au supérieur) ; "
                        "échéances arrondies de même, la dernière reçoit le reste"
                    ),
                ),
            )
        )
    return out


@functools.lru_cache(maxsize=4096)
def _months_after(start: pd.Timestamp, months: int) -> pd.Timestamp:
    """``start + pd.DateOffset(months=months)``, once per distinct date (periods share theirs)."""
    return start + pd.DateOffset(months=months)


def _objectives_line(context, row, p, at_stake: Fraction, n: int, objective_rows=None) -> dict:
    scoring = p["objectives.scoring"].value
    indicators = p["objectives.indicators"].value
    results = context.tables["objectives"]
    mine = objective_rows or {}  # indicator -> (achieved, target, floor, file line) of this period
    file = results.attrs.get("file", "objectives.csv")
    total_weight = sum(i["weight"] for i in indicators)
    score = Fraction(0)
    inputs = []
    for ind in indicators:
        code, weight = ind["indicator"], ind["weight"]
        if code not in mine:
            s, text = Fraction(0), "résultat non transmis : noté 0"
        else:
            achieved_text, target_text, floor_text, line = mine[code]
            achieved, target = parse_decimal(achieved_text), parse_decimal(target_text)
            floor = parse_decimal(floor_text) if floor_text else Fraction(0)
            s = _score(achieved, target, floor, scoring)
            text = (
                f"atteint {decimal_text(achieved)} pour une cible de {decimal_text(target)}"
                + (f" (seuil {decimal_text(floor)})" if scoring == "linear" else "")
                + f" : {percent_text(s)} acquis ({file}, ligne {int(line)})"
            )
        score += Fraction(weight, total_weight) * s
        inputs.append((f"indicateur {code} (poids {weight}/{total_weight})", text))
    amount = round_cents(at_stake * score)
    explanation = Explanation(
        summary=f"Part modulée par les objectifs de santé publique : {percent_text(score)} acquis",
        formula=(
            f"{percent_text(p['objectives.share_at_stake'].value)} × (part A + part B avant modulation) = "
            f"{'' if Fraction(at_stake).denominator == 1 else '≈ '}{format_eur(round_cents(at_stake))} "
            f"× {percent_text(score)} = {format_eur(amount)}"
        ),
        inputs=tuple(inputs),
        parameters=(p["objectives.share_at_stake"], p["objectives.scoring"], p["objectives.indicators"]),
        reason=None if amount else "aucun objectif de santé publique atteint dans la période (score nul)",
        rounding="arrondi une fois au centime (demi-centime au supérieur)",
    )
    return _record(
        context,
        row,
        "modulation_objectifs",
        "Part modulée — objectifs de santé publique",
        "unique",
        row.period_end,
        len(indicators),
        amount,
        explanation,
    )


def _score(achieved: Fraction, target: Fraction, floor: Fraction, scoring: str) -> Fraction:
    """Share of one indicator's weight acquired (0 to 1)."""
    if achieved >= target:
        return Fraction(1)
    if scoring == "all_or_nothing" or achieved <= floor:
        return Fraction(0)
    return (achieved - floor) / (target - floor)


def _record(context, row, component, label, instalment, due, quantity, amount, explanation) -> dict:
    return {
        "contract_id": row.contract_id,
        "module": context.module.code,
        "period_id": row.period_id,
        "component": component,
        "label": label,
        "payee_id": row.payee_id,
        "instalment": instalment,
        "due_date": pd.Timestamp(due),
        "quantity": int(quantity),
        "unit_amount_cents": pd.NA,
        "amount_cents": int(amount),
        "explanation": explanation,
    }


__all__ = ["SCORINGS", "calculate"]
