"""``nmr post``, ``nmr ledger verify|show``, ``nmr orders export``, ``nmr statements``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from ..errors import ConfigurationError
from ..money import format_eur
from .main import _date, _registry, cli, console, contracts_option, data_option, plugin_option

err_console = Console(stderr=True)
if not err_console.is_terminal:  # logs and pipes: wide enough for a table of orders
    err_console = Console(stderr=True, width=150)

ledger_option = click.option(
    "--ledger",
    "ledger_url",
    envvar="NMR_LEDGER_URL",
    help="Registre : sqlite:///chemin.sqlite ou postgresql://utilisateur@hôte:port/base[?schema=nom] "
    "(variable NMR_LEDGER_URL ; par défaut nmr-ledger.sqlite à côté du dossier des données).",
)
run_option = click.option(
    "--run", "run_id", required=True, help="Identifiant du passage (voir « nmr ledger show »), ou « last »."
)


def _open(ledger_url: str | None, data_dir: str):
    from ..ledger import default_url, open_store

    return open_store(ledger_url or default_url(data_dir))


@contextmanager
def _progress() -> Iterator:
    """A progress callback drawing on the terminal; None (silent) in pipes and files."""
    if not err_console.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("préparation", total=None)

        def report(message: str, done: int, total: int) -> None:
            progress.update(task, description=message, completed=done, total=total)

        yield report


def _contracts(contracts_dir: str):
    from ..contracts import load_contracts

    return load_contracts(Path(contracts_dir))


def _resolve_run(store, run_id: str):
    runs = store.runs()
    if not runs:
        raise ConfigurationError(f"le registre {store.description} ne contient aucun passage")
    if run_id == "last":
        return runs[-1]
    found = next((r for r in runs if r.run_id == run_id), None)
    if found is None:
        known = ", ".join(r.run_id for r in runs[-5:])
        raise ConfigurationError(f"passage « {run_id} » absent du registre (derniers passages : {known})")
    return found


@cli.command()
@contracts_option
@data_option
@ledger_option
@click.option(
    "--period",
    "periods",
    multiple=True,
    required=True,
    help="Période à comptabiliser (année, date ou identifiant début/fin ; répétable).",
)
@click.option("--module", "modules", multiple=True, help="Limiter à ces modules (répétable).")
@click.option(
    "--run-date",
    callback=_date,
    help="Date du passage (par défaut aujourd'hui) : seules les échéances tombées à cette date sont comptabilisées.",
)
@click.option(
    "--known-on",
    callback=_date,
    help="Calculer avec ce que le moteur savait à cette date (événements des contrats et versions des "
    "fichiers de données enregistrés au plus tard ce jour-là) ; par défaut la date du passage. "
    "Enregistrée sur le passage pour « nmr replay ».",
)
@plugin_option
def post(contracts_dir, data_dir, ledger_url, periods, modules, run_date, known_on, plugin_paths) -> None:
    """Comptabiliser la différence entre ce qui est dû et ce qui a déjà été versé."""
    from ..engine import Workspace
    from ..inputs.snapshots import TableStore
    from ..ledger import post as post_run
    from ..pseudonym import Pseudonymiser, load_key

    run_date = run_date or dt.date.today()
    workspace = Workspace(
        contracts_dir,
        data_dir,
        _registry(plugin_paths),
        run_date,
        known_on or run_date,
        store=TableStore.for_data(data_dir),
    )
    pseudonymiser = Pseudonymiser(load_key())
    with _open(ledger_url, data_dir) as store, _progress() as progress:
        result = post_run(store, workspace, list(periods), pseudonymiser, list(modules) or None, progress)
        where = store.description
    due = result.proposal
    later = len(due.not_yet_due)
    if result.run is None:
        console.print(
            f"Rien de nouveau : le registre ({where}) est à jour pour ces périodes "
            f"({len(due.lines)} ligne(s) échue(s) au {workspace.run_date:%d/%m/%Y}, déjà comptabilisées"
            + (f" ; {later} échéance(s) à venir" if later else "")
            + ").",
            soft_wrap=True,
            highlight=False,
        )
        return
    title = f"Passage {result.run.run_id} du {result.run.business_date:%d/%m/%Y}"
    if len(result.entries) > MOST_ENTRIES:
        _print_run_summary(result, title)
    else:
        table = Table(title=title)
        for col in ("Contrat", "Module", "Période", "Composante", "Nature", "Montant"):
            table.add_column(col, justify="right" if col == "Montant" else "left")
        for e in result.entries:
            table.add_row(e.contract_id, e.module, e.period_id, e.label, e.nature, format_eur(e.amount_cents))
        console.print(table)
    console.print(
        f"{len(result.entries)} écriture(s) enregistrée(s) dans {where} : "
        f"{len(result.entries) - result.count('regularisation')} premier(s) versement(s) "
        f"(dont {result.count('advance')} avance(s)), {result.count('regularisation')} régularisation(s) ; "
        f"total {format_eur(result.total_cents)}"
        + (f" ; {later} échéance(s) à venir non comptabilisée(s)" if later else "")
        + ".",
        soft_wrap=True,
        highlight=False,
    )


#: Above this many entries, ``nmr post`` prints a summary per module (a national run posts
#: ≈ 26,000: drawing them took half a minute); ``nmr ledger show --run`` lists them all.
MOST_ENTRIES = 200


def _print_run_summary(result, title: str) -> None:
    table = Table(title=f"{title} — résumé par module")
    for col in ("Module", "Écritures", "Régularisations", "Montant"):
        table.add_column(col, justify="left" if col == "Module" else "right")
    by_module: dict[str, list[int]] = {}
    for e in result.entries:
        counts = by_module.setdefault(e.module, [0, 0, 0])
        counts[0] += 1
        counts[1] += e.kind == "regularisation"
        counts[2] += e.amount_cents
    for module, (n, regularisations, cents) in sorted(by_module.items()):
        table.add_row(module, str(n), str(regularisations), format_eur(cents))
    console.print(table)
    console.print(
        f"Le détail des {len(result.entries)} écritures : nmr ledger show --run {result.run.run_id}",
        soft_wrap=True,
        highlight=False,
    )


@cli.group()
def ledger() -> None:
    """Registre des paiements (en ajout seul)."""


@ledger.command("verify")
@data_option
@ledger_option
def ledger_verify(data_dir, ledger_url) -> None:
    """Vérifier le chaînage du registre : toute modification de l'historique est signalée."""
    from ..ledger.hashchain import verify_store

    with _open(ledger_url, data_dir) as store:
        report = verify_store(store)
        where = store.description
    problems = report.problems
    if problems:
        for p in problems:
            err_console.print(f"[bold red]Anomalie[/bold red] : {p}", soft_wrap=True, highlight=False)
        err_console.print(
            f"Registre {where} : {len(problems)} anomalie(s) — l'historique a été modifié.",
            soft_wrap=True,
            highlight=False,
        )
        raise SystemExit(1)
    head = report.head or "(registre vide)"
    console.print(
        f"Registre intègre ({where}) : {report.runs} passage(s), {report.entries} écriture(s), "
        f"total {format_eur(report.total_cents)} ; empreinte de tête {head}",
        soft_wrap=True,
        highlight=False,
    )


