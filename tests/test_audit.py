"""``nmr explain ENTRY`` on the bundled example, and the audit bundle (export, replay elsewhere)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from nmr_engine.ledger import open_store

from . import histcase
from .test_replay import PLUGIN, plain, post_history, replay_args, run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The bundled example (contracts/, data/) copied and its 2013 periods posted on 31/12/2014."""
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(ROOT / "contracts", root / "contracts")
    shutil.copytree(ROOT / "data", root / "data")
    url = f"sqlite:///{root / 'ledger.sqlite'}"
    run_cli(
        "post",
        "--contracts",
        str(root / "contracts"),
        "--data",
        str(root / "data"),
        "--ledger",
        url,
        "--period",
        "2013",
        "--run-date",
        "2014-12-31",
    )
    with open_store(url) as store:
        entries = store.entries()
    return root, url, entries


def explain(root: Path, url: str, entry_id: str) -> str:
    args = ["explain", entry_id, "--contracts", str(root / "contracts"), "--data", str(root / "data")]
    return plain(run_cli(*args, "--ledger", url).output)


def pick(entries, contract, module, component):
    return next(e for e in entries if (e.contract_id, e.module, e.component) == (contract, module, component))


def test_explain_module_1_entry(example):
    root, url, entries = example
    e = pick(entries, "ENMR-NPDC-ANICHE", "coordination", "modulation_objectifs")
    out = explain(root, url, e.entry_id[:12])
    # 4 indicators of weight 1/4: 100 % + 79 % + 90,50 % + 100 % = 369,5 / 4 = 92,375 % (shown 92,38 %);
    # 20 % × 5 731,79 € × 92,375 % = 5 294,741… → 5 294,74 € (half-up, once)
    assert e.amount_cents == 529474
    assert f"Écriture {e.entry_id} — solde (exécution {e.run_id}, comptabilisée le 31/12/2014)" in out
    assert "Contrat ENMR-NPDC-ANICHE — module coordination — période du 01/07/2013 au 30/06/2014" in out
    assert "Montant : 5 294,74 €" in out
    assert (
        "indicateur hypertension (poids 1/4) : atteint 65,80 pour une cible de 70,00 (seuil 50,00) : 79 % acquis" in out
    )
    assert "coordination.objectives.share_at_stake = 20 %" in out
    assert "en vigueur à compter du 01/01/2009" in out
    assert "share_at_stake.yaml" in out and "fiabilité : OPEN" in out
    assert "Formule : 20 % × (part A + part B avant modulation) = ≈ 5 731,79 € × 92,38 % = 5 294,74 €" in out
    assert "Arrondi appliqué : arrondi une fois au centime (demi-centime au supérieur)" in out
    assert "la demi-unité étant arrondie au centime supérieur" in out
    assert "Écritures antérieures corrigées : aucune" in out
    assert f"Chaînage : écriture n° {e.seq}, empreinte {e.hash}" in out


def test_explain_module_2_entry(example):
    root, url, entries = example
    e = pick(entries, "ENMR-NPDC-ANICHE", "etp", "forfait_patient_3_4")
    out = explain(root, url, e.entry_id)
    # 1 patient with a diagnosis and 3 to 4 sessions × 250,00 € (tier 3–4 of etp.patient.tiers) = 250,00 €
    assert e.amount_cents == 25000
    assert "patient(s) retenus : 1 enregistrement(s) —" in out
    assert "etp/sessions.csv (version reçue le 01/07/2013), ligne(s) 76" in out  # the recorded version
    assert "etp.patient.tiers = min_sessions=3, max_sessions=4, amount=250,00 €" in out
    assert "fiabilité : SEED — énoncée dans les documents sources" in out
    assert "point presse mensuel « Maisons et pôles de santé », mai 2013, fiche 5 (module 2)" in out
    assert "Formule : 1 patient(s) × 250,00 € = 250,00 €" in out
    assert "Arrondi appliqué : aucun pour cette ligne" in out
    assert "Comptabilisation : Premier versement (versement unique) : 250,00 €." in out


