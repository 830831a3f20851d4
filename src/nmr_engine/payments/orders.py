"""Payment orders: per run, the net amount to pay each payee, and their exports.

An order is the sum of a run's entries for one payee of one contract. Exports: CSV
(``;`` separators, ``,`` decimals, for French spreadsheets), XLSX (frozen header,
euro format) and a SEPA credit-transfer file (pain.001.001.03, built and validated
by ``sepaxml``; IBAN and BIC checked by ``schwifty``). An order that cannot go into
the SEPA file — no bank details, invalid IBAN/BIC, nothing or a negative amount to
pay — is listed with its reason, never silently dropped.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from ..errors import ConfigurationError
from ..ledger.model import Entry
from ..model import Contract
from ..money import to_decimal

SEPA_SCHEMA = "pain.001.001.03"
EURO_FORMAT = '#,##0.00\\ "€";[Red]\\-#,##0.00\\ "€"'

HEADERS = (
    ("run_id", "Passage"),
    ("business_date", "Date du passage"),
    ("contract_id", "Contrat"),
    ("structure", "Structure"),
    ("finess", "FINESS"),
    ("payee_id", "Bénéficiaire"),
    ("payee_name", "Nom du bénéficiaire"),
    ("iban", "IBAN"),
    ("bic", "BIC"),
    ("amount", "Montant (€)"),
    ("entry_count", "Écritures"),
    ("regularisations", "Dont régularisations"),
    ("status", "Statut"),
)


@attrs.frozen
class PaymentOrder:
    """What one payee of one contract receives (or owes back) for a run."""

    run_id: str
    business_date: dt.date
    contract_id: str
    structure: str
    finess: str
    payee_id: str
    payee_name: str
    iban: str | None
    bic: str | None
    amount_cents: int
    entry_count: int
    regularisations: int

    @property
    def end_to_end_id(self) -> str:
        """Deterministic, ≤ 35 characters (SEPA limit)."""
        digest = hashlib.sha256(f"{self.contract_id}|{self.payee_id}".encode()).hexdigest()[:8]
        return f"NMR-{self.run_id}-{digest}"[:35]

    @property
    def remittance(self) -> str:
        return f"NMR {self.contract_id} passage {self.run_id}"[:140]

    @property
    def status(self) -> str:
        if self.amount_cents < 0:
            return "à recouvrer"
        if self.amount_cents == 0:
            return "rien à verser"
        return "à payer" if bank_problem(self) is None else "coordonnées bancaires à compléter"


@attrs.frozen
class Debtor:
    """The caisse's account the transfers are paid from."""

    name: str
    iban: str
    bic: str | None = None


@attrs.frozen
class SepaReport:
    """What went into the SEPA file and what did not, with why."""

    included: tuple[PaymentOrder, ...]
    excluded: tuple[tuple[PaymentOrder, str], ...]
    path: Path | None

    @property
    def total_cents(self) -> int:
        return sum(o.amount_cents for o in self.included)


def orders_for_run(entries: Iterable[Entry], contracts: Sequence[Contract]) -> list[PaymentOrder]:
    """One order per (contract, payee) having entries in the run, sorted."""
    by_id = {c.id: c for c in contracts}
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.contract_id, e.payee_id), []).append(e)
    out = []
    for (contract_id, payee_id), group in sorted(groups.items()):
        contract = by_id.get(contract_id)
        payee = contract.payee(payee_id) if contract else None
        out.append(
            PaymentOrder(
                run_id=group[0].run_id,
                business_date=group[0].business_date,
                contract_id=contract_id,
                structure=contract.structure.name if contract else "(contrat absent du dossier des contrats)",
                finess=contract.structure.finess if contract else "",
                payee_id=payee_id,
                payee_name=payee.name if payee else f"(bénéficiaire « {payee_id} » inconnu)",
                iban=_clean(payee.iban) if payee else None,
                bic=_clean(payee.bic) if payee else None,
                amount_cents=sum(e.amount_cents for e in group),
                entry_count=len(group),
                regularisations=sum(1 for e in group if e.kind == "regularisation"),
            )
        )
    return out


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).replace(" ", "").strip().upper()
    return text or None


def bank_problem(order: PaymentOrder) -> str | None:
    """Why the payee's bank details cannot be used (French), or None."""
    from schwifty import BIC, IBAN
    from schwifty.exceptions import SchwiftyException

    if not order.iban:
        return "coordonnées bancaires absentes du contrat (payees[].iban et bic)"
    try:
        iban = IBAN(order.iban)
    except SchwiftyException as exc:
        return f"IBAN invalide « {order.iban} » ({exc})"
    if order.bic:
        try:
            BIC(order.bic)
        except SchwiftyException as exc:
            return f"BIC invalide « {order.bic} » ({exc})"
    elif iban.bic is None:
        return "BIC absent et impossible à déduire de l'IBAN"
    return None


