"""Payment orders (CSV, XLSX, SEPA pain.001) and statements, built from the ledger."""

from .orders import Debtor, PaymentOrder, SepaReport, export_csv, export_sepa, export_xlsx, orders_for_run
from .statement import Statement, render_statement, statements_for_run, write_statements

__all__ = [
    "Debtor",
    "PaymentOrder",
    "SepaReport",
    "Statement",
    "export_csv",
    "export_sepa",
    "export_xlsx",
    "orders_for_run",
    "render_statement",
    "statements_for_run",
    "write_statements",
]