def test_explain_module_3_entry(example):
    root, url, entries = example
    e = pick(entries, "ENMR-NPDC-DENAIN", "asalee", "concertation")
    out = explain(root, url, e.entry_id[:14])
    # 3 300 minutes × 50,00 €/h / 60 = 2 750,00 €
    assert e.amount_cents == 275000
    assert "Bénéficiaire : asalee — Association Asalée" in out
    assert "Concertation médecins-infirmier : 3300 minutes, 5 médecin(s)" in out
    assert "asalee.concertation.amount_per_hour = 50,00 €" in out
    assert "en vigueur du 01/12/2012 au 31/12/2014 (date d'effet : 01/12/2012)" in out
    assert "valeur illustrative" in out and "asalee.concertation.amount_per_hour (OPEN)" in out
    assert "Formule : (3300 min × 50,00 €/h) / 60 = 2 750,00 €" in out


def test_explain_unknown_or_ambiguous_entry(example):
    root, url, _ = example
    args = ["explain", "E-zzz", "--contracts", str(root / "contracts"), "--data", str(root / "data")]
    result = run_cli(*args, "--ledger", url, ok=False)
    assert result.exit_code != 0 and "aucune écriture « E-zzz »" in str(result.exception)
    result = run_cli("explain", "E-", "--ledger", url, "--data", str(root / "data"), ok=False)
    assert "désigne" in str(result.exception) and "écritures" in str(result.exception)


def export(root: Path, url: str, out: Path, *extra: str) -> str:
    args = ["audit", "export", "--contracts", str(root / "contracts"), "--data", str(root / "data")]
    return run_cli(*args, "--ledger", url, "--out", str(out), *extra).output


def test_bundle_of_the_history_replays_elsewhere_with_patients_pseudonymised(tmp_path):
    root = tmp_path / "office"
    histcase.build(root)
    url = f"sqlite:///{root / 'ledger.sqlite'}"
    post_history(root, url)
    local = plain(run_cli(*replay_args(root, url)).output)
    bundle = tmp_path / "audit.zip"
    out = plain(export(root, url, bundle, "--plugin", PLUGIN))
    assert "5 version(s) de données reçues" in out and "4 passage(s)" in out

    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        sessions = [n for n in names if n.startswith("data/.history/etp/sessions.")]
        content = zf.read(sessions[0]).decode()
        all_text = "".join(zf.read(n).decode("utf-8", "replace") for n in names)
    assert {"ledger/runs.jsonl", "ledger/entries.jsonl", "plugins.json", "contracts/test.yaml"} <= names
    assert "parameters/etp/training/amount.yaml" in names and "parameters/forfait/annual.yaml" in names
    assert "PAT-1" not in all_text and "PSN-" in content  # the patient id never leaves in clear
    rec = next(d for d in manifest["data"] if d["file"] == "data/etp/sessions.csv" and "received_on" in d)
    original = root / "data" / ".history" / "etp" / f"sessions.2013-07-20.{rec['original_sha256'][:12]}.csv"
    assert original.exists() and rec["bundle_sha256"] != rec["original_sha256"]
    assert manifest["files"][sessions[0]] == rec["bundle_sha256"]

    shutil.rmtree(root)  # the auditor's machine has only the bundle (and the plugins)
    elsewhere = plain(run_cli("audit", "replay", str(bundle), "--plugin", PLUGIN).output)
    verdict = re.search(r"Rejeu identique : 4 passage\(s\), 6 écriture\(s\), total 11 040,00 €", elsewhere)
    assert verdict and verdict.group(0) in local
    early = plain(run_cli("audit", "replay", str(bundle), "--as-of", "2013-04-01", "--plugin", PLUGIN).output)
    assert "Rejeu identique au 01/04/2013 : 2 passage(s), 3 écriture(s)" in early

    # an altered file in the bundle is named; so is an altered parameter value with a fixed manifest
    altered = tmp_path / "altered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(altered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "contracts/test.yaml":
                data = data.replace(b'value: "1200.00"', b'value: "1300.00"')
            dst.writestr(name, data)
    result = run_cli("audit", "replay", str(altered), "--plugin", PLUGIN, ok=False)
    assert result.exit_code != 0
    assert "contracts/test.yaml" in str(result.exception) and "manifeste" in str(result.exception)

    resealed = tmp_path / "resealed.zip"
    with zipfile.ZipFile(altered) as src, zipfile.ZipFile(resealed, "w") as dst:
        manifest = json.loads(src.read("manifest.json"))
        for name in src.namelist():
            if name != "manifest.json":
                data = src.read(name)
                import hashlib

                manifest["files"][name] = hashlib.sha256(data).hexdigest()
                dst.writestr(name, data)
        dst.writestr("manifest.json", json.dumps(manifest))
    result = run_cli("audit", "replay", str(resealed), "--plugin", PLUGIN, ok=False)
    assert result.exit_code == 1
    assert "paramètre etp.training.amount" in plain(result.output)


