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


#: Above this many (contract, module, period) tables, ``nmr calculate`` prints a summary per
#: module instead (a national run has ≈ 8,000: drawing them took more than a minute).
MOST_TABLES = 200


def print_tables(
    result, console: Console, explain: bool = False, contracts: dict | None = None, most: int | None = MOST_TABLES
) -> None:
    """One table per contract and module, with the period's lines and totals; above ``most``
    tables (None: no limit), one summary table per module and where to find the detail."""
    lines = result.lines
    if lines.empty:
        console.print("Aucune ligne de paiement pour les périodes demandées.")
    keys = ["contract_id", "module", "period_id"]
    if most is not None and not explain and len(lines.drop_duplicates(keys)) > most:
        _print_summary(lines, console, most)
        _print_totals(result, console)
        return
    for (contract_id, module, period_id), group in lines.groupby(keys, sort=True):
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
    _print_totals(result, console)


def _print_summary(lines: pd.DataFrame, console: Console, most: int) -> None:
    table = Table(title="Résumé par module", title_justify="left")
    for col, justify in (("Module", "left"), ("Contrats", "right"), ("Périodes", "right"), ("Lignes", "right")):
        table.add_column(col, justify=justify)
    table.add_column("Montant", justify="right")
    for module, group in lines.groupby("module", sort=True):
        table.add_row(
            str(module),
            _count(group["contract_id"].nunique()),
            _count(len(group.drop_duplicates(["contract_id", "period_id"]))),
            _count(len(group)),
            format_eur(int(group["amount_cents"].sum())),
        )
    console.print(table)
    console.print(
        f"{_count(len(lines))} lignes, plus de {most} tableaux contrat × module × période : le détail avec "
        "--detail, --json, ou « nmr explain --contract C --period P --module M »."
    )


def _count(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _print_totals(result, console: Console) -> None:
    console.print(f"[bold]Total général : {format_eur(result.total_cents)}[/bold]")
    for w in result.warnings:
        console.print(f"[yellow]Avertissement : {w}[/yellow]")


def _fr(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"
