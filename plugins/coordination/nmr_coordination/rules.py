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
from types import SimpleNamespace

import numpy as np
import pandas as pd

from nmr_engine.decimals import decimal_text, parse_decimal, percent_text
from nmr_engine.money import div_round, format_eur, split_instalments
from nmr_engine.plugin import CalculationContext, Explanation, lines_frame
from nmr_engine.plugin.helpers import (
    VersionsAt,
    in_computed_periods,
    joint_codes,
    lines_texts,
    pair_rows,
    row_positions,
)
from nmr_engine.plugin.intervals import clip_intervals, suspended_days, with_nominal_days

KEYS = ["contract_id", "period_id"]
#: The columns of a period that its lines read.
ROW_COLUMNS = (*KEYS, "payee_id", "active_start", "active_days", "nominal_days", "period_end")
SCORINGS = ("all_or_nothing", "linear")


def calculate(context: CalculationContext) -> pd.DataFrame:
    periods = with_nominal_days(context)
    if periods.empty:
        return lines_frame([])
    presence = _presence(context, periods)
    patients = _patients(context, periods)
    objectives = _objective_rows(context)
    lines = _Lines(context)
    records: list[dict] = []
    # the columns the lines read only (each date of a row becomes a Timestamp)
    for row in periods[list(ROW_COLUMNS)].itertuples(index=False):
        key = (row.contract_id, row.period_id)
        records += lines.period(row, presence.get(key), patients.get(key), objectives.get(key, {}))
    return lines_frame(records)


def _objective_rows(context: CalculationContext) -> dict:
    """(contract, period) -> indicator -> (achieved, target, floor, file line) of the periods
    computed (the rows of other periods are not read), found once for all periods."""
    results = in_computed_periods(context, context.tables["objectives"])
    objectives: dict = {}
    columns = ("contract_id", "period_id", "indicator", "achieved", "target", "floor", "_line")
    for cid, pid, ind, achieved, target, floor, line in zip(*(results[c].tolist() for c in columns), strict=True):
        objectives.setdefault((cid, pid), {})[ind] = (achieved, target, floor, line)
    return objectives


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
    texts = lines_texts(file, prof["_line"].to_numpy()[pi], code, n)
    columns = (hd, counts["generaliste"], counts["paramedical"], counts["autre"], people)
    names = ("hd_days", "gps", "paramedicals", "others", "people")
    present = np.unique(code)
    out = {}
    for k, *values in zip(present.tolist(), *(c[present].tolist() for c in columns), strict=True):
        out[keys[k]] = {**dict(zip(names, values, strict=True)), "lines": texts[k]}
    return out


