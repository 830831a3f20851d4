"""Payment orders (CSV, XLSX, SEPA pain.001) and statements built from the ledger."""

from __future__ import annotations

import csv
import datetime as dt
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from ledger_support import DEBTOR_IBAN, ESSAI_PLUGIN, IBAN_A, IBAN_C, PATIENTS, add_late_patient, workspace

from nmr_engine.cli.main import cli
from nmr_engine.contracts import load_contracts
from nmr_engine.ledger import open_store, post
from nmr_engine.money import format_eur
from nmr_engine.payments import (
    Debtor,
    export_csv,
    export_sepa,
    export_xlsx,
    orders_for_run,
    statements_for_run,
    write_statements,
)

RUN_DATE = dt.date(2013, 1, 15)
DEBTOR = Debtor("CPAM d'essai", DEBTOR_IBAN, "CCBPFRPP")
SEPA_XSD = Path(__import__("sepaxml").__file__).parent / "schemas" / "pain.001.001.03.xsd"


def _campaign(url, root, pseudonymiser):
    """Run 1: first posting of 2012. Run 2: a late patient (+250,00 €) and RPPS-2's training
    withdrawn (−1 000,00 €)."""
    with open_store(url) as store:
        post(store, workspace(root, RUN_DATE), ["2012"], pseudonymiser)
        add_late_patient(root)
        trainings = root / "data" / "etp" / "trainings.csv"
        trainings.write_text("\n".join(trainings.read_text().splitlines()[:2]) + "\n")
        post(store, workspace(root, RUN_DATE), ["2012"], pseudonymiser)
        return store.snapshot()


def test_sums_agree_to_the_cent_ledger_orders_statements(ledger_url, example, pseudonymiser, tmp_path):
    runs, entries = _campaign(ledger_url, example, pseudonymiser)
    contracts = load_contracts(example / "contracts")
    assert [r.total_cents for r in runs] == [468_333, 25_000 - 100_000]
    for run in runs:
        mine = [e for e in entries if e.run_id == run.run_id]
        ledger_sum = sum(e.amount_cents for e in mine)
        orders = orders_for_run(mine, contracts)
        statements = statements_for_run(run, mine, contracts)
        paths = write_statements(statements, tmp_path / run.run_id)
        html_sum = sum(
            int(re.search(r'data-total-cents="(-?\d+)"', p.read_text(encoding="utf-8")).group(1)) for p in paths
        )
        csv_path = export_csv(orders, tmp_path / f"{run.run_id}.csv")
        with open(csv_path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter=";"))
        csv_sum = sum(int(Decimal(r["Montant (€)"].replace(",", ".")) * 100) for r in rows)
        assert ledger_sum == run.total_cents == sum(o.amount_cents for o in orders) == html_sum == csv_sum
        assert sum(s.total_cents for s in statements) == ledger_sum
    # run 1: A 3 550,00 ; B 1 000,00 ; C 133,33 — run 2: A 250,00 − 1 000,00 = −750,00
    first = orders_for_run([e for e in entries if e.run_id == runs[0].run_id], contracts)
    assert [(o.contract_id, o.amount_cents, o.status) for o in first] == [
        ("ENMR-TEST-A", 355_000, "à payer"),
        ("ENMR-TEST-B", 100_000, "coordonnées bancaires à compléter"),
        ("ENMR-TEST-C", 13_333, "à payer"),
    ]
    second = orders_for_run([e for e in entries if e.run_id == runs[1].run_id], contracts)
    assert [(o.contract_id, o.amount_cents, o.regularisations, o.status) for o in second] == [
        ("ENMR-TEST-A", -75_000, 2, "à recouvrer")
    ]


def test_csv_uses_semicolons_and_decimal_commas(sqlite_url, example, pseudonymiser, tmp_path):
    runs, entries = _campaign(sqlite_url, example, pseudonymiser)
    orders = orders_for_run([e for e in entries if e.run_id == runs[0].run_id], load_contracts(example / "contracts"))
    text = export_csv(orders, tmp_path / "o.csv").read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    assert lines[0].startswith("Passage;Date du passage;Contrat;")
    assert f";{IBAN_A};AGRIFRPP;3550,00;4;0;à payer" in lines[1]
    assert lines[3].endswith(";133,33;2;0;à payer")


