"""Per-structure payment statements (avis de paiement), in French, as HTML (Jinja2).

One statement per contract having entries in a run: each line with its amount and
its explanation (inputs, parameters with their source and confidence, formula, and
for a regularisation what was due, what had been paid and the difference).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..ledger.model import Entry, Run
from ..model import Contract
from ..money import format_eur


@attrs.frozen
class StatementLine:
    entry: Entry
    payee_name: str
    module_title: str
    explanation: dict[str, Any]

    @property
    def period(self) -> str:
        start, end = self.entry.period_id.split("/")
        return f"{dt.date.fromisoformat(start):%d/%m/%Y} – {dt.date.fromisoformat(end):%d/%m/%Y}"

    @property
    def kind(self) -> str:
        return self.entry.nature

    @property
    def amount(self) -> str:
        return format_eur(self.entry.amount_cents)


@attrs.frozen
class Statement:
    """The avis de paiement of one structure for one run."""

    run: Run
    contract_id: str
    structure: str
    finess: str
    caisse: str
    lines: tuple[StatementLine, ...]

    @property
    def total_cents(self) -> int:
        return sum(line.entry.amount_cents for line in self.lines)

    @property
    def filename(self) -> str:
        return f"avis-{self.contract_id}-{self.run.run_id}.html"


def statements_for_run(
    run: Run,
    entries: Iterable[Entry],
    contracts: Sequence[Contract],
    module_titles: Mapping[str, str] | None = None,
) -> list[Statement]:
    by_id = {c.id: c for c in contracts}
    titles = dict(module_titles or {})
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.contract_id, []).append(e)
    out = []
    for contract_id, group in sorted(groups.items()):
        contract = by_id.get(contract_id)
        lines = []
        for e in sorted(group, key=lambda e: (e.module, e.period_id, e.component, e.instalment, e.seq)):
            payee = contract.payee(e.payee_id) if contract else None
            lines.append(
                StatementLine(
                    entry=e,
                    payee_name=payee.name if payee else e.payee_id,
                    module_title=titles.get(e.module, e.module),
                    explanation=e.explanation_dict(),
                )
            )
        out.append(
            Statement(
                run=run,
                contract_id=contract_id,
                structure=contract.structure.name if contract else contract_id,
                finess=contract.structure.finess if contract else "",
                caisse=contract.caisse if contract else "",
                lines=tuple(lines),
            )
        )
    return out


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("nmr_engine.payments", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["eur"] = format_eur
    env.filters["frdate"] = lambda d: f"{dt.date.fromisoformat(d) if isinstance(d, str) else d:%d/%m/%Y}"
    return env


def render_statement(statement: Statement) -> str:
    return _environment().get_template("statement.html.j2").render(s=statement)


def write_statements(statements: Sequence[Statement], out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for statement in statements:
        path = out_dir / statement.filename
        path.write_text(render_statement(statement), encoding="utf-8")
        paths.append(path)
    return paths
