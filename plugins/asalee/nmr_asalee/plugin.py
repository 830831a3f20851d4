"""Hook implementations of module 3 (coopération Asalée). Uses only the public plugin API."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nmr_engine.decimals import DECIMAL
from nmr_engine.errors import Problem, row_problems
from nmr_engine.plugin import API_VERSION, ModuleSpec, hookimpl
from nmr_engine.plugin.helpers import row_positions
from nmr_engine.plugin.intervals import overlapping_intervals

from . import __version__
from .rules import calculate
from .synth import synthesise
from .tables import TABLES

SPEC = ModuleSpec(
    code="asalee",
    title="Module 3 — protocole de coopération Asalée",
    version=__version__,
    api_version=API_VERSION,
    tables=TABLES,
    parameters_dir=Path(__file__).parent / "parameters",
    description=(
        "Délégation du médecin généraliste à l'infirmier (diabète de type 2, risque cardio-vasculaire, "
        "BPCO du fumeur, troubles cognitifs) : temps infirmier, patients suivis, concertation des médecins."
    ),
    synth_enrolment=0.25,  # nmr synth: Asalée was run by a minority of the structures
)


@hookimpl
def nmr_register_modules(register):
    register(SPEC)


@hookimpl
def nmr_validate_inputs(module, tables):
    """FTE values, presence intervals and the doctors named in concertation.

    Checks that find nothing cost no frame indexing (``_problems``): on small data the
    fixed pandas costs are most of the time."""
    problems: list[Problem] = []
    staff, conc = tables["staff"], tables["concertation"]
    fte = staff["fte"].fillna("").str.strip()
    well_formed = fte.str.fullmatch(DECIMAL.pattern)
    problems += _problems(
        staff,
        ~well_formed & fte.ne(""),
        "fte",
        lambda r: f"ETP attendu en nombre décimal (au plus 6 décimales, ex. 0,5), reçu « {r['fte']} »",
    )
    problems += _problems(
        staff,
        well_formed & fte.str.startswith("-"),
        "fte",
        lambda r: f"ETP négatif « {r['fte']} » : un temps de travail est positif ou nul",
    )
    problems += _problems(
        staff,
        staff["present_to"].notna() & (staff["present_to"] < staff["present_from"]),
        "present_to",
        lambda r: f"fin de présence ({r['present_to']:%d/%m/%Y}) avant son début ({r['present_from']:%d/%m/%Y})",
    )
    overlaps = overlapping_intervals(staff, ["contract_id", "person_id"], "present_from", "present_to")
    overlaps.attrs = dict(staff.attrs)
    problems += _problems(
        overlaps,
        [True] * len(overlaps),
        "present_from",
        lambda r: (
            f"l'intervalle de présence de {r['person_id']} commençant le {r['present_from']:%d/%m/%Y} "
            f"chevauche celui de la ligne {r['_prev_line']}"
        ),
    )
    doctors = staff.loc[staff["role"] == "medecin", ["contract_id", "person_id"]].drop_duplicates()
    known = row_positions(doctors, ["contract_id", "person_id"], conc, ["contract_id", "doctor_id"]) >= 0
    problems += _problems(
        conc,
        ~known,
        "doctor_id",
        lambda r: f"médecin « {r['doctor_id']} » absent de staff.csv (rôle medecin) pour le contrat {r['contract_id']}",
    )
    return problems


def _problems(frame, mask, field, message) -> list[Problem]:
    """:func:`row_problems`, skipped when ``mask`` holds for no row."""
    if not pd.Series(mask, index=frame.index).fillna(False).astype(bool).any():
        return []
    return row_problems(frame, mask, field, message)


@hookimpl
def nmr_calculate(module, context):
    return calculate(context)


@hookimpl
def nmr_synthesise(module, contracts, rng_seed, scale, out_dir):
    """Synthetic Asalée staff, followed patients and concertation (see :mod:`.synth`)."""
    return synthesise(module, contracts, rng_seed, scale, out_dir)