def test_xlsx_has_a_frozen_header_and_euro_amounts(sqlite_url, example, pseudonymiser, tmp_path):
    from openpyxl import load_workbook

    runs, entries = _campaign(sqlite_url, example, pseudonymiser)
    orders = orders_for_run([e for e in entries if e.run_id == runs[0].run_id], load_contracts(example / "contracts"))
    ws = load_workbook(export_xlsx(orders, tmp_path / "o.xlsx")).active
    assert ws.freeze_panes == "A2"
    header = [c.value for c in ws[1]]
    col = header.index("Montant (€)") + 1
    amounts = [ws.cell(row=r, column=col) for r in range(2, 5)]
    assert [Decimal(str(c.value)) for c in amounts] == [Decimal("3550"), Decimal("1000"), Decimal("133.33")]
    assert all("€" in c.number_format for c in amounts)
    total = ws.cell(row=6, column=col)
    assert ws.cell(row=6, column=1).value == "Total" and Decimal(str(total.value)) == Decimal("4683.33")


def test_sepa_file_validates_against_the_xsd_and_reports_payees_without_bank_details(
    sqlite_url, example, pseudonymiser, tmp_path
):
    import xmlschema

    runs, entries = _campaign(sqlite_url, example, pseudonymiser)
    orders = orders_for_run([e for e in entries if e.run_id == runs[0].run_id], load_contracts(example / "contracts"))
    report = export_sepa(orders, tmp_path / "v.xml", DEBTOR, dt.date(2013, 1, 20))
    xmlschema.XMLSchema(str(SEPA_XSD)).validate(str(report.path))
    xml = report.path.read_text(encoding="utf-8")
    assert "<NbOfTxs>2</NbOfTxs>" in xml
    assert "<CtrlSum>3683.33</CtrlSum>" in xml  # 3 550,00 (A) + 133,33 (C); B has no bank details
    assert IBAN_A in xml and IBAN_C in xml and "<ReqdExctnDt>2013-01-20</ReqdExctnDt>" in xml
    assert [(o.contract_id, reason) for o, reason in report.excluded] == [
        ("ENMR-TEST-B", "coordonnées bancaires absentes du contrat (payees[].iban et bic)")
    ]
    # A run that only recovers money has nothing to transfer: no file, and why.
    second = orders_for_run([e for e in entries if e.run_id == runs[1].run_id], load_contracts(example / "contracts"))
    refund = export_sepa(second, tmp_path / "v2.xml", DEBTOR, dt.date(2013, 1, 20))
    assert refund.path is None and not (tmp_path / "v2.xml").exists()
    assert "à recouvrer" in refund.excluded[0][1]


def test_an_invalid_iban_is_reported(sqlite_url, example, pseudonymiser, tmp_path):
    contract = example / "contracts" / "enmr-test-c.yaml"
    contract.write_text(contract.read_text().replace(IBAN_C, IBAN_C[:-1] + "0"))
    runs, entries = _campaign(sqlite_url, example, pseudonymiser)
    orders = orders_for_run([e for e in entries if e.run_id == runs[0].run_id], load_contracts(example / "contracts"))
    report = export_sepa(orders, tmp_path / "v.xml", DEBTOR, dt.date(2013, 1, 20))
    reasons = dict((o.contract_id, r) for o, r in report.excluded)
    assert reasons["ENMR-TEST-C"].startswith("IBAN invalide")
    assert [o.contract_id for o in report.included] == ["ENMR-TEST-A"]


def test_statement_lists_each_line_with_its_explanation(sqlite_url, example, pseudonymiser, tmp_path):
    runs, entries = _campaign(sqlite_url, example, pseudonymiser)
    contracts = load_contracts(example / "contracts")
    [second] = statements_for_run(runs[1], [e for e in entries if e.run_id == runs[1].run_id], contracts)
    html = write_statements([second], tmp_path)[0].read_text(encoding="utf-8")
    assert "<h1>Avis de paiement</h1>" in html and "Maison de santé A" in html
    assert "Régularisation : montant dû 500,00" in html  # 2 × 250,00 € due, 250,00 € paid
    assert "Régularisation : montant dû 1\u202f000,00\xa0€ − déjà versé 2\u202f000,00" in html
    assert "etp.patient.tiers = " in html and "fiabilité : SEED" in html
    assert 'data-total-cents="-75000"' in html


