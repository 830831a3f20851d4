"""``nmr synth``: deterministic, realistic, valid for the engine, and checked against the reference."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.engine import Workspace
from nmr_engine.errors import ConfigurationError
from nmr_engine.plugin import hookimpl
from nmr_engine.plugin.manager import PluginRegistry
from nmr_engine.synth import synthesise
from nmr_engine.synth.contracts import luhn_valid

ROOT = Path(__file__).resolve().parent.parent


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "set"
    synthesise(out, contracts=12, years=2, patients_per_structure=12, seed=5)
    return out


def test_same_seed_same_files_other_seed_other_files(small, tmp_path):
    again = tmp_path / "again"
    synthesise(again, contracts=12, years=2, patients_per_structure=12, seed=5)
    assert _digest(again) == _digest(small)
    other = tmp_path / "other"
    synthesise(other, contracts=12, years=2, patients_per_structure=12, seed=6)
    assert _digest(other)["data/etp/sessions.csv"] != _digest(small)["data/etp/sessions.csv"]


def test_contracts_look_real_and_load(small):
    ws = Workspace(small / "contracts", small / "data")
    assert len(ws.contracts) == 12
    for c in ws.contracts:
        assert len(c.structure.finess) == 9 and luhn_valid(c.structure.finess)
        assert c.structure.finess[:2] in {"59", "62", "02", "60", "80"}
        assert c.id == f"ENMR-HDF-{c.structure.finess}"
        # every contract in modules 1 and 2 (synth_enrolment = 1); Asalée only in some
        assert {"coordination", "etp"} <= set(c.modules()) <= {"asalee", "coordination", "etp"}
    assert 0 < sum("asalee" in c.modules() for c in ws.contracts) < 12
    assert {c.anchor for c in ws.contracts} == {(1, 1), (7, 1)}
    # Aniche's FINESS in the bundled example carries the same Luhn key (tools/make_example.py)
    assert luhn_valid("590001004") and not luhn_valid("590001005")


def test_sessions_distribution_and_pseudonyms(small):
    import pandas as pd

    sessions = pd.read_csv(small / "data" / "etp" / "sessions.csv", sep=";", dtype=str)
    assert set(sessions["kind"]) == {"diagnostic", "seance"}
    assert sessions["patient_id"].str.fullmatch(r"PAT-[0-9A-F]{16}").all()
    per_cycle = sessions[sessions["kind"] == "seance"].groupby(["contract_id", "programme_id", "patient_id"]).size()
    assert per_cycle.between(1, 16).all()  # 2–8 séances per cycle; a returning patient has two cycles
    assert 3 <= per_cycle.median() <= 6


def test_manifest_and_late_correction(small):
    manifest = yaml.safe_load((small / "synth.yaml").read_text(encoding="utf-8"))
    assert manifest["seed"] == 5 and manifest["years"] == [2012, 2013]
    v1 = (small / "data.v1" / "etp" / "sessions.csv").read_text(encoding="utf-8").splitlines()
    latest = (small / "data" / "etp" / "sessions.csv").read_text(encoding="utf-8").splitlines()
    assert set(v1) < set(latest)  # the first version lacks the late entries, and only them
    late = set(latest) - set(v1)
    assert all(";2013-" in row and row.endswith(";seance") for row in late)
    assert manifest["rows"]["etp"]["sessions"] == len(latest) - 1
    assert not list((small / "data").rglob("*.v1.csv"))
    # unchanged tables are shared with data.v1 (hard links), not copied
    assert (small / "data.v1" / "etp" / "programmes.csv").samefile(small / "data" / "etp" / "programmes.csv")


def test_engine_and_per_row_reference_agree(small):
    spec = importlib.util.spec_from_file_location("reference_etp", ROOT / "bench" / "reference_etp.py")
    reference = importlib.util.module_from_spec(spec)
    sys.modules["reference_etp"] = reference
    spec.loader.exec_module(reference)
    from nmr_engine.model import module_periods_frame

    components: set[str] = set()
    for data in ("data", "data.v1"):
        ws = Workspace(small / "contracts", small / data)
        for period in ("2012", "2013"):
            result = ws.calculate([period])
            wanted = module_periods_frame(ws.contracts, "etp", [period])
            selected = set(zip(wanted["contract_id"], wanted["period_id"], strict=True))
            ref = reference.calculate(ws, small / data, selected)
            etp = result.lines[result.lines["module"] == "etp"]
            assert reference.check(ref, reference.engine_totals(etp)) == []
            assert sum(ref.values()) == int(etp["amount_cents"].sum()) > 0
            components |= set(etp["component"])
    assert {
        "formation",
        "structuration",
        "forfait_patient_3_4",
        "forfait_patient_5_6",
        "forfait_patient_sans_diagnostic",
        "forfait_patient_seances_insuffisantes",
    } <= components


def test_cli_refuses_a_non_empty_folder_and_reports(tmp_path):
    (tmp_path / "x.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="dossier non vide"):
        synthesise(tmp_path, contracts=2, years=1, patients_per_structure=2, seed=1)
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        cli, ["synth", "--out", str(out), "--contracts", "3", "--years", "1", "--patients-per-structure", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "3 contrat(s)" in result.output and "module etp" in result.output
    assert len(list((out / "contracts").glob("*.yaml"))) == 3


class _Silent:
    """A module without the optional hook: never enrolled in synthetic contracts."""

    @hookimpl
    def nmr_register_modules(self, register):
        from nmr_engine.plugin import API_VERSION, ModuleSpec

        register(ModuleSpec(code="silent", title="Sans générateur", version="0", api_version=API_VERSION))


def test_modules_without_generator_are_skipped(tmp_path):
    import nmr_etp.plugin

    registry = PluginRegistry(entry_points=False, plugins=[nmr_etp.plugin, _Silent()])
    assert registry.synthesisers() == ["etp"]
    report = synthesise(tmp_path / "s", contracts=3, years=1, patients_per_structure=3, seed=2, registry=registry)
    assert report.skipped == ("silent",)
    text = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "s" / "contracts").glob("*.yaml"))
    assert "silent" not in text


OVERRIDES = (
    """parameters:
  etp.patient.diagnostic_required:
    - {start: 2010-01-01, value: false, reference: "Avenant de test"}
