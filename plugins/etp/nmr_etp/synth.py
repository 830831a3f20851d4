"""Synthetic ETP activity for ``nmr synth`` (hook ``nmr_synthesise``), vectorised with numpy.

Distributions (per contract enrolled in the module):

- programmes: 1 to 3 (45 %, 40 %, 15 %), ARS authorisation of 4 years granted before the
  enrolment; about 4 % are authorised only in the middle of the activity (their earlier
  séances are outside the authorisation) and 1 % have no known end;
- patient cycles: a Poisson number of new cycles per programme and year, of mean
  ``scale.patients_per_structure``; each opens with a diagnostic, then 2 to 8 séances, most
  3 to 6 (0: 5 %, 2: 7 %, 3: 19 %, 4: 24 %, 5: 19 %, 6: 15 %, 7: 6 %, 8: 5 %), 7 to 34 days
  apart; 2 % of cycles have no diagnostic row (séances without diagnostic); 10 % of the
  patients of a year come back the next year for a new cycle, 1 % start a second cycle the
  same year (over the one-cycle cap); séances after the end of the enrolment are not held;
- trainings: 0 to 4 professionals (RPPS-like ids) per contract and year, 1 to 3 trainings
  each (so some go over the cap of two);
- structuring: one claim per contract, 5 % claim a second time a year later;
- late correction: ``sessions.v1.csv`` is the file as first submitted; about 1.5 % of the
  séances of the last year were entered late and only appear in the corrected
  ``sessions.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nmr_engine.synth.tools import iso_dates, pseudonyms, rank_in_groups, write_csv

TITLES = np.array(
    [
        "Diabète de type 2 : vivre avec sa maladie",
        "Risque cardio-vasculaire et hypertension",
        "Asthme et BPCO : mieux respirer au quotidien",
        "Surpoids et obésité de l'adulte",
        "Insuffisance cardiaque : connaître son traitement",
        "Anticoagulants oraux : sécurité du traitement",
        "Diabète de type 1 de l'adulte",
        "Obésité de l'enfant et de l'adolescent",
    ],
    dtype=object,
)
SESSION_COUNTS = np.array([0, 2, 3, 4, 5, 6, 7, 8])
SESSION_WEIGHTS = np.array([0.05, 0.07, 0.19, 0.24, 0.19, 0.15, 0.06, 0.05])
KINDS = np.array(["diagnostic", "seance"], dtype=object)


def synthesise(module, contracts: pd.DataFrame, rng_seed: int, scale, out_dir: Path) -> dict:
    rng = np.random.default_rng(rng_seed)
    folder = Path(out_dir) / module.code
    folder.mkdir(parents=True, exist_ok=True)
    n = len(contracts)
    cids = contracts["contract_id"].to_numpy(dtype=object)
    m_start = contracts["module_start"].to_numpy().astype("datetime64[D]")
    m_end = contracts["module_end"].to_numpy().astype("datetime64[D]")
    years = np.asarray(scale.years, dtype=np.int64)
    notes = []

    # -- programmes ------------------------------------------------------------------
    n_prog = rng.choice([1, 2, 3], size=n, p=[0.45, 0.4, 0.15])
    p_contract = np.repeat(np.arange(n), n_prog)
    p_rank = rank_in_groups(n_prog)
    p_title = TITLES[(rng.integers(0, len(TITLES), size=n)[p_contract] + p_rank) % len(TITLES)]
    auth_from = m_start[p_contract] - rng.integers(0, 700, size=p_contract.size).astype("timedelta64[D]")
    late_auth = rng.random(p_contract.size) < 0.04
    mid = np.datetime64(f"{years[0]}-01-01") + rng.integers(60, 300 * len(years), size=p_contract.size).astype(
        "timedelta64[D]"
    )
    auth_from = np.where(late_auth, np.maximum(mid, m_start[p_contract]), auth_from).astype("datetime64[D]")
    auth_to = (pd.DatetimeIndex(auth_from) + pd.DateOffset(years=4) - pd.Timedelta(days=1)).to_numpy("datetime64[D]")
    open_ended = rng.random(p_contract.size) < 0.01
    programmes = pd.DataFrame(
        {
            "contract_id": cids[p_contract],
            "programme_id": np.char.add("P", (p_rank + 1).astype(str)).astype(object),
            "title": p_title,
            "authorised_from": iso_dates(auth_from),
            "authorised_to": np.where(open_ended, "", iso_dates(auth_to)).astype(object),
        }
    )
    write_csv(programmes, folder / "programmes.csv")
    notes.append(
        f"programmes : {len(programmes)} ({int(late_auth.sum())} autorisés en cours d'activité, "
        f"{int(open_ended.sum())} sans fin d'autorisation)"
    )

    # -- patient cycles ----------------------------------------------------------------
    per = rng.poisson(scale.patients_per_structure, size=(p_contract.size, len(years)))
    c_prog = np.repeat(np.repeat(np.arange(p_contract.size), len(years)), per.ravel())
    c_year_idx = np.repeat(np.tile(np.arange(len(years)), p_contract.size), per.ravel())
    c_rank = rank_in_groups(per.ravel())
    nc = c_prog.size
    year_start = np.array([np.datetime64(f"{y}-01-01", "D") for y in years])
    c_start = year_start[c_year_idx] + rng.integers(0, 365, size=nc).astype("timedelta64[D]")
    c_contract = p_contract[c_prog]
    # Pseudonymous patient ids: a bijection of the cycle number, so distinct by construction.
    c_patient = np.arange(nc, dtype=np.uint64)
    back = (rng.random(nc) < 0.10) & (c_year_idx > 0)
    if back.any():  # the same rank of the previous year in the same programme, when it exists
        prev = _index_of(c_prog, c_year_idx, c_rank, c_prog[back], c_year_idx[back] - 1, c_rank[back])
        found = prev >= 0
        c_patient[np.flatnonzero(back)[found]] = c_patient[prev[found]]
    again = (rng.random(nc) < 0.01) & (c_rank > 0)
    c_patient[again] = c_patient[np.flatnonzero(again) - 1]
    n_sessions = rng.choice(SESSION_COUNTS, size=nc, p=SESSION_WEIGHTS)
    with_diag = rng.random(nc) >= 0.02

    # Rows: the diagnostic (if any) on the start date, then the séances.
    gaps = rng.integers(7, 35, size=int(n_sessions.sum()))
    s_cycle = np.repeat(np.arange(nc), n_sessions)
    cum = np.cumsum(gaps)
    before = np.concatenate([[0], cum])[np.cumsum(n_sessions) - n_sessions]
    offsets = cum - np.repeat(before, n_sessions)  # days from the diagnostic to each séance
    row_cycle = np.concatenate([np.flatnonzero(with_diag), s_cycle])
    row_date = np.concatenate([c_start[with_diag], c_start[s_cycle] + offsets.astype("timedelta64[D]")])
    row_kind = np.concatenate([np.zeros(int(with_diag.sum()), dtype=np.int8), np.ones(s_cycle.size, dtype=np.int8)])
    contract_of_row = c_contract[row_cycle]
    keep = (row_date >= m_start[contract_of_row]) & (row_date <= m_end[contract_of_row])
    row_cycle, row_date, row_kind = row_cycle[keep], row_date[keep], row_kind[keep]
    # Sort as an export would be (contract, date, programme, patient), and drop same-day repeats.
    order = np.lexsort((row_kind, c_patient[row_cycle], c_prog[row_cycle], row_date, c_contract[row_cycle]))
    row_cycle, row_date, row_kind = row_cycle[order], row_date[order], row_kind[order]
    key_change = np.ones(row_cycle.size, dtype=bool)
    key_change[1:] = (
        (c_prog[row_cycle][1:] != c_prog[row_cycle][:-1])
        | (c_patient[row_cycle][1:] != c_patient[row_cycle][:-1])
        | (row_date[1:] != row_date[:-1])
        | (row_kind[1:] != row_kind[:-1])
    )
    row_cycle, row_date, row_kind = row_cycle[key_change], row_date[key_change], row_kind[key_change]
    late_entry = (row_kind == 1) & (row_date >= year_start[-1]) & (rng.random(row_cycle.size) < 0.015)

    patient_text = pseudonyms(c_patient, rng_seed)
    prog_text = np.char.add("P", (p_rank + 1).astype(str)).astype(object)
    sessions = pd.DataFrame(
        {
            "contract_id": cids[c_contract[row_cycle]],
            "programme_id": prog_text[c_prog[row_cycle]],
            "patient_id": _take_text(patient_text, row_cycle),
            "session_date": iso_dates(row_date),
            "kind": KINDS[row_kind],
        }
    )
    write_csv(sessions, folder / "sessions.csv")
    write_csv(sessions[~late_entry], folder / "sessions.v1.csv")
    notes.append(
        f"séances : {len(sessions)} lignes pour {nc} cycles patient-programme "
        f"({int((~with_diag).sum())} cycles sans diagnostic, {int((n_sessions == 0).sum())} diagnostics sans séance, "
        f"{int(back.sum())} patients revenus l'année suivante, {int(again.sum())} seconds cycles la même année)"
    )
    notes.append(
        f"correction tardive : sessions.v1.csv (première version, dans data.v1) ne contient pas "
        f"{int(late_entry.sum())} séances de {years[-1]} saisies en retard ; sessions.csv est la version corrigée"
    )

    # -- trainings ---------------------------------------------------------------------
    profs = rng.choice([0, 1, 2, 3, 4], size=(n, len(years)), p=[0.2, 0.3, 0.25, 0.15, 0.1])
    t_contract = np.repeat(np.repeat(np.arange(n), len(years)), profs.ravel())
    t_year = np.repeat(np.tile(np.arange(len(years)), n), profs.ravel())
    t_prof = rank_in_groups(profs.ravel())
    count = rng.choice([1, 2, 3], size=t_contract.size, p=[0.5, 0.35, 0.15])
    tr = np.repeat(np.arange(t_contract.size), count)
    module_no = rank_in_groups(count)
    t_date = (
        year_start[t_year[tr]]
        + rng.integers(0, 120, size=t_contract.size)[tr].astype("timedelta64[D]")
        + (module_no * 75).astype("timedelta64[D]")
    )
    ok = (t_date >= m_start[t_contract[tr]]) & (t_date <= m_end[t_contract[tr]])
    rpps = (10_000_000_000 + (rng.integers(0, 900_000_000, size=n)[t_contract] * 7 + t_prof)).astype(str)
    trainings = pd.DataFrame(
        {
            "contract_id": cids[t_contract[tr]],
            "professional_id": np.char.add("RPPS-", rpps[tr]).astype(object),
            "training_date": iso_dates(t_date),
            "training_title": np.char.add("Formation ETP 40 h, module ", (module_no + 1).astype(str)).astype(object),
        }
    )[ok]
    write_csv(trainings, folder / "trainings.csv")

    # -- structuring -------------------------------------------------------------------
    claim = m_start + rng.integers(30, 200, size=n).astype("timedelta64[D]")
    second = rng.random(n) < 0.05
    s_contract = np.concatenate([np.arange(n), np.flatnonzero(second)])
    s_date = np.concatenate([claim, claim[second] + np.timedelta64(365, "D")])
    ok = s_date <= m_end[s_contract]
    structuring = pd.DataFrame(
        {
            "contract_id": cids[s_contract],
            "claim_date": iso_dates(s_date),
            "reference": np.char.add("Note de structuration du projet ETP n° ", (s_contract + 1).astype(str)).astype(
                object
            ),
        }
    )[ok]
    write_csv(structuring, folder / "structuring.csv")
    notes.append(f"formations : {len(trainings)} ; demandes de structuration : {len(structuring)}")
    return {
        "rows": {
            "programmes": len(programmes),
            "sessions": len(sessions),
            "trainings": len(trainings),
            "structuring": len(structuring),
        },
        "notes": notes,
    }


def _index_of(prog, year, rank, q_prog, q_year, q_rank) -> np.ndarray:
    """Row number of each (programme, year index, rank) query among the cycles (-1: none)."""
    width = np.int64(rank.max() + 1) if rank.size else np.int64(1)
    span = np.int64(year.max() + 1) if year.size else np.int64(1)
    keys = (prog * span + year) * width + rank  # cycles are generated sorted on this key
    q = (q_prog * span + q_year) * width + q_rank
    pos = np.searchsorted(keys, q)
    pos = np.minimum(pos, keys.size - 1)
    return np.where(keys[pos] == q, pos, -1)


def _take_text(text: np.ndarray, index: np.ndarray) -> np.ndarray:
    return text[index]
