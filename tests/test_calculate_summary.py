"""`nmr calculate` prints a summary per module above MOST_TABLES tables (a national run has
thousands), the full tables with --detail."""

from __future__ import annotations

from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.engine import Workspace
from nmr_engine.money import format_eur
from nmr_engine.reports import lines as report_lines

from .conftest import ROOT

ARGS = ["calculate", "--contracts", str(ROOT / "contracts"), "--data", str(ROOT / "data"), "--period", "2012"]


def test_many_tables_give_a_summary_per_module(monkeypatch):
    monkeypatch.setattr(report_lines, "MOST_TABLES", 3)
    out = CliRunner().invoke(cli, ARGS)
    assert out.exit_code == 0, out.output
    lines = Workspace(ROOT / "contracts", ROOT / "data").calculate(["2012"]).lines
    assert "Résumé par module" in out.output and "période du" not in out.output
    for module, group in lines.groupby("module"):
        row = next(r for r in out.output.splitlines() if r.startswith(f"│ {module} "))
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells == [
            module,
            str(group["contract_id"].nunique()),
            str(len(group.drop_duplicates(["contract_id", "period_id"]))),
            str(len(group)),
            format_eur(int(group["amount_cents"].sum())),
        ]
    assert f"{len(lines)} lignes, plus de 3 tableaux" in out.output
    assert f"Total général : {format_eur(24_853_613)}" in out.output


def test_detail_and_small_results_give_every_table(monkeypatch):
    full = CliRunner().invoke(cli, ARGS)  # the bundled example: under 200 tables
    monkeypatch.setattr(report_lines, "MOST_TABLES", 3)
    forced = CliRunner().invoke(cli, [*ARGS, "--detail"])
    assert full.exit_code == forced.exit_code == 0
    assert "Résumé par module" not in full.output and full.output == forced.output
    assert full.output.count("Total de la période") > 3  # one per table
    assert f"Total général : {format_eur(24_853_613)}" in full.output