@ledger.command("show")
@data_option
@ledger_option
@click.option("--run", "run_id", help="Afficher les écritures de ce passage (ou « last »).")
def ledger_show(data_dir, ledger_url, run_id) -> None:
    """Lister les passages, ou les écritures d'un passage."""
    with _open(ledger_url, data_dir) as store:
        if run_id:
            run = _resolve_run(store, run_id)
            table = Table(title=f"Passage {run.run_id} du {run.business_date:%d/%m/%Y}")
            for col in ("N°", "Contrat", "Module", "Période", "Composante", "Échéance", "Nature", "Montant"):
                table.add_column(col, justify="right" if col in ("N°", "Montant") else "left")
            for e in store.entries(run.run_id):
                table.add_row(
                    str(e.seq),
                    e.contract_id,
                    e.module,
                    e.period_id,
                    e.label,
                    e.instalment,
                    e.nature,
                    format_eur(e.amount_cents),
                )
            console.print(table)
            return
        runs = store.runs()
        table = Table(title=f"Registre {store.description}")
        for col in ("N°", "Passage", "Date", "Enregistré le (UTC)", "Périodes", "Écritures", "Total"):
            table.add_column(col, justify="right" if col in ("N°", "Écritures", "Total") else "left")
        for r in runs:
            table.add_row(
                str(r.seq),
                r.run_id,
                f"{r.business_date:%d/%m/%Y}",
                r.recorded_at[:19].replace("T", " "),
                ", ".join(r.selectors),
                str(r.entry_count),
                format_eur(r.total_cents),
            )
        console.print(table)
        console.print(
            f"{len(runs)} passage(s), total {format_eur(sum(r.total_cents for r in runs))}.",
            soft_wrap=True,
            highlight=False,
        )