def test_no_clear_patient_identifier_in_any_export(sqlite_url, example, pseudonymiser, tmp_path):
    runs, entries = _campaign(sqlite_url, example, pseudonymiser)
    contracts = load_contracts(example / "contracts")
    mine = [e for e in entries if e.run_id == runs[0].run_id]
    orders = orders_for_run(mine, contracts)
    files = [
        export_csv(orders, tmp_path / "o.csv"),
        export_sepa(orders, tmp_path / "v.xml", DEBTOR, dt.date(2013, 1, 20)).path,
        *write_statements(statements_for_run(runs[0], mine, contracts), tmp_path),
    ]
    texts = [p.read_text(encoding="utf-8") for p in files]
    with zipfile.ZipFile(export_xlsx(orders, tmp_path / "o.xlsx")) as z:
        texts += [z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml")]
    assert [p for p in PATIENTS if any(p in t for t in texts)] == []
    assert any(pseudonymiser.pseudonym("PAT-C1") in t for t in texts)  # C's statement shows the pseudonym


def test_cli_campaign(ledger_url, example, tmp_path):
    runner = CliRunner()
    common = ["--contracts", str(example / "contracts"), "--data", str(example / "data"), "--ledger", ledger_url]
    plugin = ["--plugin", str(ESSAI_PLUGIN)]

    def nmr(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    first = nmr("post", "--period", "2012", "--run-date", "2013-01-15", *common, *plugin)
    assert first.exit_code == 0 and "7 écriture(s) enregistrée(s)" in first.output
    again = nmr("post", "--period", "2012", "--run-date", "2013-01-15", *common, *plugin)
    assert "Rien de nouveau" in again.output
    out = tmp_path / "out"
    assert nmr("orders", "export", "--run", "last", "--format", "csv", "--out", str(out), *common).exit_code == 0
    assert nmr("orders", "export", "--run", "last", "--format", "xlsx", "--out", str(out), *common).exit_code == 0
    sepa = nmr(
        "orders", "export", "--run", "last", "--format", "sepa", "--out", str(out), *common,
        "--debtor-name", "CPAM d'essai", "--debtor-iban", DEBTOR_IBAN,
    )  # fmt: skip
    assert sepa.exit_code == 0
    assert "2 virement(s) SEPA, total 3\u202f683,33" in sepa.output
    assert "ENMR-TEST-B" in sepa.output and "coordonnées bancaires absentes" in sepa.output
    statements = nmr("statements", "--run", "last", "--out", str(out), *common, *plugin)
    assert "3 avis de paiement, total 4\u202f683,33" in statements.output
    names = sorted(p.name.split("-2013")[0] for p in out.iterdir())
    assert names == [
        "avis-ENMR-TEST-A",
        "avis-ENMR-TEST-B",
        "avis-ENMR-TEST-C",
        "ordres",
        "ordres",
        "virements",
        "virements",
    ]
    shown = nmr("ledger", "show", *common[4:])
    assert "1 passage(s), total 4\u202f683,33" in shown.output
    unknown = runner.invoke(cli, ["statements", "--run", "nope", "--out", str(out), *common])
    assert unknown.exit_code != 0


@pytest.mark.parametrize("missing", ["--debtor-iban"])
def test_sepa_export_needs_the_payer_account(missing, sqlite_url, example, pseudonymiser, tmp_path):
    _campaign(sqlite_url, example, pseudonymiser)
    result = CliRunner().invoke(
        cli,
        ["orders", "export", "--run", "last", "--format", "sepa", "--out", str(tmp_path), "--ledger", sqlite_url,
         "--contracts", str(example / "contracts"), "--debtor-name", "CPAM"],
    )  # fmt: skip
    assert result.exit_code == 2 and missing in result.output


def test_cli_post_summarises_a_big_run_per_module(ledger_url, example, monkeypatch):
    from nmr_engine.cli import ledger as ledger_cli

    monkeypatch.setattr(ledger_cli, "MOST_ENTRIES", 3)  # the run below posts 7 entries
    common = ["--contracts", str(example / "contracts"), "--data", str(example / "data"), "--ledger", ledger_url]
    args = ["post", "--period", "2012", "--run-date", "2013-01-15", *common, "--plugin", str(ESSAI_PLUGIN)]
    out = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert out.exit_code == 0 and "7 écriture(s) enregistrée(s)" in out.output
    assert "résumé" in out.output and "Le détail des 7 écritures : nmr ledger show --run " in out.output
    with open_store(ledger_url) as store:
        entries = store.entries()
    rows = [r for r in out.output.splitlines() if r.startswith("│ ")]
    by_module = {}
    for e in entries:
        n, cents = by_module.get(e.module, (0, 0))
        by_module[e.module] = (n + 1, cents + e.amount_cents)
    assert len(rows) == len(by_module) >= 1
    for row in rows:
        module, n, regularisations, amount = (c.strip() for c in row.strip("│").split("│"))
        assert (int(n), regularisations, amount) == (by_module[module][0], "0", format_eur(by_module[module][1]))
