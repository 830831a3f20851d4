"""``nmr replay``, ``nmr audit export|replay``: prove every posted amount from the recorded history."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..money import format_eur
from .ledger import _open, err_console, ledger_option
from .main import _date, _registry, cli, console, contracts_option, data_option, plugin_option

#: Differences shown before « … et N autre(s) ».
SHOWN = 20

as_of_option = click.option(
    "--as-of",
    callback=_date,
    help="État au AAAA-MM-JJ : passages comptabilisés au plus tard ce jour-là, contrats tels que connus ce jour-là.",
)


def _print_report(report, contracts=None) -> None:
    """The verdict: first differences and non-reproducible runs (stderr), or the summary; exit 1 unless identical."""
    when = f" au {report.as_of:%d/%m/%Y}" if report.as_of else ""
    if contracts is not None:
        console.print(f"Contrats tels que connus{when} :", highlight=False)
        for c in contracts:
            events = ", ".join(f"{e.kind} du {e.date:%d/%m/%Y}" for e in c.events) or "aucun événement"
            end = f", résilié à compter du {c.terminated_on:%d/%m/%Y}" if c.terminated_on else ""
            console.print(
                f"  {c.id} : modules {', '.join(sorted({e.module for e in c.enrolments}))}{end} ; "
                f"historique : {events}",
                soft_wrap=True,
                highlight=False,
            )
    for r in report.not_reproducible:
        err_console.print(
            f"[bold yellow]Non reproductible[/bold yellow] : passage {r.run.run_id} du {r.run.business_date:%d/%m/%Y} "
            f"({r.entries} écriture(s)) — {r.reason}",
            soft_wrap=True,
            highlight=False,
        )
    diffs = report.differences
    for d in diffs[:SHOWN]:
        err_console.print(f"[bold red]Écart[/bold red] : {d.text()}", soft_wrap=True, highlight=False, markup=True)
    if len(diffs) > SHOWN:
        err_console.print(f"… et {len(diffs) - SHOWN} autre(s) écart(s).", highlight=False)
    n_runs, n_entries = len(report.runs), len(report.entries)
    timing = f"{report.seconds:.2f} s, {report.throughput:,.0f} écritures/s".replace(",", " ")
    if not report.ok:
        bad = sum(1 for r in report.runs if r.status == "different")
        err_console.print(
            f"Rejeu{when} : {n_runs} passage(s), {n_entries} écriture(s) ; {bad} passage(s) différent(s), "
            f"{len(report.not_reproducible)} non reproductible(s) avec les plugins installés ({timing}).",
            soft_wrap=True,
            highlight=False,
        )
        raise SystemExit(1)
    table = Table(title=f"Montants comptabilisés et rejoués à l'identique{when}")
    for col in ("Contrat", "Module", "Total"):
        table.add_column(col, justify="right" if col == "Total" else "left")
    for (contract, module), cents in report.totals().items():
        table.add_row(contract, module, format_eur(cents))
    console.print(table)
    total = sum(e.amount_cents for e in report.entries)
    console.print(
        f"Rejeu identique{when} : {n_runs} passage(s), {n_entries} écriture(s), total {format_eur(total)} ({timing}).",
        soft_wrap=True,
        highlight=False,
    )


@cli.command()
@contracts_option
@data_option
@ledger_option
@as_of_option
@plugin_option
def replay(contracts_dir, data_dir, ledger_url, as_of, plugin_paths) -> None:
    """Rejouer tous les passages depuis l'historique enregistré et comparer écriture par écriture."""
    from ..contracts import load_contracts
    from ..ledger import verify
    from ..ledger.replay import replay as replay_ledger
    from ..pseudonym import Pseudonymiser, load_key

    registry = _registry(plugin_paths)
    with _open(ledger_url, data_dir) as store:
        runs, entries = store.snapshot()
    chain = verify(runs, entries)
    for p in chain:  # the stored history itself was edited: say so, then show what the replay finds
        err_console.print(f"[bold red]Anomalie du registre[/bold red] : {p}", soft_wrap=True, highlight=False)
    report = replay_ledger(
        runs, entries, Path(contracts_dir), Path(data_dir), registry, Pseudonymiser(load_key()), as_of
    )
    contracts = None
    if as_of is not None:
        from ..engine import load_parameters

        contracts = load_contracts(Path(contracts_dir), registry.modules().keys(), load_parameters(registry), as_of)
    if chain and report.ok:
        err_console.print("Rejeu identique, mais le chaînage des empreintes est rompu (nmr ledger verify).")
        raise SystemExit(1)
    _print_report(report, contracts)


@cli.group()
def audit() -> None:
    """Dossier d'audit : tout ce qu'il faut pour rejouer le registre ailleurs."""


