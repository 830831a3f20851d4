"""Hook implementations of the règlement arbitral module (public plugin API only)."""

from pathlib import Path

from nmr_engine.plugin import API_VERSION, ModuleSpec, hookimpl

from . import __version__
from .rules import calculate, check_inputs
from .tables import TABLES

SPEC = ModuleSpec(
    code="reglement_arbitral",
    title="Règlement arbitral 2015 — structures pluriprofessionnelles de proximité",
    version=__version__,
    api_version=API_VERSION,
    tables=TABLES,
    parameters_dir=Path(__file__).parent / "parameters",
    description="Indicateurs à points fixes et variables, 7 € le point, socle prérequis, majoration précarité.",
)


@hookimpl
def nmr_register_modules(register):
    register(SPEC)


@hookimpl
def nmr_validate_inputs(module, tables, context):
    """CMU-C/AME patients within the patientèle; rates ≤ 100 %; indicator codes known."""
    return check_inputs(tables, context)


@hookimpl
def nmr_calculate(module, context):
    return calculate(context)
