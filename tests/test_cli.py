"""The README's main command on the bundled example, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def nmr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nmr_engine.cli.main", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_main_command_on_the_bundled_example():
    out = nmr("calculate", "--period", "2012", "--period", "2013", "--module", "etp", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    lines = data["lines"]
    assert {line["module"] for line in lines} == {"etp"}
    # Every line is exact and explained; the total is the sum of the lines to the cent.
    assert sum(line["amount_cents"] for line in lines) == data["total_cents"]
    assert all(line["explanation"]["summary"] and line["explanation"]["formula"] for line in lines)
    contracts = {line["contract_id"] for line in lines}
    assert len(contracts) == 8  # the eight Fiche 5 structures enrolled in module 2
    # Maubeuge's programme was authorised from March 2013: its 2012 séances pay nothing, and say why.
    refused = [
        x
        for x in lines
        if x["contract_id"] == "ENMR-NPDC-MAUBEUGE" and x["component"] == "forfait_patient_hors_autorisation"
    ]
    assert refused and all(x["amount_cents"] == 0 for x in refused)
    assert "non autorisé par l'ARS" in refused[0]["explanation"]["reason"]


def test_table_output_is_in_french_per_contract_and_period():
    out = nmr("calculate", "--period", "2013-01-01", "--module", "etp")
    assert out.returncode == 0, out.stderr
    assert "ENMR-NPDC-FRUGES" in out.stdout and "période du 01/01/2013 au 31/12/2013" in out.stdout
    assert "Total général" in out.stdout


def test_errors_exit_2_with_a_french_message(tmp_path):
    out = nmr("calculate", "--contracts", str(tmp_path / "nowhere"))
    assert out.returncode == 2
    assert "dossier des contrats introuvable" in out.stderr


def test_plugins_and_contracts_check():
    out = nmr("plugins")
    assert out.returncode == 0 and "etp" in out.stdout and "1.0.0" in out.stdout
    out = nmr("contracts", "check")
    assert out.returncode == 0 and "contrat(s) valide(s)" in out.stdout