@audit.command("export")
@contracts_option
@data_option
@ledger_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Fichier zip à écrire.")
@plugin_option
def audit_export(contracts_dir, data_dir, ledger_url, out, plugin_paths) -> None:
    """Écrire le dossier d'audit (zip) : contrats, données reçues pseudonymisées, paramètres, registre, manifeste."""
    from ..ledger.bundle import export_bundle
    from ..pseudonym import Pseudonymiser, load_key

    with _open(ledger_url, data_dir) as store:
        done = export_bundle(
            Path(out), Path(contracts_dir), Path(data_dir), store, _registry(plugin_paths), Pseudonymiser(load_key())
        )
    console.print(
        f"Dossier d'audit {done.path} : {done.files} fichier(s) (dont {done.versions} version(s) de données reçues, "
        f"identifiants patients pseudonymisés), registre de {done.runs} passage(s) et {done.entries} écriture(s).",
        soft_wrap=True,
        highlight=False,
    )


@audit.command("replay")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@as_of_option
@plugin_option
def audit_replay(bundle, as_of, plugin_paths) -> None:
    """Rejouer un dossier d'audit sans les dossiers d'origine (paramètres lus dans le dossier)."""
    from ..ledger.bundle import replay_bundle

    done = replay_bundle(Path(bundle), _registry(plugin_paths), as_of)
    if done.chain_problems:
        for p in done.chain_problems:
            err_console.print(f"[bold red]Anomalie[/bold red] : {p}", soft_wrap=True, highlight=False)
        err_console.print("Registre du dossier d'audit altéré : chaînage des empreintes rompu.", highlight=False)
        raise SystemExit(1)
    _print_report(done.report)


def find_entry(entries, wanted: str):
    """The entry whose id is ``wanted`` or starts with it (with or without « E- »); located errors otherwise."""
    from ..errors import ConfigurationError

    exact = [e for e in entries if e.entry_id == wanted]
    if exact:
        return exact[0]
    prefixes = (wanted, f"E-{wanted}")
    found = [e for e in entries if e.entry_id.startswith(prefixes)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigurationError(f"aucune écriture « {wanted} » dans le registre (voir « nmr ledger show --run … »)")
    shown = ", ".join(e.entry_id for e in found[:5])
    raise ConfigurationError(f"« {wanted} » désigne {len(found)} écritures ({shown}…) : précisez l'identifiant")


def explain_entry(wanted: str, contracts_dir, data_dir, ledger_url, as_json: bool = False) -> str:
    """The full French derivation of a posted entry: its explanation as posted, the contract's
    events in force (as known on the run's known-on date), the payee and the entries it corrects."""
    import datetime as dt
    import json

    import attrs

    from ..contracts import load_contracts
    from ..errors import NmrError
    from ..reports.explain import event_records, render_explanation

    with _open(ledger_url, data_dir) as store:
        runs, entries = store.snapshot()
    entry = find_entry(entries, wanted)
    run = next(r for r in runs if r.run_id == entry.run_id)
    by_id = {e.entry_id: e for e in entries}
    explanation = entry.explanation_dict()
    record = {
        "entry_id": entry.entry_id,
        "kind": entry.kind,
        "run_id": entry.run_id,
        "business_date": entry.business_date.isoformat(),
        "contract_id": entry.contract_id,
        "module": entry.module,
        "period_id": entry.period_id,
        "component": entry.component,
        "label": entry.label,
        "payee_id": entry.payee_id,
        "instalment": entry.instalment,
        "due_date": entry.due_date.isoformat(),
        "amount_cents": entry.amount_cents,
    }
    corrects = [
        {
            "entry_id": c.entry_id,
            "business_date": c.business_date.isoformat(),
            "amount_cents": c.amount_cents,
            "reason": f"{c.nature}, passage {c.run_id}",
        }
        for c in (by_id[i] for i in entry.corrects if i in by_id)
    ]
    events, payee = [], None
    try:
        contracts = load_contracts(Path(contracts_dir), None, None, run.known_on_date)
    except (NmrError, OSError):
        contracts = []
    contract = next((c for c in contracts if c.id == entry.contract_id), None)
    if contract is not None:
        period_end = dt.date.fromisoformat(entry.period_id.split("/")[1]) if "/" in entry.period_id else None
        events = event_records(contract, period_end)
        found = contract.payee(entry.payee_id, on=entry.due_date)
        payee = None if found is None else attrs.asdict(found)
    if as_json:
        return json.dumps(
            {"entry": record, "explanation": explanation, "corrects": corrects, "contract_events": events},
            ensure_ascii=False,
            indent=2,
        )
    text = render_explanation(
        record,
        explanation,
        corrects=corrects,
        contract_events=events,
        payee=payee,
        known_on=run.known_on_date,
    )
    posting = explanation.get("posting") or {}
    extra = [
        "",
        f"Comptabilisation : {posting.get('text', '')}",
        f"Plugin : {entry.plugin} {entry.plugin_version} ; empreinte des données {entry.input_fingerprint[:16]}…, "
        f"des paramètres {entry.parameter_fingerprint[:16]}…",
        f"Chaînage : écriture n° {entry.seq}, empreinte {entry.hash}",
    ]
    return text + "\n".join(extra)