def _cells(order: PaymentOrder) -> dict[str, object]:
    return {
        "run_id": order.run_id,
        "business_date": order.business_date.isoformat(),
        "contract_id": order.contract_id,
        "structure": order.structure,
        "finess": order.finess,
        "payee_id": order.payee_id,
        "payee_name": order.payee_name,
        "iban": order.iban or "",
        "bic": order.bic or "",
        "amount": to_decimal(order.amount_cents),
        "entry_count": order.entry_count,
        "regularisations": order.regularisations,
        "status": order.status,
    }


def french_decimal(cents: int) -> str:
    """12345 -> '123,45' (no thousands separator: spreadsheets read it as a number)."""
    return str(to_decimal(cents)).replace(".", ",")


def export_csv(orders: Sequence[PaymentOrder], path: Path) -> Path:
    """UTF-8 with BOM (Excel opens it right), ``;`` separated, ``,`` decimals."""
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        writer.writerow([title for _, title in HEADERS])
        for order in orders:
            cells = _cells(order)
            cells["amount"] = french_decimal(order.amount_cents)
            writer.writerow([cells[name] for name, _ in HEADERS])
    return path


def export_exclusions_csv(report: SepaReport, path: Path) -> Path:
    """The orders left out of a SEPA file, with the reason, in the same CSV dialect."""
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        writer.writerow(
            ["Passage", "Contrat", "Structure", "Bénéficiaire", "Nom du bénéficiaire", "Montant (€)", "Motif"]
        )
        for order, reason in report.excluded:
            writer.writerow(
                [
                    order.run_id,
                    order.contract_id,
                    order.structure,
                    order.payee_id,
                    order.payee_name,
                    french_decimal(order.amount_cents),
                    reason,
                ]
            )
    return path


def export_xlsx(orders: Sequence[PaymentOrder], path: Path) -> Path:
    """One sheet, frozen header, euro-formatted amounts, a total row."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = "Ordres de paiement"
    ws.append([title for _, title in HEADERS])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    amount_col = [name for name, _ in HEADERS].index("amount") + 1
    for order in orders:
        cells = _cells(order)
        ws.append([cells[name] for name, _ in HEADERS])
        ws.cell(row=ws.max_row, column=amount_col).number_format = EURO_FORMAT
    if orders:
        total_row = len(orders) + 3  # header, orders, one blank row
        ws.cell(row=total_row, column=1, value="Total").font = Font(bold=True)
        total = ws.cell(row=total_row, column=amount_col, value=to_decimal(sum(o.amount_cents for o in orders)))
        total.number_format = EURO_FORMAT
        total.font = Font(bold=True)
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(HEADERS))}{1 + len(orders)}"
    widths = {"structure": 48, "payee_name": 48, "iban": 34, "status": 30, "run_id": 22}
    for i, (name, title) in enumerate(HEADERS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = widths.get(name, max(12, len(title) + 2))
    wb.save(path)
    return path


def check_debtor(debtor: Debtor) -> None:
    from schwifty import BIC, IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        IBAN(debtor.iban)
        if debtor.bic:
            BIC(debtor.bic)
    except SchwiftyException as exc:
        raise ConfigurationError(f"coordonnées bancaires du payeur invalides : {exc}") from exc


def export_sepa(orders: Sequence[PaymentOrder], path: Path, debtor: Debtor, execution_date: dt.date) -> SepaReport:
    """Write a pain.001.001.03 file of the payable orders (validated against the XSD).

    Returns what was included and what was not (with the reason); writes no file when
    nothing can be paid."""
    from schwifty import IBAN
    from sepaxml import SepaTransfer

    check_debtor(debtor)
    included, excluded = [], []
    for order in orders:
        if order.amount_cents < 0:
            excluded.append((order, "montant négatif : à recouvrer auprès du bénéficiaire, pas de virement"))
            continue
        if order.amount_cents == 0:
            excluded.append((order, "rien à verser (les écritures se compensent)"))
            continue
        problem = bank_problem(order)
        if problem:
            excluded.append((order, problem))
            continue
        included.append(order)
    if not included:
        return SepaReport((), tuple(excluded), None)
    config = {
        "name": debtor.name,
        "IBAN": IBAN(debtor.iban).compact,
        "batch": True,
        "currency": "EUR",
    }
    if debtor.bic:
        config["BIC"] = debtor.bic.replace(" ", "").upper()
    transfer = SepaTransfer(config, schema=SEPA_SCHEMA, clean=True)
    for order in included:
        iban = IBAN(order.iban)
        payment = {
            "name": order.payee_name,
            "IBAN": iban.compact,
            "amount": int(order.amount_cents),
            "execution_date": execution_date,
            "description": order.remittance,
            "endtoend_id": order.end_to_end_id,
        }
        bic = order.bic or (str(iban.bic) if iban.bic else None)
        if bic:
            payment["BIC"] = bic
        transfer.add_payment(payment)
    xml = transfer.export(validate=True, pretty_print=True)
    Path(path).write_bytes(xml)
    return SepaReport(tuple(included), tuple(excluded), Path(path))