def _patients(context: CalculationContext, periods: pd.DataFrame) -> dict:
    """(contract, period) -> counts of the patientèle (vectorised over every patient).

    Each patient is paired with each period of its contract by row positions (NumPy), so no
    text column is copied per pair: the national patientèle (millions of rows) is counted
    without materialising a patients × periods table."""
    pat = context.tables["patients"]
    file = pat.attrs.get("file", "patients.csv")
    params = _period_params(context, periods)
    pat_row, per_row = _pairs(pat["contract_id"], periods["contract_id"])

    def of_patients(values: np.ndarray) -> np.ndarray:
        return values if pat_row is None else values[pat_row]

    day = "datetime64[ns]"
    declared = of_patients(pat["declared_on"].to_numpy(day))
    ended = of_patients(pat["ended_on"].to_numpy(day))
    keep = declared <= params["active_end"].astype(day)[per_row]
    keep &= np.isnat(ended) | (ended >= params["active_start"].astype(day)[per_row])
    born = of_patients(pat["birth_date"].to_numpy(day))
    first_day = periods["active_start"]
    young = born > _years_before(first_day, params["child_min_age"])[per_row]
    child = born > _years_before(first_day, params["adult_age"])[per_row]
    child &= ~young
    consultations = _child_consultations(pat, context.tables["child_consultations"], params, pat_row, per_row)
    child_ok = consultations >= params["child_min_consultations"][per_row]
    child_ok &= child
    ald = of_patients(pat["ald"].to_numpy(dtype=bool, na_value=False))
    ald_out = ~params["include_ald"][per_row]
    ald_out &= ald
    # one count per (period, state) of the five flags below, then each sum from the states;
    # the pairs out of the period (not kept) in one more bin, dropped
    n = len(periods)
    state = young.astype(np.uint8)
    for bit, flag in enumerate((child, child_ok, ald, ald_out), start=1):
        state |= flag.view(np.uint8) << bit
    bins = per_row * 32
    bins += state
    bins[~keep] = 32 * n
    by_state = np.bincount(bins, minlength=32 * (n + 1)).reshape(n + 1, 32)[:n]
    states = np.arange(32)
    young_s, child_s, ok_s, ald_s, out_s = (((states >> k) & 1).astype(bool) for k in range(5))
    counted_s = ((~young_s & ~child_s) | ok_s) & ~out_s
    flags = {
        "counted": counted_s,
        "adults": ~young_s & ~child_s & counted_s,
        "ald": ald_s & counted_s,
        "children": ok_s,
        "children_not": child_s & ~ok_s,
        "young": young_s,
        "ald_out": out_s,
    }
    sums = {name: by_state[:, flag].sum(axis=1) for name, flag in flags.items()}
    present = np.flatnonzero(by_state.sum(axis=1) > 0)
    counted = ~(young | child)
    counted |= child_ok
    counted &= keep
    counted &= ~ald_out
    counted = np.flatnonzero(counted)
    lines = pat["_line"].to_numpy()[counted if pat_row is None else pat_row[counted]]
    texts = lines_texts(file, lines, per_row[counted], n)
    names = list(flags)
    columns = [sums[name][present].tolist() for name in names]
    keys = zip(params["contract_id"][present].tolist(), params["period_id"][present].tolist(), strict=True)
    out = {}
    for key, i, *values in zip(keys, present.tolist(), *columns, strict=True):
        counts = dict(zip(names, values, strict=True))
        counts["lines"] = texts[i] or "aucune ligne"
        out[key] = counts
    return out


def _pairs(left: pd.Series, right: pd.Series) -> tuple[np.ndarray | None, np.ndarray]:
    """:func:`pair_rows` (same pairs, same order), by a table of positions when each value of
    ``right`` is there once (one period of each contract: a pair per row of ``left`` at most).
    The first array is None when the pairs are the rows of ``left``, each once and in order."""
    a, b, span = joint_codes(left, right)
    at = np.full(span, -1, dtype=np.int64)
    at[b] = np.arange(len(b))
    at[0] = -1  # a missing value pairs with nothing
    if (np.bincount(b, minlength=span)[1:] > 1).any():
        return pair_rows(left, right)
    j = at[a]
    if j.size and int(j.min()) >= 0:
        return None, j
    i = np.flatnonzero(j >= 0)
    return i, j[i]


