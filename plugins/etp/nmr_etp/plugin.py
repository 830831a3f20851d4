"""Hook implementations of module 2 (ETP). Uses only the public plugin API."""

from pathlib import Path

from nmr_engine.errors import Problem
from nmr_engine.plugin import API_VERSION, ModuleSpec, hookimpl

from . import __version__
from .rules import calculate, category_codes, undeclared_rows
from .synth import synthesise
from .tables import TABLES

SPEC = ModuleSpec(
    code="etp",
    title="Module 2 — éducation thérapeutique du patient",
    version=__version__,
    api_version=API_VERSION,
    tables=TABLES,
    parameters_dir=Path(__file__).parent / "parameters",
    description="Forfaits formation, structuration et par patient (diagnostic + 3 à 6 séances).",
    synth_enrolment=1.0,  # nmr synth: every contract, as the national scale (≈ 1 M patient cycles)
)


@hookimpl
def nmr_register_modules(register):
    register(SPEC)


@hookimpl
def nmr_validate_inputs(module, tables):
    """Every session must name a programme declared for its contract."""
    sessions, programmes = tables["sessions"], tables["programmes"]
    contract_code, contracts = category_codes(sessions["contract_id"])
    programme_code, programme_ids = category_codes(sessions["programme_id"])
    unknown = undeclared_rows(programmes, contracts, programme_ids, contract_code, programme_code)
    file = sessions.attrs.get("file", "sessions.csv")
    problems = [
        Problem(
            file,
            f"programme « {sessions['programme_id'].iat[i]} » non déclaré dans programmes.csv "
            f"pour le contrat {sessions['contract_id'].iat[i]}",
            int(sessions["_line"].iat[i]),
            "programme_id",
        )
        for i in unknown[:20]
    ]
    bad_dates = programmes["authorised_to"].notna() & (programmes["authorised_to"] < programmes["authorised_from"])
    problems += [
        Problem(
            programmes.attrs.get("file", "programmes.csv"),
            "fin d'autorisation avant son début",
            int(line),
            "authorised_to",
        )
        for line in programmes.loc[bad_dates, "_line"]
    ]
    return problems


@hookimpl
def nmr_calculate(module, context):
    return calculate(context)


@hookimpl
def nmr_synthesise(module, contracts, rng_seed, scale, out_dir):
    """Synthetic programmes, séances, trainings and structuring claims (see :mod:`nmr_etp.synth`)."""
    return synthesise(module, contracts, rng_seed, scale, out_dir)