def test_bundle_of_the_example_replays_with_the_same_verdict(example, tmp_path):
    root, url, entries = example
    bundle = tmp_path / "example.zip"
    export(root, url, bundle)
    with zipfile.ZipFile(bundle) as zf:
        patients = zf.read("data/coordination/patients.csv").decode()
        original = (root / "data" / "coordination" / "patients.csv").read_text()
    # same number of lines, same other columns; patient ids replaced by pseudonyms
    assert len(patients.splitlines()) == len(original.splitlines())
    first = original.splitlines()[1].split(";")
    assert first[1] not in patients and patients.splitlines()[1].split(";")[1].startswith("PSN-")
    out = plain(run_cli("audit", "replay", str(bundle)).output)
    total = sum(e.amount_cents for e in entries)
    euros = f"{total // 100:,}".replace(",", " ") + f",{total % 100:02d} €"
    assert f"Rejeu identique : 1 passage(s), {len(entries)} écriture(s), total {euros}" in out


def _resealed(bundle: Path, out: Path, edit) -> Path:
    """A copy of ``bundle`` with ``edit(entries.jsonl lines as dicts)`` applied and the manifest
    recomputed (what a forger would do)."""
    import hashlib

    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        manifest = json.loads(src.read("manifest.json"))
        for name in src.namelist():
            if name == "manifest.json":
                continue
            data = src.read(name)
            if name == "ledger/entries.jsonl":
                lines = [json.loads(line) for line in data.decode().splitlines()]
                edit(lines)
                data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
            manifest["files"][name] = hashlib.sha256(data).hexdigest()
            dst.writestr(name, data)
        dst.writestr("manifest.json", json.dumps(manifest))
    return out


def test_bundle_entries_carry_the_stored_record_and_must_agree_with_it(example, tmp_path):
    root, url, entries = example
    bundle = tmp_path / "example.zip"
    export(root, url, bundle)
    with zipfile.ZipFile(bundle) as zf:
        lines = [json.loads(line) for line in zf.read("ledger/entries.jsonl").decode().splitlines()]
    # a new ledger is of format 2: each line holds the record its hash covers
    assert [base64.b64decode(line["record"]) for line in lines] == [e.record for e in entries]

    def relabel(lines):  # a field kept in the record, changed beside it: the hash still matches
        lines[0]["label"] = "Forfait falsifié"

    out = run_cli("audit", "replay", str(_resealed(bundle, tmp_path / "relabelled.zip", relabel)), ok=False)
    assert out.exit_code == 1
    text = plain(out.output)
    assert f"écriture n° 1 ({entries[0].entry_id}) : champs ou explication différents de l'enregistrement" in text

    def drop_records(lines):  # read as format 1: the hashes no longer match
        for line in lines:
            del line["record"]

    out = run_cli("audit", "replay", str(_resealed(bundle, tmp_path / "bare.zip", drop_records)), ok=False)
    assert out.exit_code == 1 and "contenu modifié (empreinte recalculée différente)" in plain(out.output)
