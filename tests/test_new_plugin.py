"""``nmr new-plugin``: the scaffolded package passes the conformance kit and its own tests as generated."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.errors import ConfigurationError
from nmr_engine.scaffold import create_plugin
from nmr_engine.testing import CHECKS, Example

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory) -> Path:
    return create_plugin("demo_module", tmp_path_factory.mktemp("scaffold"))


def test_the_scaffold_is_an_installable_package_with_an_entry_point(scaffold):
    assert scaffold.name == "nmr-demo-module"
    project = tomllib.loads((scaffold / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "nmr-demo-module"
    assert project["entry-points"]["nmr_engine.modules"] == {"demo_module": "nmr_demo_module.plugin"}
    assert any(d.startswith("nmr-engine") for d in project["dependencies"])
    for part in ("plugin.py", "tables.py", "rules.py", "parameters/visit/amount.yaml"):
        assert (scaffold / "nmr_demo_module" / part).is_file(), part
    conformance = (scaffold / "tests" / "test_demo_module_conformance.py").read_text(encoding="utf-8")
    assert "TestConformance = conformance_suite(" in conformance


def test_the_scaffold_passes_every_conformance_check_loaded_by_path(scaffold, tmp_path):
    example = Example.from_dir("demo_module", scaffold / "example", package_dir=scaffold / "nmr_demo_module")
    for name, check in CHECKS.items():
        check(example, tmp_path / name)
    # 2024: DEMO-A 3 home visits × 25,00 € = 75,00 €; DEMO-B 1 × 25,00 €; practice visits 0 with a reason.
    lines = example.calculate()
    paid = lines[lines["component"] == "visites_domicile"].set_index(["contract_id", "period_id"])["amount_cents"]
    assert paid.loc[("DEMO-A", "2024-01-01/2024-12-31")] == 7500
    assert paid.loc[("DEMO-B", "2024-01-01/2024-12-31")] == 2500


def test_the_scaffolds_own_tests_pass_as_generated(scaffold):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=scaffold,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "9 passed" in run.stdout


def test_cli_new_plugin_and_its_refusals(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["new-plugin", "mon_module", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Ensuite : cd" in result.output and "pip install -e .[test] && pytest" in result.output
    assert (tmp_path / "nmr-mon-module" / "nmr_mon_module" / "plugin.py").is_file()
    with pytest.raises(ConfigurationError, match="existe déjà"):
        create_plugin("mon_module", tmp_path)
    with pytest.raises(ConfigurationError, match="nom de module invalide « Mon-Module »"):
        create_plugin("Mon-Module", tmp_path)


@pytest.mark.slow
def test_new_plugin_then_its_tests_in_a_fresh_virtual_environment(tmp_path):
    """The issue's acceptance: a fresh venv, nmr-engine installed, the scaffold pip-installed, its tests pass."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", str(ROOT)], check=True, timeout=900)
    subprocess.run([venv / "bin" / "nmr", "new-plugin", "demo_module", "--dir", str(tmp_path)], check=True)
    pkg = tmp_path / "nmr-demo-module"
    subprocess.run([py, "-m", "pip", "install", "-q", "-e", f"{pkg}[test]"], check=True, timeout=900)
    run = subprocess.run([py, "-m", "pytest", "-q"], cwd=pkg, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    listed = subprocess.run([venv / "bin" / "nmr", "plugins"], capture_output=True, text=True, check=True)
    assert "demo_module" in listed.stdout and "nmr-demo-module" in listed.stdout
