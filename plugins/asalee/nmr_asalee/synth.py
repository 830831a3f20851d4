"""Synthetic module 3 (coopération Asalée) inputs for ``nmr synth``, vectorised with numpy.

Asalée was run by a minority of the structures: ``nmr synth`` enrols 25 % of the synthetic
contracts (``ModuleSpec.synth_enrolment``). Per enrolled contract (``P`` =
``scale.patients_per_structure``):

- staff: 1 nurse (80 %) or 2, FTE 0,5 / 0,8 / 1 (in tenths), arriving between the enrolment
  and four months after the opening of the protocol's financing (1 December 2012), 20 % of them
  changing FTE once; 2 to 6 doctors of 0,6 to 1 FTE present from before the enrolment (the
  1 nurse : 5 GP FTE ratio is not always met, as in practice: the line then warns);
- followed patients: per nurse, year and act, a Poisson number of distinct patients of mean
  ``4 × P × FTE × share of the act`` (diabetes 45 %, cardio-vascular risk 30 %, BPCO spirometry
  15 %, cognitive screening 10 %), each seen 1 to 4 times while the nurse is present; a patient
  may be followed for two acts;
- concertation: each doctor meets the nurse about once a month (Poisson(1.2) sessions per month
  of nurse presence) for 20 to 90 minutes.

Rows dated before 1 December 2012 or after 2015 exist (data outside the financing pays
nothing, and the lines say why).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nmr_engine.synth.tools import iso_dates, pseudonyms, rank_in_groups, tenths_text, write_csv

from .tables import ACTS

ACT_SHARES = np.array([0.45, 0.30, 0.15, 0.10])
_MIX = 0xC2B2AE3D27D4EB4F  # this module's multiplier for patient pseudonyms
DAY = np.timedelta64(1, "D")
OPENING = np.datetime64("2012-12-01", "D")


def synthesise(module, contracts: pd.DataFrame, rng_seed: int, scale, out_dir: Path) -> dict:
    rng = np.random.default_rng(rng_seed)
    folder = Path(out_dir) / module.code
    folder.mkdir(parents=True, exist_ok=True)
    n = len(contracts)
    cids = contracts["contract_id"].to_numpy(dtype=object)
    m_start = contracts["module_start"].to_numpy().astype("datetime64[D]")
    m_end = contracts["module_end"].to_numpy().astype("datetime64[D]")
    years = np.asarray(scale.years, dtype=np.int64)
    notes: list[str] = []

    # -- staff ---------------------------------------------------------------------------------
    n_nurse = rng.choice([1, 2], size=n, p=[0.8, 0.2])
    n_doc = rng.integers(2, 7, size=n)
    s_nurse_contract = np.repeat(np.arange(n), n_nurse)
    nn = s_nurse_contract.size
    nurse_rank = rank_in_groups(n_nurse)
    arrive = np.maximum(m_start[s_nurse_contract], OPENING) + rng.integers(0, 120, size=nn) * DAY
    arrive = np.where(arrive > m_end[s_nurse_contract], m_start[s_nurse_contract], arrive)
    fte = rng.choice([5, 8, 10], size=nn, p=[0.3, 0.3, 0.4])  # tenths
    change = (rng.random(nn) < 0.2) & (arrive + 200 * DAY < m_end[s_nurse_contract])
    change_on = arrive + rng.integers(120, 200, size=nn) * DAY
    new_fte = np.where(fte == 10, 8, 10)
    nurse_id = np.char.add(
        "ADELI-", (100_000_000 + rng.integers(0, 8_000_000, size=n)[s_nurse_contract] * 4 + nurse_rank).astype(str)
    ).astype(object)
    d_contract = np.repeat(np.arange(n), n_doc)
    nd = d_contract.size
    doc_rank = rank_in_groups(n_doc)
    doctor_id = np.char.add(
        "RPPS-", (10_000_000_000 + rng.integers(0, 899_999_999, size=n)[d_contract] * 8 + doc_rank).astype(str)
    ).astype(object)
    doc_fte = rng.integers(6, 11, size=nd)
    doc_from = m_start[d_contract] - rng.integers(30, 3000, size=nd) * DAY
    nat = np.datetime64("NaT", "D")
    staff = pd.DataFrame(
        {
            "contract_id": cids[np.concatenate([s_nurse_contract, s_nurse_contract[change], d_contract])],
            "person_id": np.concatenate([nurse_id, nurse_id[change], doctor_id]),
            "role": np.array(["infirmier"] * (nn + int(change.sum())) + ["medecin"] * nd, dtype=object),
            "fte": tenths_text(np.concatenate([fte, new_fte[change], doc_fte])),
            "present_from": iso_dates(np.concatenate([arrive, change_on[change], doc_from])),
            "present_to": iso_dates(
                np.concatenate([np.where(change, change_on - DAY, nat), np.full(int(change.sum()) + nd, nat)])
            ),
        }
    )
    staff = staff.sort_values(["contract_id", "role", "person_id", "present_from"], kind="stable")
    write_csv(staff, folder / "staff.csv")
    notes.append(
        f"personnel : {nn} infirmiers ({int(change.sum())} changements d'ETP), {nd} médecins, sur {len(staff)} lignes"
    )

    # -- followed patients -------------------------------------------------------------------------
    year_starts = np.array([np.datetime64(f"{y}-01-01", "D") for y in years])
    y_of = np.tile(np.arange(len(years)), nn)
    nurse_of = np.repeat(np.arange(nn), len(years))
    lo = np.maximum(np.maximum(year_starts[y_of], arrive[nurse_of]), m_start[s_nurse_contract[nurse_of]])
    hi = np.minimum(year_starts[y_of] + 364 * DAY, m_end[s_nurse_contract[nurse_of]])
    days = np.maximum((hi - lo).astype(np.int64) + 1, 0)
    mean = 4 * int(scale.patients_per_structure) * fte[nurse_of] / 10 * days / 365
    per_act = rng.poisson(mean[:, None] * ACT_SHARES[None, :])  # (nurse-years, acts)
    f_ny = np.repeat(np.repeat(np.arange(nurse_of.size), len(ACTS)), per_act.ravel())
    f_act = np.repeat(np.tile(np.arange(len(ACTS)), nurse_of.size), per_act.ravel())
    npat = f_ny.size
    # Patient numbers: distinct per contract; 10 % are the patient of the previous row (a second act).
    patient_no = np.arange(npat, dtype=np.uint64)
    second = np.zeros(npat, dtype=bool)
    second[1:] = (rng.random(npat - 1) < 0.10) & (f_ny[1:] == f_ny[:-1]) & (f_act[1:] != f_act[:-1])
    patient_no[second] = patient_no[np.flatnonzero(second) - 1]
    visits = rng.integers(1, 5, size=npat)
    v_pat = np.repeat(np.arange(npat), visits)
    v_day = lo[f_ny[v_pat]] + (rng.random(v_pat.size) * days[f_ny[v_pat]]).astype(np.int64) * DAY
    order = np.lexsort((v_day, f_act[v_pat], patient_no[v_pat]))
    v_pat, v_day = v_pat[order], v_day[order]
    distinct = np.ones(v_pat.size, dtype=bool)
    distinct[1:] = (
        (patient_no[v_pat][1:] != patient_no[v_pat][:-1])
        | (f_act[v_pat][1:] != f_act[v_pat][:-1])
        | (v_day[1:] != v_day[:-1])
    )
    v_pat, v_day = v_pat[distinct], v_day[distinct]
    f_contract = s_nurse_contract[nurse_of[f_ny]]
    followed = pd.DataFrame(
        {
            "contract_id": cids[f_contract[v_pat]],
            "patient_id": pseudonyms(patient_no, rng_seed, mix=_MIX)[v_pat],
            "act": np.asarray(ACTS, dtype=object)[f_act[v_pat]],
            "followed_on": iso_dates(v_day),
        }
    )
    write_csv(followed, folder / "followed_patients.csv")

    # -- concertation ------------------------------------------------------------------------------
    # Months of presence of the contract's first nurse, for each doctor of the contract.
    first_nurse = np.cumsum(n_nurse) - n_nurse
    start = np.maximum(arrive[first_nurse], m_start)
    end = m_end
    months = np.maximum(((end - start).astype(np.int64)) // 30, 0)
    per_month = rng.poisson(1.2, size=(nd, int(months.max()) if months.size and months.max() > 0 else 0))
    per_month = np.where(np.arange(per_month.shape[1])[None, :] < months[d_contract][:, None], per_month, 0)
    c_doc = np.repeat(np.repeat(np.arange(nd), per_month.shape[1]), per_month.ravel())
    c_month = np.repeat(np.tile(np.arange(per_month.shape[1]), nd), per_month.ravel())
    c_day = start[d_contract[c_doc]] + (c_month * 30 + rng.integers(0, 30, size=c_doc.size)) * DAY
    keep = c_day <= end[d_contract[c_doc]]
    c_doc, c_day = c_doc[keep], c_day[keep]
    order = np.lexsort((c_day, c_doc))
    c_doc, c_day = c_doc[order], c_day[order]
    distinct = np.ones(c_doc.size, dtype=bool)
    distinct[1:] = (c_doc[1:] != c_doc[:-1]) | (c_day[1:] != c_day[:-1])
    c_doc, c_day = c_doc[distinct], c_day[distinct]
    concertation = pd.DataFrame(
        {
            "contract_id": cids[d_contract[c_doc]],
            "doctor_id": doctor_id[c_doc],
            "session_date": iso_dates(c_day),
            "minutes": rng.choice([20, 30, 45, 60, 90], size=c_doc.size, p=[0.1, 0.3, 0.25, 0.3, 0.05])
            .astype(str)
            .astype(object),
        }
    )
    write_csv(concertation, folder / "concertation.csv")
    notes.append(
        f"patients suivis : {len(followed)} consultations infirmières pour {npat} patient-acte "
        f"({int(second.sum())} patients suivis pour deux actes) ; séances de concertation : {len(concertation)}"
    )
    notes.append(
        f"{n} contrats adhèrent au module 3 (25 % des contrats synthétiques : Asalée était minoritaire) ; "
        "les données antérieures au 01/12/2012 ou postérieures au 31/12/2015 ne sont pas financées"
    )
    return {
        "rows": {"staff": len(staff), "followed_patients": len(followed), "concertation": len(concertation)},
        "notes": notes,
    }
