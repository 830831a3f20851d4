"""Synthetic module 1 (missions coordonnées) inputs for ``nmr synth``, vectorised with numpy.

Distributions (per contract enrolled in the module; ``P`` = ``scale.patients_per_structure``):

- professionals: 2 to 8 GPs (most 3 to 5), 1 to 6 paramedical professionals, 0 to 3 others;
  half-days per week 6–11 (GPs), 3–11 (paramedicals), 1–8 (others); present from before the
  enrolment, 5 % join during the activity, 6 % leave during it (``present_to``), 15 % change
  their half-days once (two dated intervals); 4 % of the contracts have a single GP for the whole
  activity (not eligible);
- patientèle: a log-normal number of patients of median ``10 × P`` (σ = 0.5; national scale:
  median 1,000, a few above 2,000 and 4,000: classes 1 to 3), ages from 0 to 99 (≈ 7 % under 6,
  ≈ 11 % from 6 to 15), ALD ≈ 17 % of the adults, rising with age; declarations mostly before the
  enrolment, ≈ 12 % during the activity, ≈ 6 % ended during it;
- children's consultations: for each child of 5 to 16 at the start of a year of activity, a
  Poisson(1.8) number of consultations that year with one of the structure's GPs (≈ 55 % reach
  the two needed);
- objectives: the four default indicators measured 15 days before the end of each contract
  period inside the enrolment; 8 % of the results are not transmitted (scored 0); achieved ≈
  target × N(0.97, 0.15), floor = target − 20 (empty for 20 % of the rows: 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nmr_engine.synth.tools import iso_dates, pseudonyms, rank_in_groups, tenths_text, write_csv

INDICATORS = np.array(["depistage_cancers", "hypertension", "diabete", "obesite"], dtype=object)
TARGETS = np.array([60, 70, 65, 40], dtype=np.int64)
ROLES = np.array(["generaliste", "paramedical", "autre"], dtype=object)
DAY = np.timedelta64(1, "D")


def synthesise(module, contracts: pd.DataFrame, rng_seed: int, scale, out_dir: Path) -> dict:
    rng = np.random.default_rng(rng_seed)
    folder = Path(out_dir) / module.code
    folder.mkdir(parents=True, exist_ok=True)
    n = len(contracts)
    cids = contracts["contract_id"].to_numpy(dtype=object)
    c_start = contracts["start"].to_numpy().astype("datetime64[D]")
    m_start = contracts["module_start"].to_numpy().astype("datetime64[D]")
    m_end = contracts["module_end"].to_numpy().astype("datetime64[D]")
    years = np.asarray(scale.years, dtype=np.int64)
    first_day = np.datetime64(f"{years[0]}-01-01", "D")
    notes: list[str] = []

    # -- professionals -------------------------------------------------------------------------
    single_gp = rng.random(n) < 0.04
    n_gp = np.where(single_gp, 1, rng.choice([2, 3, 4, 5, 6, 7, 8], size=n, p=[0.1, 0.2, 0.25, 0.2, 0.12, 0.08, 0.05]))
    n_para = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.15, 0.25, 0.25, 0.15, 0.12, 0.08])
    n_other = rng.choice([0, 1, 2, 3], size=n, p=[0.4, 0.3, 0.2, 0.1])
    counts = np.stack([n_gp, n_para, n_other], axis=1)  # (n, 3)
    per_contract = counts.sum(axis=1)
    p_contract = np.repeat(np.arange(n), per_contract)
    p_role = np.repeat(np.tile(np.arange(3), n), counts.ravel())
    p_rank = rank_in_groups(per_contract)
    npro = p_contract.size
    lo = np.array([6, 3, 1])[p_role]
    hi = np.array([11, 11, 8])[p_role]
    half_days = rng.integers(lo, hi + 1)
    since = m_start[p_contract] - rng.integers(30, 3000, size=npro) * DAY
    span = np.maximum((m_end - m_start)[p_contract].astype(np.int64), 2)
    joins = (rng.random(npro) < 0.05) & ~((p_role == 0) & (p_rank < 2))  # the first two GPs stay
    since = np.where(joins, m_start[p_contract] + (rng.random(npro) * span).astype(np.int64) * DAY, since)
    leaves = (rng.random(npro) < 0.06) & ~((p_role == 0) & (p_rank < 2)) & ~joins
    until = np.where(leaves, m_start[p_contract] + (rng.random(npro) * span).astype(np.int64) * DAY, since)
    until = np.maximum(until, since + DAY)
    changes = (rng.random(npro) < 0.15) & ~leaves & ~joins
    change_on = m_start[p_contract] + ((0.2 + 0.6 * rng.random(npro)) * span).astype(np.int64) * DAY
    new_half_days = np.clip(half_days + rng.choice([-3, -2, -1, 1, 2], size=npro), 1, 11)
    rpps = (10_000_000_000 + rng.integers(0, 899_999_999, size=n)[p_contract] * 16 + p_rank).astype(str)
    p_id = np.char.add("RPPS-", rpps).astype(object)
    # Rows: the first interval of everyone, then the second interval of those who change.
    first_to = np.where(changes, change_on - DAY, np.where(leaves, until, np.datetime64("NaT")))
    rows_idx = np.concatenate([np.arange(npro), np.flatnonzero(changes)])
    row_from = np.concatenate([since, change_on[changes]])
    row_to = np.concatenate([first_to, np.full(int(changes.sum()), np.datetime64("NaT"), dtype="datetime64[D]")])
    row_hd = np.concatenate([half_days, new_half_days[changes]])
    order = np.lexsort((row_from, p_rank[rows_idx], p_contract[rows_idx]))
    rows_idx, row_from, row_to, row_hd = rows_idx[order], row_from[order], row_to[order], row_hd[order]
    professionals = pd.DataFrame(
        {
            "contract_id": cids[p_contract[rows_idx]],
            "professional_id": p_id[rows_idx],
            "role": ROLES[p_role[rows_idx]],
            "half_days_per_week": row_hd.astype(str).astype(object),
            "present_from": iso_dates(row_from),
            "present_to": iso_dates(row_to),
        }
    )
    write_csv(professionals, folder / "professionals.csv")
    notes.append(
        f"professionnels : {npro} ({int(n_gp.sum())} généralistes, {int(n_para.sum())} paramédicaux, "
        f"{int(n_other.sum())} autres) sur {len(professionals)} intervalles ({int(changes.sum())} changements de "
        f"temps, {int(joins.sum())} arrivées, {int(leaves.sum())} départs) ; {int(single_gp.sum())} contrats avec "
        "un seul généraliste (non éligibles)"
    )

    # -- patientèle ----------------------------------------------------------------------------
    median = max(10 * int(scale.patients_per_structure), 1)
    size = np.maximum(np.rint(rng.lognormal(np.log(median), 0.5, size=n)).astype(np.int64), 1)
    t_contract = np.repeat(np.arange(n), size)
    npat = t_contract.size
    band = rng.choice(4, size=npat, p=[0.07, 0.11, 0.62, 0.20])  # <6, 6–15, 16–64, 65+
    age_lo = np.array([0, 6, 16, 65])[band]
    age_hi = np.array([6, 16, 65, 100])[band]
    age_days = ((age_lo + rng.random(npat) * (age_hi - age_lo)) * 365.25).astype(np.int64)
    birth = first_day - age_days * DAY
    ald_p = np.array([0.01, 0.02, 0.10, 0.35])[band]
    ald = rng.random(npat) < ald_p
    new = rng.random(npat) < 0.12
    p_span = np.maximum((m_end - m_start)[t_contract].astype(np.int64), 1)
    declared = np.where(
        new,
        m_start[t_contract] + (rng.random(npat) * p_span).astype(np.int64) * DAY,
        m_start[t_contract] - rng.integers(1, 3000, size=npat) * DAY,
    )
    declared = np.maximum(declared, birth + rng.integers(0, 60, size=npat) * DAY)
    ended = rng.random(npat) < 0.06
    end_on = np.maximum(declared, m_start[t_contract]) + (rng.random(npat) * p_span).astype(np.int64) * DAY
    end_on = np.where(ended & (end_on <= m_end[t_contract]), end_on, np.datetime64("NaT"))
    pat_text = pseudonyms(np.arange(npat, dtype=np.uint64), rng_seed)
    patients = pd.DataFrame(
        {
            "contract_id": cids[t_contract],
            "patient_id": pat_text,
            "birth_date": iso_dates(birth),
            "ald": np.where(ald, "oui", "non").astype(object),
            "declared_on": iso_dates(declared),
            "ended_on": iso_dates(end_on),
        }
    )
    write_csv(patients, folder / "patients.csv")
    notes.append(
        f"patientèle : {npat} patients (médiane {median} par contrat, de {int(size.min())} à {int(size.max())}), "
        f"{int((band == 1).sum())} enfants de 6 à 15 ans, {int((band == 0).sum())} de moins de 6 ans, "
        f"{int(ald.sum())} en ALD, {int(new.sum())} déclarations pendant l'activité, "
        f"{int(np.count_nonzero(~np.isnat(end_on)))} déclarations terminées"
    )

    # -- children's consultations -------------------------------------------------------------
    year_starts = np.array([np.datetime64(f"{y}-01-01", "D") for y in years])
    kid_rows, kid_dates, kid_doctor = [], [], []
    gp_first = np.cumsum(per_contract) - per_contract  # index of each contract's first professional (a GP)
    for y0 in year_starts:
        age_y = (y0 - birth).astype(np.int64) / 365.25
        kids = np.flatnonzero((age_y >= 5) & (age_y < 16))
        k = rng.poisson(1.8, size=kids.size)
        r = np.repeat(kids, k)
        day = y0 + rng.integers(0, 365, size=r.size) * DAY
        doctor = gp_first[t_contract[r]] + (rng.random(r.size) * n_gp[t_contract[r]]).astype(np.int64)
        kid_rows.append(r)
        kid_dates.append(day)
        kid_doctor.append(doctor)
    r, day, doctor = np.concatenate(kid_rows), np.concatenate(kid_dates), np.concatenate(kid_doctor)
    c = t_contract[r]
    keep = (day >= m_start[c]) & (day <= m_end[c]) & (day >= birth[r])
    r, day, doctor = r[keep], day[keep], doctor[keep]
    order = np.lexsort((doctor, day, r))
    r, day, doctor = r[order], day[order], doctor[order]
    distinct = np.ones(r.size, dtype=bool)
    distinct[1:] = (r[1:] != r[:-1]) | (day[1:] != day[:-1]) | (doctor[1:] != doctor[:-1])
    r, day, doctor = r[distinct], day[distinct], doctor[distinct]
    consultations = pd.DataFrame(
        {
            "contract_id": cids[t_contract[r]],
            "patient_id": pat_text[r],
            "consultation_date": iso_dates(day),
            "doctor_id": p_id[doctor],
        }
    )
    write_csv(consultations, folder / "child_consultations.csv")

    # -- objectives: one measure per indicator, 15 days before the end of each contract period ---
    k = np.arange(len(years) + 2)
    start_month = c_start.astype("datetime64[M]")
    day_in_month = (c_start - start_month.astype("datetime64[D]")).astype(np.int64)
    nth = np.tile(k, n)
    next_start = (np.repeat(start_month, k.size) + 12 * (nth + 1)).astype("datetime64[D]") + np.repeat(
        day_in_month, k.size
    ) * DAY
    period_start = (np.repeat(start_month, k.size) + 12 * nth).astype("datetime64[D]") + np.repeat(
        day_in_month, k.size
    ) * DAY
    o_contract = np.repeat(np.arange(n), k.size)
    # 15 days before the end of the period (or of the enrolment, when it ends first).
    measured = np.minimum(next_start - DAY, m_end[o_contract]) - 15 * DAY
    ok = (measured >= np.maximum(period_start, m_start[o_contract])) & (measured <= m_end[o_contract])
    o_contract, measured = o_contract[ok], measured[ok]
    o_row = np.repeat(np.arange(o_contract.size), INDICATORS.size)
    o_ind = np.tile(np.arange(INDICATORS.size), o_contract.size)
    sent = rng.random(o_row.size) >= 0.08
    o_row, o_ind = o_row[sent], o_ind[sent]
    target = TARGETS[o_ind]
    achieved_tenths = np.maximum(np.rint(target * 10 * rng.normal(0.97, 0.15, size=o_row.size)), 0).astype(np.int64)
    floor_blank = rng.random(o_row.size) < 0.2
    objectives = pd.DataFrame(
        {
            "contract_id": cids[o_contract[o_row]],
            "indicator": INDICATORS[o_ind],
            "measured_on": iso_dates(measured[o_row]),
            "achieved": tenths_text(achieved_tenths),
            "target": target.astype(str).astype(object),
            "floor": np.where(floor_blank, "", (target - 20).astype(str)).astype(object),
        }
    )
    write_csv(objectives, folder / "objectives.csv")
    notes.append(
        f"consultations d'enfants : {len(consultations)} ; résultats d'objectifs : {len(objectives)} "
        f"({int((~sent).sum())} non transmis)"
    )
    notes.append("tous les contrats synthétiques adhèrent au module 1 (synth_enrolment = 1)")
    return {
        "rows": {
            "professionals": len(professionals),
            "patients": len(patients),
            "child_consultations": len(consultations),
            "objectives": len(objectives),
        },
        "notes": notes,
    }