@cli.group()
def orders() -> None:
    """Ordres de paiement d'un passage."""


@orders.command("export")
@contracts_option
@data_option
@ledger_option
@run_option
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "sepa"]), required=True, help="Format du fichier.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Dossier de sortie.")
@click.option("--debtor-name", envvar="NMR_DEBTOR_NAME", help="SEPA : nom du payeur (variable NMR_DEBTOR_NAME).")
@click.option("--debtor-iban", envvar="NMR_DEBTOR_IBAN", help="SEPA : IBAN du payeur (variable NMR_DEBTOR_IBAN).")
@click.option("--debtor-bic", envvar="NMR_DEBTOR_BIC", help="SEPA : BIC du payeur (variable NMR_DEBTOR_BIC).")
@click.option("--execution-date", callback=_date, help="SEPA : date d'exécution demandée (par défaut aujourd'hui).")
def orders_export(
    contracts_dir, data_dir, ledger_url, run_id, fmt, out_dir, debtor_name, debtor_iban, debtor_bic, execution_date
) -> None:
    """Exporter les ordres de paiement d'un passage (CSV, XLSX ou virements SEPA pain.001)."""
    from ..payments import Debtor, export_csv, export_sepa, export_xlsx, orders_for_run
    from ..payments.orders import export_exclusions_csv

    with _open(ledger_url, data_dir) as store:
        run = _resolve_run(store, run_id)
        entries = store.entries(run.run_id)
    found = orders_for_run(entries, _contracts(contracts_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = format_eur(sum(o.amount_cents for o in found))
    if fmt == "csv":
        path = export_csv(found, out / f"ordres-{run.run_id}.csv")
        console.print(f"{len(found)} ordre(s), total {total} : {path}", soft_wrap=True, highlight=False)
        return
    if fmt == "xlsx":
        path = export_xlsx(found, out / f"ordres-{run.run_id}.xlsx")
        console.print(f"{len(found)} ordre(s), total {total} : {path}", soft_wrap=True, highlight=False)
        return
    missing = [n for n, v in (("--debtor-name", debtor_name), ("--debtor-iban", debtor_iban)) if not v]
    if missing:
        raise click.UsageError(f"export SEPA : précisez {' et '.join(missing)} (compte du payeur)")
    report = export_sepa(
        found,
        out / f"virements-{run.run_id}.xml",
        Debtor(debtor_name, debtor_iban, debtor_bic),
        execution_date or dt.date.today(),
    )
    if report.excluded:
        path = out / f"virements-{run.run_id}-non-inclus.csv"
        export_exclusions_csv(report, path)
        table = Table(title="Ordres non inclus dans le fichier de virements")
        for col in ("Contrat", "Bénéficiaire", "Montant", "Motif"):
            table.add_column(col, justify="right" if col == "Montant" else "left")
        for order, reason in report.excluded:
            table.add_row(order.contract_id, order.payee_name, format_eur(order.amount_cents), reason)
        err_console.print(table)
        err_console.print(
            f"{len(report.excluded)} ordre(s) non inclus, listés dans {path}", soft_wrap=True, highlight=False
        )
    if report.path is None:
        err_console.print(
            "[bold red]Aucun virement ne peut être émis[/bold red] : aucun fichier SEPA écrit.",
            soft_wrap=True,
            highlight=False,
        )
        raise SystemExit(1)
    console.print(
        f"{len(report.included)} virement(s) SEPA, total {format_eur(report.total_cents)}, "
        f"conforme au schéma pain.001.001.03 : {report.path}",
        soft_wrap=True,
        highlight=False,
    )


@cli.command()
@contracts_option
@data_option
@ledger_option
@run_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Dossier de sortie.")
@plugin_option
def statements(contracts_dir, data_dir, ledger_url, run_id, out_dir, plugin_paths) -> None:
    """Écrire l'avis de paiement (HTML) de chaque structure pour un passage."""
    from ..payments import statements_for_run, write_statements

    with _open(ledger_url, data_dir) as store:
        run = _resolve_run(store, run_id)
        entries = store.entries(run.run_id)
    titles = {code: reg.spec.title for code, reg in _registry(plugin_paths).modules().items()}
    built = statements_for_run(run, entries, _contracts(contracts_dir), titles)
    paths = write_statements(built, Path(out_dir))
    total = sum(s.total_cents for s in built)
    console.print(
        f"{len(paths)} avis de paiement, total {format_eur(total)}, dans {out_dir}", soft_wrap=True, highlight=False
    )
