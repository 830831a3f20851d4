"""Hook implementations of the ACI MSP module (public plugin API only)."""

from pathlib import Path

from nmr_reglement_arbitral.rules import check_inputs

from nmr_engine.errors import Problem
from nmr_engine.plugin import API_VERSION, ModuleSpec, hookimpl

from . import __version__
from .rules import calculate
from .tables import TABLES

SPEC = ModuleSpec(
    code="aci_msp",
    title="ACI 2017 des structures pluriprofessionnelles (MSP), avenant 1 de 2022",
    version=__version__,
    api_version=API_VERSION,
    tables=TABLES,
    parameters_dir=Path(__file__).parent / "parameters",
    description="Indicateurs à points, 7 € le point, socle prérequis, avance de 60 % et solde en avril N+1.",
)


@hookimpl
def nmr_register_modules(register):
    register(SPEC)


@hookimpl
def nmr_validate_inputs(module, tables, context):
    """CMU-C/AME patients within the patientèle; rates ≤ 100 %; indicator codes known; association dates."""
    problems = check_inputs(tables, context)
    assoc = tables["associates"]
    file = assoc.attrs.get("file", "associates.csv")
    for line in assoc.loc[assoc["left_on"].notna() & (assoc["left_on"] < assoc["joined_on"]), "_line"].head(20):
        problems.append(Problem(file, "sortie de la SISA avant l'entrée", int(line), "left_on"))
    return problems


@hookimpl
def nmr_calculate(module, context):
    return calculate(context)
