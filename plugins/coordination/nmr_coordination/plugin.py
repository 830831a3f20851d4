"""Hook implementations of module 1 (missions coordonnées). Uses only the public plugin API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nmr_engine.decimals import DECIMAL, decimal_micro
from nmr_engine.errors import Problem, row_problems
from nmr_engine.plugin import API_VERSION, ModuleSpec, hookimpl
from nmr_engine.plugin.helpers import VersionsAt, row_positions
from nmr_engine.plugin.intervals import overlapping_intervals

from . import __version__
from .rules import SCORINGS, calculate
from .synth import synthesise
from .tables import TABLES

SPEC = ModuleSpec(
    code="coordination",
    title="Module 1 — missions coordonnées",
    version=__version__,
    api_version=API_VERSION,
    tables=TABLES,
    parameters_dir=Path(__file__).parent / "parameters",
    description=(
        "Forfait annuel de coordination : part A (patientèle médecin traitant), part B (temps des "
        "professionnels en ETP), en partie modulé par des objectifs de santé publique."
    ),
    synth_enrolment=1.0,  # nmr synth: every synthetic contract is enrolled in module 1
)

#: A week has 7 days of 2 half-days.
MAX_HALF_DAYS_PER_WEEK = 14


@hookimpl
def nmr_register_modules(register):
    register(SPEC)


@hookimpl
def nmr_validate_inputs(module, tables, context):
    """Relations the column types cannot check: intervals, dates between tables, indicators."""
    problems: list[Problem] = []
    prof, pat = tables["professionals"], tables["patients"]
    cons, obj = tables["child_consultations"], tables["objectives"]

    # professionals: intervals
    problems += row_problems(
        prof,
        prof["present_to"].notna() & (prof["present_to"] < prof["present_from"]),
        "present_to",
        lambda r: f"fin de présence ({r['present_to']:%d/%m/%Y}) avant son début ({r['present_from']:%d/%m/%Y})",
    )
    problems += row_problems(
        prof,
        prof["half_days_per_week"] > MAX_HALF_DAYS_PER_WEEK,
        "half_days_per_week",
        lambda r: f"{r['half_days_per_week']} demi-journées par semaine : au plus {MAX_HALF_DAYS_PER_WEEK} possibles",
    )
    overlaps = overlapping_intervals(prof, ["contract_id", "professional_id"], "present_from", "present_to")
    overlaps.attrs = dict(prof.attrs)
    problems += row_problems(
        overlaps,
        [True] * len(overlaps),
        "present_from",
        lambda r: (
            f"l'intervalle de présence du professionnel {r['professional_id']} commençant le "
            f"{r['present_from']:%d/%m/%Y} chevauche celui de la ligne {r['_prev_line']}"
        ),
    )

    # patients: dates
    # on NumPy arrays (NaT compares False, as in pandas): no Series for the 3.4 M national patients
    ended, declared = pat["ended_on"].to_numpy("datetime64[ns]"), pat["declared_on"].to_numpy("datetime64[ns]")
    problems += row_problems(
        pat,
        ~np.isnat(ended) & (ended < declared),
        "ended_on",
        lambda r: f"fin de déclaration ({r['ended_on']:%d/%m/%Y}) avant la déclaration ({r['declared_on']:%d/%m/%Y})",
    )
    problems += row_problems(
        pat,
        pat["birth_date"].to_numpy("datetime64[ns]") > declared,
        "birth_date",
        lambda r: (
            f"date de naissance ({r['birth_date']:%d/%m/%Y}) postérieure à la déclaration ({r['declared_on']:%d/%m/%Y})"
        ),
    )

    # consultations: known child, born before, seen by a GP of the structure
    pat_file = pat.attrs.get("file", "patients.csv")
    # each consultation's patient row, by key lookup (no copy of the 1.4 M consultations);
    # (contract_id, patient_id) is unique in patients.csv (declared, checked by the core first)
    pos = row_positions(pat, ["contract_id", "patient_id"], cons, ["contract_id", "patient_id"])
    found = pos >= 0
    missing = ~found
    problems += row_problems(
        cons,
        missing,
        "patient_id",
        lambda r: f"patient « {r['patient_id']} » absent de patients.csv pour le contrat {r['contract_id']}",
    )
    at = np.where(found, pos, 0)
    birth = pat["birth_date"].to_numpy("datetime64[ns]")[at] if len(pat) else np.full(len(cons), np.datetime64("NaT"))
    early = found & (birth > cons["consultation_date"].to_numpy("datetime64[ns]"))
    if early.any():
        c = cons.assign(birth_date=birth, _pat_line=pat["_line"].to_numpy()[at])
        problems += row_problems(
            c,
            early,
            "consultation_date",
            lambda r: (
                f"consultation du {r['consultation_date']:%d/%m/%Y} antérieure à la naissance du patient "
                f"{r['patient_id']} (né le {r['birth_date']:%d/%m/%Y}, {pat_file} ligne {int(r['_pat_line'])})"
            ),
        )
    gps = prof.loc[prof["role"] == "generaliste", ["contract_id", "professional_id"]]
    known_gp = (
        row_positions(gps.drop_duplicates(), ["contract_id", "professional_id"], cons, ["contract_id", "doctor_id"])
        >= 0
    )
    problems += row_problems(
        cons,
        ~known_gp,
        "doctor_id",
        lambda r: (
            f"médecin « {r['doctor_id']} » absent des généralistes de professionals.csv pour le contrat "
            f"{r['contract_id']}"
        ),
    )

    # objectives: decimals, bounds, one result per indicator and period, indicator of the contract
    for col in ("achieved", "target", "floor"):
        values = obj[col].fillna("")
        bad = ~values.str.fullmatch(DECIMAL.pattern) & values.ne("")
        problems += row_problems(
            obj, bad, col, lambda r, col=col: f"nombre décimal attendu (ex. 62,5), reçu « {r[col]} »"
        )
        negative = ~bad & values.str.startswith("-")
        problems += row_problems(obj, negative, col, lambda r, col=col: f"valeur négative « {r[col]} » : attendu ≥ 0")
    ok = obj["target"].str.fullmatch(DECIMAL.pattern) & obj["floor"].fillna("").str.fullmatch(DECIMAL.pattern)
    if ok.any():
        sub = obj[ok]
        bad_floor = (
            decimal_micro(sub["floor"].where(sub["floor"].ne(""), "0")) >= decimal_micro(sub["target"])
        ).to_numpy()
        problems += row_problems(
            sub,
            bad_floor,
            "floor",
            lambda r: f"seuil {r['floor']} supérieur ou égal à la cible {r['target']}",
        )
    dup = obj.duplicated(["contract_id", "period_id", "indicator"], keep="first")
    problems += row_problems(
        obj,
        dup,
        "indicator",
        lambda r: f"deuxième résultat de l'indicateur « {r['indicator']} » dans la même période du contrat",
    )
    if not obj.empty:
        lists = context.lookup("objectives.indicators", obj["contract_id"], obj["measured_on"])
        # (version, indicator) pairs each list allows: a set lookup per result, no merge
        allowed = {
            (int(i), row["indicator"])
            for i in np.unique(lists.index)
            if i < len(lists.versions) and lists.versions[i].in_force
            for row in lists.versions[i].value
        }
        codes, indicators = pd.factorize(obj["indicator"])
        where = {ind: k for k, ind in enumerate(indicators)}
        grid = np.zeros((len(lists.versions) + 1, len(indicators) + 1), dtype=bool)  # last column: missing
        for version, ind in allowed:
            if ind in where:
                grid[version, where[ind]] = True
        listed = grid[lists.index, codes]
        problems += row_problems(
            obj,
            ~listed,
            "indicator",
            lambda r: (
                f"indicateur « {r['indicator']} » absent de la liste du contrat {r['contract_id']} "
                "(paramètre coordination.objectives.indicators)"
            ),
        )

    problems += _parameter_problems(context)
    return problems


def _parameter_problems(context) -> list[Problem]:
    """The contracts' scoring rule and instalment plan must be usable."""
    problems = []
    seen = set()
    history = context.history
    at = VersionsAt(context)
    # each (contract with its own values, else any, first day) once, in the order of the rows
    own = {contract_id for contract_id, _ in at.overridden}
    asked = dict.fromkeys(
        (contract_id if contract_id in own else None, start)
        for contract_id, start in zip(history["contract_id"].tolist(), history["active_start"].tolist(), strict=True)
    )
    for contract_id, start in asked:
        day = start.date()
        for name, check in (("objectives.scoring", _scoring_problem), ("payment.instalments", _instalments_problem)):
            version = at(name, day, contract_id)
            if version is None or version.id in seen:
                continue
            seen.add(version.id)
            message = check(version.value)
            if message:
                file, _, line = version.source.rpartition(":")
                problems.append(Problem(file, message, int(line) if line.isdigit() else None, version.name))
    return problems


def _scoring_problem(value) -> str | None:
    if value not in SCORINGS:
        return f"règle de notation « {value} » inconnue ; attendu l'une de : {', '.join(SCORINGS)}"
    return None


def _instalments_problem(table) -> str | None:
    total = sum(r["share_percent"] for r in table)
    if total != 100:
        return f"les parts des échéances totalisent {total} % au lieu de 100 %"
    if len(table) > 2:
        return "au plus deux échéances (avance puis solde)"
    if len(table) == 2 and [r["instalment"] for r in table] != ["avance", "solde"]:
        return "deux échéances attendues dans l'ordre « avance » puis « solde »"
    if any(r["months_after_start"] < 0 for r in table):
        return "décalage en mois négatif"
    return None


@hookimpl
def nmr_calculate(module, context):
    return calculate(context)


@hookimpl
def nmr_synthesise(module, contracts, rng_seed, scale, out_dir):
    """Synthetic professionals, patientèle, children's consultations and objectives (see :mod:`.synth`)."""
    return synthesise(module, contracts, rng_seed, scale, out_dir)