def _years_before(days: pd.Series, years: np.ndarray) -> np.ndarray:
    """For each day, the same month and day ``years[i]`` years before (28 February for a 29
    February that year has not), as datetime64[ns]: whoever is born after it is less than
    ``years`` old in whole years on the day (ages count years, then months and days)."""
    d = days.to_numpy("datetime64[ns]").astype("datetime64[D]")
    year = d.astype("datetime64[Y]")
    month = d.astype("datetime64[M]")
    day_of_month = (d - month).astype(np.int64)  # 0-based
    month_of_year = (month - year.astype("datetime64[M]")).astype(np.int64)
    then = year - np.asarray(years, dtype=np.int64).astype("timedelta64[Y]")
    first = then.astype("datetime64[M]") + month_of_year.astype("timedelta64[M]")
    last_day = ((first + np.timedelta64(1, "M")).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(
        np.int64
    )
    return (first.astype("datetime64[D]") + np.minimum(day_of_month, last_day - 1)).astype("datetime64[ns]")


def _child_consultations(
    pat: pd.DataFrame, cons: pd.DataFrame, params: dict, pat_row: np.ndarray | None, per_row: np.ndarray
) -> np.ndarray:
    """Distinct consultation days of each (patient, period) pair in its period (0 when none);
    ``pat_row`` None: the pairs are the patients' rows, in order (see :func:`_pairs`).

    Each consultation is tied to its patient's row once (:func:`row_positions`, on the key of
    patients.csv); the distinct (row, period, day) are then counted on integers."""
    if len(per_row) == 0 or cons.empty:
        return np.zeros(len(per_row), dtype="int64")
    of = row_positions(pat, ["contract_id", "patient_id"], cons, ["contract_id", "patient_id"])
    period_codes, period_ids = pd.factorize(params["period_id"])
    n_per = len(period_ids) + 1
    cons_period = pd.Index(period_ids).get_indexer(cons["period_id"])
    days = cons["consultation_date"].to_numpy("datetime64[ns]")
    ok = (of >= 0) & (cons_period >= 0) & ~np.isnat(days)
    key = of[ok] * n_per + cons_period[ok]
    when = days[ok].astype("datetime64[D]").astype(np.int64)
    if not key.size:
        return np.zeros(len(per_row), dtype="int64")
    when -= when.min()
    shift = int(when.max()).bit_length()
    if int(key.max()).bit_length() + shift < 63:  # (key, day) as one integer: one sort
        both = (key << shift) | when
        if (both[1:] < both[:-1]).any():  # a file in patient and date order is sorted already
            both = np.sort(both)
        key = both[np.r_[True, both[1:] != both[:-1]]] >> shift
    else:
        order = np.lexsort((when, key))
        key, when = key[order], when[order]
        key = key[np.r_[True, (key[1:] != key[:-1]) | (when[1:] != when[:-1])]]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    keys, seen = key[starts], np.diff(np.r_[starts, key.size])
    out = np.zeros(len(per_row), dtype="int64")
    some = np.zeros(len(pat), dtype=bool)
    some[of[ok]] = True
    asked = np.flatnonzero(some if pat_row is None else some[pat_row])  # the pairs of a patient consulting
    pair_key = (asked if pat_row is None else pat_row[asked]) * n_per + period_codes[per_row[asked]]
    pos = np.minimum(np.searchsorted(keys, pair_key), keys.size - 1)
    hit = keys[pos] == pair_key
    out[asked[hit]] = seen[pos[hit]]
    return out


# -- one contract period -------------------------------------------------------------------
PERIOD_PARAMETERS = (
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
INSTALMENT_ROUNDING = (
    "montant de la part arrondi une fois au centime (demi-centime au supérieur) ; "
    "échéances arrondies de même, la dernière reçoit le reste"
)
NO_PRESENCE = {"hd_days": 0, "gps": 0, "paramedicals": 0, "others": 0, "people": 0, "lines": "aucune"}
NO_PATIENTS = {
    "counted": 0, "adults": 0, "ald": 0, "children": 0, "children_not": 0, "young": 0, "ald_out": 0,
    "lines": "aucune ligne",
}  # fmt: skip


class _Lines:
    """The lines of each contract period. What depends only on the parameter versions in force
    (texts, shares, instalment plan) is prepared once per distinct set of versions; amounts are
    exact integer arithmetic on the same fractions as the rules above."""

    def __init__(self, context: CalculationContext):
        self.context = context
        self.at = VersionsAt(context)
        names = {context.param(name) for name in PERIOD_PARAMETERS}
        self.overridden = {contract_id for contract_id, name in self.at.overridden if name in names}
        self.plans: dict = {}
        self.plan_of: dict = {}
        self.indicator_texts: dict = {}
        self.decimals: dict = {}
        results = context.tables["objectives"]
        self.objectives_file = results.attrs.get("file", "objectives.csv")

    def plan(self, row) -> SimpleNamespace:
        """The plan of the versions in force on the period's first active day (once per day for
        the contracts without an override of these parameters)."""
        day = row.active_start.date()
        asked = (day, row.contract_id if row.contract_id in self.overridden else None)
        if asked not in self.plan_of:
            p = {name: self.at(name, day, row.contract_id) for name in PERIOD_PARAMETERS}
            key = tuple(id(v) for v in p.values())
            if key not in self.plans:
                self.plans[key] = _plan(p)
            self.plan_of[asked] = self.plans[key]
        return self.plan_of[asked]

    def period(self, row, presence: dict | None, patients: dict | None, objective_rows=None) -> list[dict]:
        presence = presence or NO_PRESENCE
        patients = patients or NO_PATIENTS
        plan = self.plan(row)
        p = plan.p
        presence_input = (
            "professionnels présents",
            f"{presence['gps']} généraliste(s), {presence['paramedicals']} paramédical(aux), "
            f"{presence['others']} autre(s) ({presence['lines']})",
        )
        if presence["gps"] < plan.min_gps or presence["paramedicals"] < plan.min_para:
            return [_not_eligible(self.context, row, p, presence, presence_input)]
        n = patients["counted"]
        size_class = next((c for c in plan.classes if c["min_patients"] <= n <= c["max_patients"]), None)
        if size_class is None:
            return [_no_class(self.context, row, p, n)]

        if plan.by_days:
            days, nominal = int(row.active_days), int(row.nominal_days)
            prorate_text = f" × {row.active_days}/{row.nominal_days} jours"
        else:
            days = nominal = 1
            prorate_text = ""
        fte_text = decimal_text(Fraction(presence["hd_days"], plan.hd_per_fte * int(row.active_days)))
        # part A = n × amount × prorate, part B = fte_amount × fte × prorate (exact), each × (1 − share)
        a_num, a_den = n * size_class["patient_amount"] * days, nominal
        b_num = size_class["fte_amount"] * presence["hd_days"] * days
        b_den = plan.hd_per_fte * int(row.active_days) * nominal
        fixed = plan.fixed
        class_text = (
            f"classe {size_class['size_class']} ({size_class['min_patients']} à {size_class['max_patients']} patients)"
        )
        records = []
        a_total = div_round(a_num * fixed.numerator, a_den * fixed.denominator)
        records += self.instalments(
            row,
            plan,
            component="part_a_patientele",
            label="Part A — patientèle médecin traitant",
            quantity=n,
            total=a_total,
            summary=f"Part A (temps de management) : {n} patients, {class_text}",
            formula=f"{n} patients × {format_eur(size_class['patient_amount'])}{prorate_text}{plan.fixed_text}",
            inputs=(
                (
                    "patients comptés",
                    f"{n} dont {patients['adults']} ayant déclaré leur médecin traitant (dont {patients['ald']} en "
                    f"ALD) et {patients['children']} enfant(s) vus au moins {plan.child_min_consultations} fois "
                    f"({patients['lines']})",
                ),
                (
                    "patients non comptés",
                    f"{patients['children_not']} enfant(s) vus moins de {plan.child_min_consultations} "
                    f"fois, {patients['young']} enfant(s) de moins de {plan.child_min_age} ans"
                    + (f", {patients['ald_out']} patient(s) en ALD exclus" if patients["ald_out"] else ""),
                ),
                ("jours actifs de la période", f"{row.active_days} sur {row.nominal_days} (année de contrat complète)"),
            ),
            parameters=plan.a_parameters,
        )
        b_total = div_round(b_num * fixed.numerator, b_den * fixed.denominator)
        records += self.instalments(
            row,
            plan,
            component="part_b_temps_professionnels",
            label="Part B — temps des professionnels (ETP)",
            quantity=presence["people"],
            total=b_total,
            summary=f"Part B (temps de coordination) : {fte_text} ETP, {class_text}",
            formula=(
                f"{fte_text} ETP × {format_eur(size_class['fte_amount'])}{prorate_text}{plan.fixed_text}, "
                f"avec ETP = {presence['hd_days']} demi-journées×jours / ({plan.hd_per_fte} × {row.active_days} "
                "jours) exactement"
            ),
            inputs=(presence_input, ("demi-journées hebdomadaires × jours de présence", str(presence["hd_days"]))),
            parameters=plan.b_parameters,
        )
        if plan.share:  # (part A + part B) × share, as a numerator and a denominator
            share = plan.share
            at_stake = ((a_num * b_den + b_num * a_den) * share.numerator, a_den * b_den * share.denominator)
            records.append(self.objectives(row, plan, at_stake, objective_rows))
        return records

    def instalments(self, row, plan, *, component, label, quantity, total, summary, formula, inputs, parameters):
        """The instalments of a part (as :func:`split_instalments`: all but the last rounded)."""
        parts = [div_round(total * share.numerator, share.denominator) for share in plan.shares[:-1]]
        parts.append(total - sum(parts))
        total_text = format_eur(total)
        formula = f"{formula} = {total_text}"
        last = len(parts) - 1
        out = []
        for i, (part, (name, months, summary_suffix, split_prefix)) in enumerate(zip(parts, plan.steps, strict=True)):
            if not last:
                split_text = ""
            elif i < last:
                split_text = f"{split_prefix}{format_eur(part)}"
            else:
                split_text = f"{split_prefix}{total_text} − {format_eur(total - part)} = {format_eur(part)}"
            out.append(
                _record(
                    self.context,
                    row,
                    component,
                    label,
                    name,
                    _months_after(row.active_start, months),
                    quantity,
                    part,
                    Explanation(
                        summary=summary + summary_suffix,
                        formula=formula + split_text,
                        inputs=inputs,
                        parameters=parameters,
                        rounding=INSTALMENT_ROUNDING,
                    ),
                )
            )
        return out

    def objectives(self, row, plan, at_stake: tuple[int, int], objective_rows=None) -> dict:
        mine = objective_rows or {}  # indicator -> (achieved, target, floor, file line) of this period
        # score = Σ weight × indicator score / Σ weights, summed exactly on integers
        num, den = 0, 1
        inputs = []
        if plan.indicators and not plan.total_weight:
            raise ZeroDivisionError(f"Fraction({plan.indicators[0][1]}, 0)")  # as weight / Σ weights would
        for code, weight, label in plan.indicators:
            if code not in mine:
                text = "résultat non transmis : noté 0"
            else:
                achieved_text, target_text, floor_text, line = mine[code]
                s, text = self.indicator(achieved_text, target_text, floor_text, plan.scoring)
                text = f"{text} ({self.objectives_file}, ligne {int(line)})"
                if s:
                    num, den = num * s.denominator + weight * s.numerator * den, den * s.denominator
            inputs.append((label, text))
        score = Fraction(num, den * plan.total_weight) if num else Fraction(0)
        return _objectives_record(self.context, row, plan, at_stake, score, tuple(inputs))

    def indicator(self, achieved_text: str, target_text: str, floor_text, scoring: str) -> tuple[Fraction, str]:
        """Score and text of one result (without its file line), once per distinct result."""
        key = (achieved_text, target_text, floor_text, scoring)
        if key not in self.indicator_texts:
            (achieved, a_text), (target, t_text) = self.decimal(achieved_text), self.decimal(target_text)
            floor, f_text = self.decimal(floor_text) if floor_text else (Fraction(0), decimal_text(Fraction(0)))
            s = _score(achieved, target, floor, scoring)
            self.indicator_texts[key] = (
                s,
                f"atteint {a_text} pour une cible de {t_text}"
                + (f" (seuil {f_text})" if scoring == "linear" else "")
                + f" : {percent_text(s)} acquis",
            )
        return self.indicator_texts[key]

    def decimal(self, text: str) -> tuple[Fraction, str]:
        """A decimal of objectives.csv and its display text, once per distinct text."""
        if text not in self.decimals:
            value = parse_decimal(text)
            self.decimals[text] = (value, decimal_text(value))
        return self.decimals[text]


def _plan(p: dict) -> SimpleNamespace:
    """What the lines of a period take from its parameter versions ``p`` alone."""
    share = Fraction(p["objectives.share_at_stake"].value)
    instalments = p["payment.instalments"].value
    shares = [Fraction(r["share_percent"], 100) for r in instalments]
    split_instalments(0, shares)  # a plan that does not add up to 100 % fails here, as it would below
    common = (p["size_classes"], p["payment.proration"], p["objectives.share_at_stake"], p["payment.instalments"])
    indicators = p["objectives.indicators"].value if share else ()
    total_weight = sum(i["weight"] for i in indicators)
    return SimpleNamespace(
        p=p,
        min_gps=p["eligibility.min_gps"].value,
        min_para=p["eligibility.min_paramedicals"].value,
        classes=p["size_classes"].value,
        by_days=p["payment.proration"].value == "days",
        hd_per_fte=p["fte.half_days_per_fte"].value,
        share=share,
        fixed=1 - share,
        fixed_text=f" × (100 % − {percent_text(share)} modulés)" if share else "",
        instalments=instalments,
        shares=shares,
        steps=_steps(instalments),
        child_min_consultations=p["patients.child_min_consultations"].value,
        child_min_age=p["patients.child_min_age"].value,
        a_parameters=(
            *common,
            p["patients.child_min_age"],
            p["patients.adult_age"],
            p["patients.child_min_consultations"],
            p["patients.include_ald"],
        ),
        b_parameters=(*common, p["fte.half_days_per_fte"]),
        scoring=p["objectives.scoring"].value,
        indicators=tuple(
            (i["indicator"], i["weight"], f"indicateur {i['indicator']} (poids {i['weight']}/{total_weight})")
            for i in indicators
        ),
        total_weight=total_weight,
        share_text=percent_text(p["objectives.share_at_stake"].value),
        n_indicators=len(p["objectives.indicators"].value),
    )


def _steps(instalments: list[dict]) -> list[tuple[str, int, str, str]]:
    """Each instalment of a plan: name, months after the start, the end of its summary and the
    start of its share in the formula."""
    if len(instalments) == 1:
        return [("unique", int(instalments[0]["months_after_start"]), "", "")]
    last = len(instalments) - 1
    return [
        (
            r["instalment"],
            int(r["months_after_start"]),
            f" — {r['instalment']} ({r['share_percent']} %)",
            f" ; {r['instalment']} {r['share_percent']} % = " if i < last else f" ; {r['instalment']} = ",
        )
        for i, r in enumerate(instalments)
    ]


def _not_eligible(context, row, p, presence, presence_input) -> dict:
    min_gps, min_para = p["eligibility.min_gps"].value, p["eligibility.min_paramedicals"].value
    return _record(
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


def _no_class(context, row, p, n: int) -> dict:
    return _record(
        context, row, "forfait_sans_classe", "Forfait de coordination — aucune classe de taille", "unique",
        row.period_end, n, 0,
        Explanation(
            summary="Forfait de coordination : aucune classe de taille ne contient la patientèle",
            formula="0,00 €",
            inputs=(("patients comptés", str(n)),),
            parameters=(p["size_classes"],),
            reason=f"{n} patients : hors des bornes de la table des classes (paramètre size_classes)",
        ),
    )  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _months_after(start: pd.Timestamp, months: int) -> pd.Timestamp:
    """``start + pd.DateOffset(months=months)``, once per distinct date (periods share theirs)."""
    return start + pd.DateOffset(months=months)


def _objectives_record(context, row, plan, at_stake: tuple[int, int], score: Fraction, inputs: tuple) -> dict:
    """The modulated line: ``at_stake`` (numerator, denominator) × ``score``, rounded once."""
    num, den = at_stake
    amount = div_round(num * score.numerator, den * score.denominator)
    p = plan.p
    score_text = percent_text(score)
    explanation = Explanation(
        summary=f"Part modulée par les objectifs de santé publique : {score_text} acquis",
        formula=(
            f"{plan.share_text} × (part A + part B avant modulation) = "
            f"{'' if num % den == 0 else '≈ '}{format_eur(div_round(num, den))} "
            f"× {score_text} = {format_eur(amount)}"
        ),
        inputs=inputs,
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
        plan.n_indicators,
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
