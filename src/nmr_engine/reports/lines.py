"""Render calculation lines for the terminal (French) and as JSON."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from ..money import format_eur, to_decimal


def lines_to_records(lines: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records: amounts as exact decimal strings and as integer cents."""
    out = []
    for row in lines.itertuples(index=False):
        out.append(
            {
                "contract_id": row.contract_id,
                "module": row.module,
                "period_id": row.period_id,
                "component": row.component,
                "label": row.label,
                "payee_id": row.payee_id,
                "instalment": row.instalment,
                "due_date": row.due_date.date().isoformat(),
                "quantity": int(row.quantity),
                "unit_amount_cents": None if pd.isna(row.unit_amount_cents) else int(row.unit_amount_cents),
                "amount_cents": int(row.amount_cents),
                "amount_eur": str(to_decimal(row.amount_cents)),
                "explanation": row.explanation.to_dict(),
            }
        )
    return out


def dumps(result) -> str:
    return json.dumps(
        {
            "lines": lines_to_records(result.lines),
            "total_cents": result.total_cents,
            "total_eur": str(to_decimal(result.total_cents)),
            "modules": result.modules,
            "warnings": list(result.warnings),
        },
        ensure_ascii=False,
        indent=2,
    )


def print_tables(result, console: Console, explain: bool = False, contracts: dict | None = None) -> None:
    """One table per contract and module, with the period's lines and totals."""
    lines = result.lines
    if lines.empty:
        console.print("Aucune ligne de paiement pour les périodes demandées.")
    for (contract_id, module, period_id), group in lines.groupby(["contract_id", "module", "period_id"], sort=True):
        name = contracts.get(contract_id, "") if contracts else ""
        start, end = period_id.split("/")
        table = Table(
            title=f"{contract_id} — {name} — module {module} — période du {_fr(start)} au {_fr(end)}",
            title_justify="left",
        )
        for col, justify in (
            ("Composante", "left"),
            ("Échéance", "left"),
            ("Qté", "right"),
            ("Unitaire", "right"),
            ("Montant", "right"),
        ):
            table.add_column(col, justify=justify)
        for row in group.itertuples(index=False):
            unit = "" if pd.isna(row.unit_amount_cents) else format_eur(row.unit_amount_cents)
            table.add_row(
                row.label,
                f"{row.instalment} {row.due_date:%d/%m/%Y}",
                str(row.quantity),
                unit,
                format_eur(row.amount_cents),
            )
            if explain:
                table.add_row(f"[dim]{row.explanation.render()}[/dim]", "", "", "", "")
        table.add_row(
            "[bold]Total de la période[/bold]", "", "", "", f"[bold]{format_eur(group['amount_cents'].sum())}[/bold]"
        )
        console.print(table)
    console.print(f"[bold]Total général : {format_eur(result.total_cents)}[/bold]")
    for w in result.warnings:
        console.print(f"[yellow]Avertissement : {w}[/yellow]")


def _fr(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"
