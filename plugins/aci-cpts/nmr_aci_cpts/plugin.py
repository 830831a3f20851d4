"""Hook implementations of the ACI CPTS module (public plugin API only)."""

from pathlib import Path

from nmr_engine.errors import Problem
from nmr_engine.plugin import API_VERSION, ModuleSpec, hookimpl

from . import __version__
from .rules import calculate, unknown_missions
from .tables import TABLES

SPEC = ModuleSpec(
    code="aci_cpts",
    title="ACI des communautés professionnelles territoriales de santé (CPTS, 2019)",
    version=__version__,
    api_version=API_VERSION,
    tables=TABLES,
    parameters_dir=Path(__file__).parent / "parameters",
    description="Taille selon la population, budget de fonctionnement, missions (part fixe, part variable), plafond.",
)


@hookimpl
def nmr_register_modules(register):
    register(SPEC)


@hookimpl
def nmr_validate_inputs(module, tables, context):
    """Mission codes known; results only for declared missions; rates ≤ 100 %."""
    problems = []
    missions, results = tables["missions"], tables["mission_results"]
    file = missions.attrs.get("file", "missions.csv")
    bad = missions[unknown_missions(context, missions)].head(20)
    for code, day, line in zip(bad["mission"], bad["started_on"], bad["_line"], strict=True):
        message = f"mission « {code} » absente de la table des missions en vigueur le {day:%d/%m/%Y}"
        problems.append(Problem(file, message, int(line), "mission"))
    declared = set(zip(missions["contract_id"], missions["mission"], strict=True))
    file = results.attrs.get("file", "mission_results.csv")
    for cid, code, pct, line in zip(
        results["contract_id"], results["mission"], results["achieved_pct"], results["_line"], strict=True
    ):
        if (cid, code) not in declared:
            problems.append(Problem(file, f"mission « {code} » non déclarée dans missions.csv", int(line), "mission"))
        elif pct > 100:
            problems.append(Problem(file, "taux d'atteinte supérieur à 100", int(line), "achieved_pct"))
    return problems[:50]


@hookimpl
def nmr_calculate(module, context):
    return calculate(context)