""",
    """parameters:
  etp.patient.above_top_tier:
    - {start: 2010-01-01, value: nothing, reference: "Avenant de test"}
  etp.patient.max_cycles_per_period:
    - {start: 2013-01-01, value: 2, reference: "Avenant de test"}
""",
    """parameters:
  etp.patient.tiers:
    - start: 2013-03-01
      value:
        - {min_sessions: 2, max_sessions: 4, amount: "260.00"}
        - {min_sessions: 5, max_sessions: 7, amount: "310.00"}
      reference: "Avenant de test"
  etp.training.amount:
    - {start: 2013-06-01, value: "1100.00", reference: "Avenant de test"}
""",
)


def test_engine_and_reference_agree_with_contract_overrides(tmp_path):
    """Overrides exercise the rarer rules: séances without diagnostic paid, cycles above the top
    tier unpaid, two cycles a period, a scale and a training amount changing inside a period."""
    spec = importlib.util.spec_from_file_location("reference_etp", ROOT / "bench" / "reference_etp.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    from nmr_engine.model import module_periods_frame

    out = tmp_path / "o"
    # seed 16: a training falls on each side of the training price change of 01/06/2013
    synthesise(out, contracts=12, years=2, patients_per_structure=12, seed=16)
    for i, path in enumerate(sorted((out / "contracts").glob("*.yaml"))):
        path.write_text(path.read_text(encoding="utf-8") + OVERRIDES[i % 3], encoding="utf-8")
    ws = Workspace(out / "contracts", out / "data")
    result = ws.calculate(["2013"])
    wanted = module_periods_frame(ws.contracts, "etp", ["2013"])
    selected = set(zip(wanted["contract_id"], wanted["period_id"], strict=True))
    ref = reference.calculate(ws, out / "data", selected)
    assert reference.check(ref, reference.engine_totals(result.lines[result.lines["module"] == "etp"])) == []
    components = set(result.lines["component"])
    assert {"forfait_patient_au_dela_du_dernier_palier", "forfait_patient_2_4", "forfait_patient_5_7"} <= components
    # a price changing inside the period is explained part by part
    assert any(" + " in e.formula and "(valeur du 01/06/2013)" in e.formula for e in result.lines["explanation"])


def test_all_three_modules_valid_and_paying(small):
    """The generated set passes the engine's checks for the three modules and pays each of them."""
    import pandas as pd

    ws = Workspace(small / "contracts", small / "data")
    result = ws.calculate(["2013"])  # an input error would raise InputError here
    lines = result.lines
    paid = lines.groupby("module")["amount_cents"].sum()
    assert set(paid.index) == {"asalee", "coordination", "etp"}
    assert (paid > 0).all(), paid
    components = set(lines["component"])
    assert {"part_a_patientele", "part_b_temps_professionnels", "modulation_objectifs"} <= components
    assert {"temps_infirmier", "concertation"} <= components and any(c.startswith("suivi_") for c in components)
    # Module 1: instalments 80 % / 20 % of each part, the last one the remainder.
    a = (
        lines[lines["component"] == "part_a_patientele"]
        .groupby(["contract_id", "period_id", "instalment"])["amount_cents"]
        .sum()
        .unstack()
    )
    total = a["avance"] + a["solde"]
    assert ((a["avance"] - total * 80 / 100).abs() <= 1).all()
    pat = pd.read_csv(small / "data" / "coordination" / "patients.csv", sep=";", dtype=str, keep_default_na=False)
    assert pat["patient_id"].str.fullmatch(r"PAT-[0-9A-F]{16}").all()
    assert not pat.duplicated(["contract_id", "patient_id"]).any()
    assert set(pat["ald"]) == {"oui", "non"}
    staff = pd.read_csv(small / "data" / "asalee" / "staff.csv", sep=";", dtype=str, keep_default_na=False)
    assert set(staff["role"]) == {"infirmier", "medecin"}
    assert staff["fte"].str.fullmatch(r"0,[1-9]|1").all()


def test_module_1_and_3_files_are_deterministic(small, tmp_path):
    """Same seed, same files for modules 1 and 3 (the ETP check above covers module 2)."""
    again = tmp_path / "again"
    synthesise(again, contracts=12, years=2, patients_per_structure=12, seed=5)
    first, second = _digest(small), _digest(again)
    tables = [k for k in first if k.startswith(("data/coordination/", "data/asalee/"))]
    assert len(tables) == 7
    assert all(first[k] == second[k] for k in tables)
    other = tmp_path / "other"
    synthesise(other, contracts=12, years=2, patients_per_structure=12, seed=6)
    assert _digest(other)["data/coordination/patients.csv"] != first["data/coordination/patients.csv"]
