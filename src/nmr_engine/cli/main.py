"""``nmr``: calculate, list plugins, check contracts."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import attrs
import click
from rich.console import Console
from rich.table import Table

from ..engine import Workspace
from ..errors import NmrError
from ..inputs.snapshots import TableStore
from ..memory import avoid_huge_pages, keep_freed_memory
from ..plugin.manager import PluginRegistry

console = Console()
if not console.is_terminal:  # files and pipes: wide enough for a statement line
    console = Console(width=150)
err_console = Console(stderr=True)


def _registry(plugin_paths: tuple[str, ...]) -> PluginRegistry:
    return PluginRegistry(paths=[Path(p) for p in plugin_paths])


def _date(ctx, param, value):
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("date attendue au format AAAA-MM-JJ") from None


plugin_option = click.option(
    "--plugin",
    "plugin_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="Charger aussi un plugin depuis un fichier .py ou un dossier (répétable).",
)
contracts_option = click.option(
    "--contracts",
    "contracts_dir",
    default="contracts",
    show_default=True,
    type=click.Path(),
    help="Dossier des fichiers de contrats.",
)
data_option = click.option(
    "--data",
    "data_dir",
    default="data",
    show_default=True,
    type=click.Path(),
    help="Dossier des données d'activité (<module>/<table>.csv).",
)


known_on_option = click.option(
    "--known-on",
    callback=_date,
    help="Calculer avec ce que le moteur savait à cette date AAAA-MM-JJ : événements des contrats "
    "et fichiers de données enregistrés au plus tard ce jour-là.",
)


@click.group()
@click.version_option(package_name="nmr-engine")
def cli() -> None:
    """nmr-engine : calcul des nouveaux modes de rémunération (maisons et pôles de santé)."""
    avoid_huge_pages()
    keep_freed_memory()


@cli.command()
@contracts_option
@data_option
@click.option(
    "--period",
    "periods",
    multiple=True,
    help="Période : une année (périodes commençant cette année), une date AAAA-MM-JJ (périodes qui la "
    "contiennent) ou un identifiant début/fin. Répétable ; par défaut toutes les périodes.",
)
@click.option("--module", "modules", multiple=True, help="Limiter à ces modules (répétable).")
@click.option("--run-date", callback=_date, help="Date du calcul (par défaut aujourd'hui).")
@known_on_option
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON pour les scripts.")
@click.option("--explain", is_flag=True, help="Afficher l'explication de chaque ligne.")
@click.option("--detail", is_flag=True, help="Tous les tableaux, même au-delà de 200 (sinon un résumé par module).")
@plugin_option
def calculate(
    contracts_dir, data_dir, periods, modules, run_date, known_on, as_json, explain, detail, plugin_paths
) -> None:
    """Calculer les montants dus (aperçu : rien n'est enregistré)."""
    from ..reports.lines import MOST_TABLES, dumps, print_tables

    workspace = Workspace(
        contracts_dir, data_dir, _registry(plugin_paths), run_date, known_on, store=TableStore.for_data(data_dir)
    )
    result = workspace.calculate(list(periods) or None, list(modules) or None)
    if as_json:
        click.echo(dumps(result))
    else:
        names = {c.id: c.structure.name for c in workspace.contracts}
        print_tables(result, console, explain=explain, contracts=names, most=None if detail else MOST_TABLES)


@cli.command()
@plugin_option
def plugins(plugin_paths) -> None:
    """Lister les modules chargés, leur version et leur plugin."""
    registry = _registry(plugin_paths)
    table = Table(title="Modules de rémunération installés")
    for col in ("Code", "Intitulé", "Version", "API", "Plugin", "Paquet"):
        table.add_column(col)
    for code, reg in registry.modules().items():
        table.add_row(
            code, reg.spec.title, reg.spec.version, reg.spec.api_version, reg.plugin_name, reg.distribution or ""
        )
    console.print(table)


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Dossier à créer (vide).")
@click.option("--scale", "scale_name", type=click.Choice(["example", "national"]), help="Taille prédéfinie.")
@click.option("--contracts", "n_contracts", type=click.IntRange(min=1), help="Nombre de contrats.")
@click.option("--years", type=click.IntRange(min=1), help="Nombre d'années d'activité.")
@click.option(
    "--patients-per-structure",
    "patients",
    type=click.IntRange(min=0),
    help="Nouveaux cycles patient par structure, programme et année (en moyenne).",
)
@click.option("--first-year", default=2012, show_default=True, type=int, help="Première année d'activité.")
@click.option("--seed", default=1, show_default=True, type=int, help="Graine : même graine, mêmes fichiers.")
@plugin_option
def synth(out, scale_name, n_contracts, years, patients, first_year, seed, plugin_paths) -> None:
    """Générer un jeu de données synthétique déterministe (contrats et données d'activité)."""
    from ..synth import PRESETS, synthesise

    preset = PRESETS[scale_name or "example"]
    report = synthesise(
        Path(out),
        contracts=n_contracts or preset[0],
        patients_per_structure=preset[1] if patients is None else patients,
        years=years or preset[2],
        seed=seed,
        first_year=first_year,
        scale_name=scale_name or "custom",
        registry=_registry(plugin_paths),
    )
    console.print(f"{report.contracts} contrat(s) écrits dans {report.out / 'contracts'} ({report.seconds:.1f} s)")
    for module, rows in report.rows.items():
        console.print(f"module {module} : " + ", ".join(f"{t} {n:,}".replace(",", " ") for t, n in rows.items()))
        for note in report.notes.get(module, []):
            console.print(f"  {note}")
    if report.skipped:
        console.print(f"[yellow]sans générateur (non souscrits) : {', '.join(report.skipped)}[/yellow]")


@cli.group()
def contracts() -> None:
    """Fichiers de contrats."""


@contracts.command("check")
@contracts_option
@known_on_option
@plugin_option
def contracts_check(contracts_dir, known_on, plugin_paths) -> None:
    """Valider tous les fichiers de contrats (structure, dates, modules, paramètres, historique)."""
    from ..contracts import load_contracts
    from ..engine import load_parameters

    registry = _registry(plugin_paths)
    store = load_parameters(registry)
    loaded = load_contracts(Path(contracts_dir), registry.modules().keys(), store, known_on)
    for c in loaded:
        mods = ", ".join(f"{e.module} ({e.span})" for e in c.enrolments)
        events = f" — {len(c.events)} événement(s) d'historique" if c.events else ""
        console.print(
            f"[green]OK[/green] {c.id} — {c.structure.name} — {len(c.periods())} période(s) — {mods}{events}",
            highlight=False,
        )
    when = f" (tels que connus le {known_on:%d/%m/%Y})" if known_on else ""
    console.print(f"{len(loaded)} contrat(s) valide(s){when}.")


@contracts.command("show")
@contracts_option
@click.argument("contract_id")
@known_on_option
@plugin_option
def contracts_show(contracts_dir, contract_id, known_on, plugin_paths) -> None:
    """Afficher un contrat tel qu'il était connu à une date : modules, suspensions, bénéficiaires, historique."""
    from ..contracts import load_contracts
    from ..engine import load_parameters
    from ..errors import InputError, Problem
    from ..parameters.model import display_value

    registry = _registry(plugin_paths)
    store = load_parameters(registry)
    loaded = load_contracts(Path(contracts_dir), registry.modules().keys(), store, known_on)
    c = next((x for x in loaded if x.id == contract_id), None)
    if c is None:
        when = f" le {known_on:%d/%m/%Y}" if known_on else ""
        raise InputError([Problem(str(contracts_dir), f"contrat « {contract_id} » inconnu{when}")])
    out = [f"{c.id} — {c.structure.name} (FINESS {c.structure.finess})"]
    if known_on:
        out.append(f"Tel que connu le {known_on:%d/%m/%Y}")
    out.append(f"Signé le {c.signed_on:%d/%m/%Y} ; durée {c.span}")
    if c.terminated_on:
        out.append(
            f"Résilié à compter du {c.terminated_on:%d/%m/%Y} (fin prévue à la signature : {c.signed_end:%d/%m/%Y})"
        )
    out.append("Périodes : " + ", ".join(p.id for p in c.periods()))
    out.append("Modules :")
    out += [f"  - {e.module} {e.span}, payé à « {e.payee} »" for e in c.enrolments]
    if c.suspensions:
        out.append("Suspensions (aucun paiement pour ces jours) :")
        out += [f"  - {s} ({s.days} jours)" for s in c.suspensions]
    out.append("Bénéficiaires :")
    for p in c.payees:
        out.append(f"  - {p.id} : {p.name}" + (f", IBAN {p.iban}" if p.iban else ""))
        for start, changed in c.payee_changes:
            if changed.id == p.id and changed != p:
                iban = f", IBAN {changed.iban}" if changed.iban else ""
                out.append(f"      à compter du {start:%d/%m/%Y} : {changed.name}{iban}")
    overrides = [v for (cid, _), vs in store.overrides().items() if cid == c.id for v in vs]
    if overrides:
        out.append("Valeurs propres au contrat :")
        out += [
            f"  - {v.name} = {display_value(v.value, v.unit)} du {v.start:%d/%m/%Y}"
            + (f" au {v.end:%d/%m/%Y}" if v.end else "")
            + f" ({v.reference})"
            for v in sorted(overrides, key=lambda v: (v.name, v.start))
        ]
    if c.events:
        out.append("Historique (dans l'ordre d'enregistrement) :")
        out += [
            f"  - enregistré le {e.recorded_on:%d/%m/%Y}, effet le {e.date:%d/%m/%Y} : {e.description} ({e.reference})"
            for e in c.events
        ]
    click.echo("\n".join(out))


@cli.command()
@click.argument("entry", required=False)
@contracts_option
@data_option
@click.option(
    "--ledger",
    "ledger_url",
    envvar="NMR_LEDGER_URL",
    help="Registre où lire l'écriture ENTRY (par défaut nmr-ledger.sqlite à côté du dossier des données).",
)
@click.option("--contract", "contract_id", help="Identifiant du contrat (ligne calculée, sans ENTRY).")
@click.option("--period", help="Période : année, date AAAA-MM-JJ ou identifiant début/fin.")
@click.option("--module", help="Code du module.")
@click.option("--component", help="Composante (par défaut : toutes les lignes du module).")
@click.option("--run-date", callback=_date, help="Date du calcul (par défaut aujourd'hui).")
@known_on_option
@click.option("--json", "as_json", is_flag=True, help="Lignes et explications en JSON.")
@plugin_option
def explain(
    entry,
    contracts_dir,
    data_dir,
    ledger_url,
    contract_id,
    period,
    module,
    component,
    run_date,
    known_on,
    as_json,
    plugin_paths,
):
    """Expliquer une écriture du registre (ENTRY : identifiant ou début unique) ou le calcul d'une ligne
    (--contract, --period, --module) : données, paramètres, formule, arrondi, historique, corrections."""
    import json

    from ..errors import InputError, Problem
    from ..reports.explain import event_records, render_explanation
    from ..reports.lines import lines_to_records

    if entry:
        from .audit import explain_entry

        click.echo(explain_entry(entry, contracts_dir, data_dir, ledger_url, as_json))
        return
    missing = [n for n, v in (("--contract", contract_id), ("--period", period), ("--module", module)) if not v]
    if missing:
        raise click.UsageError(f"précisez une écriture ENTRY, ou {', '.join(missing)}")

    workspace = Workspace(
        contracts_dir, data_dir, _registry(plugin_paths), run_date, known_on, store=TableStore.for_data(data_dir)
    )
    contract = next((c for c in workspace.contracts if c.id == contract_id), None)
    if contract is None:
        known = ", ".join(c.id for c in workspace.contracts) or "aucun"
        raise InputError([Problem(str(contracts_dir), f"contrat inconnu « {contract_id} » ; contrats : {known}")])
    result = workspace.calculate([period], [module])
    lines = result.lines[result.lines["contract_id"] == contract_id]
    records = lines_to_records(lines)
    if component:
        chosen = [r for r in records if r["component"] == component]
        if not chosen:
            found = ", ".join(sorted({r["component"] for r in records})) or "aucune"
            raise InputError(
                [Problem(contract.source, f"aucune ligne « {component} » pour cette période ; composantes : {found}")]
            )
        records = chosen
    if not records:
        raise InputError(
            [Problem(contract.source, f"aucune ligne du module « {module} » pour la période {period} de ce contrat")]
        )
    if as_json:
        click.echo(json.dumps({"lines": records, "warnings": list(result.warnings)}, ensure_ascii=False, indent=2))
        return
    texts = []
    for rec in records:
        due = dt.date.fromisoformat(rec["due_date"])
        payee = contract.payee(rec["payee_id"], on=due)
        period_end = dt.date.fromisoformat(rec["period_id"].split("/")[1])
        texts.append(
            render_explanation(
                rec,
                rec["explanation"],
                contract_events=event_records(contract, period_end),
                payee=None if payee is None else attrs.asdict(payee),
                known_on=known_on,
            )
        )
    click.echo(("\n\n" + "─" * 80 + "\n\n").join(texts))
    for w in result.warnings:
        click.echo(f"Avertissement : {w}")


@cli.group()
def data() -> None:
    """Données d'activité : registre des fichiers reçus (date de réception, empreinte)."""


@data.command("record")
@data_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--received-on", required=True, callback=_date, help="Date de réception du fichier (AAAA-MM-JJ).")
@click.option("--note", default="", help="Commentaire (par exemple : motif de la correction).")
def data_record(data_dir, file, received_on, note) -> None:
    """Enregistrer un fichier reçu : empreinte sha256, copie conservée, entrée au registre."""
    from ..inputs.submissions import record_submission

    sub = record_submission(Path(data_dir), Path(file), received_on, note)
    if sub is None:
        console.print(f"{file} : cette version est déjà la dernière enregistrée, rien à faire.")
        return
    what = f"remplace la version {sub.supersedes[:12]}…" if sub.supersedes else "première version"
    console.print(
        f"[green]Enregistré[/green] {sub.file} reçu le {sub.received_on:%d/%m/%Y}, sha256 {sub.sha256[:12]}… ({what})"
    )


@data.command("check")
@data_option
def data_check(data_dir) -> None:
    """Vérifier les empreintes : tout fichier modifié sans être enregistré est signalé."""
    from ..errors import InputError
    from ..inputs.submissions import REGISTER, check_submissions, latest_versions, load_register

    if not (Path(data_dir) / REGISTER).exists():
        console.print(f"Aucun registre des réceptions ({Path(data_dir) / REGISTER}) : rien à vérifier.")
        return
    problems = check_submissions(Path(data_dir))
    if problems:
        raise InputError(problems)
    subs = load_register(Path(data_dir))
    console.print(
        f"[green]OK[/green] {len(latest_versions(subs))} fichier(s), {len(subs)} version(s) reçue(s) : "
        "empreintes conformes au registre."
    )


@cli.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Dossier où créer le paquet du plugin.",
)
def new_plugin(name, directory) -> None:
    """Créer le squelette d'un plugin de module NAME (paquet installable, paramètre daté, exemple, tests)."""
    from ..scaffold import create_plugin

    root = create_plugin(name, Path(directory))
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        console.print(f"  créé {path}", highlight=False, markup=False)
    console.print(
        f"Plugin « {name} » créé dans {root}.\nEnsuite : cd {root} && pip install -e .[test] && pytest",
        highlight=False,
        markup=False,
    )


from . import audit as _audit  # noqa: E402, F401  (registers replay, audit)
from . import ledger as _ledger  # noqa: E402, F401  (registers post, ledger, orders, statements)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except NmrError as exc:
        err_console.print(f"[bold red]Erreur[/bold red] : {exc}", highlight=False, markup=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
