"""``nmr explain``: the derivation of a line in French, checked on its content."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.money import ROUNDING_RULE
from nmr_engine.reports.explain import event_records, render_explanation
from nmr_engine.reports.lines import lines_to_records

from . import histcase as h


def plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    h.build(root)
    return root


@pytest.fixture(scope="module")
def training_2012(case):
    """The 2012 training line as known on 01/06/2013, as JSON (what a ledger entry stores)."""
    ws = h.workspace(case, "2013-06-01")
    result = ws.calculate(["2012"], ["etp"])
    (record,) = [r for r in lines_to_records(result.lines) if r["component"] == "formation"]
    return json.loads(json.dumps(record)), ws.contract("TEST-ETP")


def test_training_line_full_derivation(training_2012):
    record, contract = training_2012
    text = plain(
        render_explanation(
            record,
            record["explanation"],
            contract_events=event_records(contract, h.D("2012-12-31")),
            known_on="2013-06-01",
        )
    )
    lines = text.splitlines()
    assert lines[0] == "Ligne calculée (aperçu : non comptabilisée)"
    assert "  Selon ce que le moteur savait le 01/06/2013" in lines
    assert "  Contrat TEST-ETP — module etp — période du 01/01/2012 au 31/12/2012" in lines
    # 3 trainings: 10/03/2012 at 1 000,00 €, 10/09 and 05/11/2012 at 1 200,00 € (avenant 2):
    # 1 000 + 2 × 1 200 = 3 400,00 €; no single unit amount.
    assert "  Montant : 3 400,00 € (quantité 3)" in lines
    assert "  Échéance : paiement unique au 31/12/2012" in lines
    assert (
        "  - formation(s) retenus : 3 enregistrement(s) — "
        f"{h.Path(contract.source).parent.parent}/data/etp/trainings.csv (version reçue le 15/05/2013), "
        "ligne(s) 2, 3, 4"
    ) in lines
    # The base scale and the contract's own value, each with its dates, origin, source, confidence.
    base = lines.index("  - etp.training.amount = 1 000,00 €")
    assert lines[base + 1] == "      en vigueur à compter du 01/01/2010 (date d'effet : 01/01/2010)"
    assert lines[base + 2].startswith("      origine : barème du module (fichier de paramètres daté) — ")
    assert lines[base + 2].endswith("training/amount.yaml:7")
    assert lines[base + 3].startswith("      source documentaire : ARS Nord-Pas-de-Calais, point presse mensuel")
    assert lines[base + 4] == "      fiabilité : SEED — énoncée dans les documents sources"
    amended = lines.index("  - etp.training.amount = 1 200,00 €")
    assert lines[amended + 1] == "      en vigueur à compter du 01/07/2012 (date d'effet : 01/07/2012)"
    assert lines[amended + 2].startswith("      origine : valeur propre au contrat TEST-ETP (convention ou avenant) — ")
    assert lines[amended + 2].endswith("test.yaml:26")
    assert lines[amended + 3] == "      source documentaire : Avenant n° 2 du 20/06/2012"
    assert lines[amended + 4] == "      fiabilité : CONTRACT — fixée par la convention signée ou son avenant"
    assert "  - etp.training.max_per_professional_per_period = 2" in lines
    assert (
        "Formule : 1 formation(s) × 1 000,00 € (valeur du 01/01/2010) + 2 formation(s) × 1 200,00 € "
        "(valeur du 01/07/2012) = 3 400,00 €"
    ) in lines
    assert "Arrondi appliqué : aucun pour cette ligne" in lines
    assert f"Règle d'arrondi du moteur : {ROUNDING_RULE}, une seule fois par ligne de paiement" in text
    # The history events in effect by the end of the period, as known on 01/06/2013.
    history = lines[lines.index("Historique du contrat pris en compte :") + 1 :]
    assert history[0].startswith(
        "  - avenant : bénéficiaire « association » ajouté (Association de coordination de Test) ; module "
        "« forfait » ajouté du 01/01/2012 au 31/12/2014 — date d'effet 01/01/2012, enregistré le 10/12/2011 — "
        "Avenant n° 1 du 10/12/2011"
    )
    assert history[1].startswith("  - avenant : paramètre etp.training.amount = 1 200,00 € du 01/07/2012")
    assert lines[-1] == "Écritures antérieures corrigées : sans objet (ligne non comptabilisée)"


def test_ledger_entry_with_the_entries_it_corrects(training_2012):
    record, _ = training_2012
    entry = {**record, "entry_id": "E-0042", "run_id": "R-7", "posted_on": "2013-06-03"}
    text = plain(
        render_explanation(
            entry,
            entry["explanation"],
            corrects=[
                {
                    "entry_id": "E-0017",
                    "posted_on": "2013-02-04",
                    "amount_cents": 220000,
                    "reason": "fichier des formations corrigé",
                }
            ],
        )
    )
    lines = text.splitlines()
    assert lines[0] == "Écriture E-0042 (exécution R-7, comptabilisée le 03/06/2013)"
    # 3 400,00 − 2 200,00 = 1 200,00 € of regularisation
    assert lines[-2:] == [
        "Écritures antérieures corrigées :",
        "  - écriture E-0017 du 04/02/2013 : 2 200,00 € ; écart 1 200,00 € (fichier des formations corrigé)",
    ]
    assert render_explanation(entry, entry["explanation"], corrects=[]).endswith(
        "Écritures antérieures corrigées : aucune"
    )
    # The ledger's own entry shape: no quantity, a kind, a business date, corrected ids.
    ledger_entry = {k: v for k, v in entry.items() if k not in ("quantity", "unit_amount_cents", "posted_on")}
    ledger_entry |= {"kind": "regularisation", "business_date": "2013-06-03", "amount_cents": 120000}
    lines = plain(render_explanation(ledger_entry, entry["explanation"], corrects=["E-0017"])).splitlines()
    assert lines[0] == "Écriture E-0042 — régularisation (exécution R-7, comptabilisée le 03/06/2013)"
    assert "  Montant : 1 200,00 €" in lines
    assert lines[-2:] == ["Écritures antérieures corrigées :", "  - écriture E-0017"]


def test_cli_explains_a_pro_rata_line_with_suspension_and_weak_values(case):
    args = [
        "explain",
        "--contracts",
        str(case / "contracts"),
        "--data",
        str(case / "data"),
        "--plugin",
        str(h.PLUGIN),
        "--contract",
        "TEST-ETP",
        "--period",
        "2013",
        "--module",
        "forfait",
        "--known-on",
        "2014-02-01",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = plain(result.output).splitlines()
    # 3 650,00 € × (365 − 91 suspended days) / 365 = 2 740,00 €
    assert "  Montant : 2 740,00 € (quantité 274)" in lines
    assert "Formule : 3 650,00 € × 274 / 365 = 2 740,00 €" in lines
    assert "  - jours suspendus : 91" in lines
    assert "Arrondi appliqué : montant arrondi une fois au centime (demi-centime au supérieur)" in lines
    assert (
        "  Bénéficiaire : association — Association de coordination de Test (coordonnées en vigueur à l'échéance)"
        in (lines)
    )
    assert (
        "      fiabilité : OPEN — non trouvée dans les sources : valeur par défaut à fixer par la convention" in lines
    )
    assert "      valeur illustrative : inventée pour l'exemple, absente des sources" in lines
    assert (
        "  - ce montant repose sur des valeurs par défaut non confirmées ou illustratives : forfait.annual (OPEN)"
    ) in lines
    assert any(
        x.startswith(
            "  - suspension : suspension du 01/04/2013 au 30/06/2013 — date d'effet 01/04/2013, enregistré le "
            "15/09/2013 — Décision ARS du 12/09/2013"
        )
        for x in lines
    )


def test_cli_structure_bank_details_as_of_the_due_date(case):
    base = ["explain", "--contracts", str(case / "contracts"), "--data", str(case / "data"), "--plugin", str(h.PLUGIN)]
    result = CliRunner().invoke(
        cli, [*base, "--contract", "TEST-ETP", "--period", "2013", "--module", "etp", "--known-on", "2014-02-01"]
    )
    assert result.exit_code == 0, result.output
    out = plain(result.output)
    # Avenant 3 (from 01/09/2013) changed the structure's account: the due date 31/12/2013 uses it.
    assert ("Bénéficiaire : structure — Maison de santé de Test, IBAN FR7600000000000000000000002, BIC NEWBFRPP") in out
    # Diagnostic + séances of 10/03, 20/03, 10/07 (10/04 and 10/05 set aside): 3 séances → 250,00 €
    assert "  Montant : 250,00 € (quantité 1, montant unitaire 250,00 €)" in out
    assert "Avertissement : " in out and "(ligne(s) 5, 6)" in out
    # ... and the line's own derivation says which rows of its file did not count, and why.
    assert (
        f"  - 2 ligne(s) de {case}/data/etp/sessions.csv (version reçue le 20/07/2013) datée(s) dans cette "
        "période ne comptent pas (contrat suspendu du 01/04/2013 au 30/06/2013) : ligne(s) 5, 6"
    ) in out.splitlines()


def test_cli_zero_line_says_why_on_the_bundled_example():
    # data/etp/trainings.csv, Steenvoorde 2012: RPPS-STE-00 trains on 10/03, 10/06, 10/09 (line 41)
    # and RPPS-STE-02 on 12/03, 12/06, 12/09 (line 46): the third of each is over the cap of 2.
    result = CliRunner().invoke(
        cli,
        [
            "explain",
            "--contracts",
            str(h.ROOT / "contracts"),
            "--data",
            str(h.ROOT / "data"),
            "--contract",
            "ENMR-NPDC-STEENVOORDE",
            "--period",
            "2012",
            "--module",
            "etp",
            "--component",
            "formation_au_dela_du_plafond",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = plain(result.output).splitlines()
    assert "  Montant : 0,00 € (quantité 2, montant unitaire 0,00 €)" in lines
    assert (
        f"  - formation(s) concernés : 2 enregistrement(s) — {h.ROOT}/data/etp/trainings.csv, ligne(s) 41, 46"
    ) in lines
    assert (
        "Pourquoi rien n'est dû : plafond de 2 formations payées par professionnel et par période atteint "
        "(2 professionnel(s) concerné(s))"
    ) in lines
    assert "Formule : 2 formation(s) × 0,00 € = 0,00 €" in lines


def test_cli_unknown_component_lists_the_available_ones():
    result = CliRunner().invoke(
        cli,
        [
            *("explain", "--contracts", str(h.ROOT / "contracts"), "--data", str(h.ROOT / "data")),
            *("--contract", "ENMR-NPDC-STEENVOORDE", "--period", "2012", "--module", "etp", "--component", "x"),
        ],
    )
    assert result.exit_code != 0
    assert "aucune ligne « x » pour cette période ; composantes : forfait_patient_3_4, " in str(result.exception)
