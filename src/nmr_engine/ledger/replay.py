"""Replay: rebuild every posted run from the recorded history alone and compare it with the ledger.

For each stored run, in order, the engine is rebuilt as it stood: the contracts with the
history events recorded on or before the run's known-on date, each registered data file in
the version received by then (``Workspace(..., run_date=run date, known_on=run's known-on)``),
the installed parameter files. Its due lines are re-planned against the entries stored
*before* the run, exactly as :func:`~.posting.commit` did, and compared key by key with the
entries the run stored. A run whose modules were computed by another plugin version than
the installed one is reported as not reproducible (with why), never as differences.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..cache import ReadCache
from ..engine import Workspace
from ..errors import NmrError
from ..inputs.submissions import DataView, load_register
from ..money import format_eur
from ..plugin.manager import PluginRegistry
from ..pseudonym import Pseudonymiser, Scrubber
from .model import KEY_FIELDS, Entry, Run
from .posting import plan, prepare

#: Entry fields compared one by one (besides the amount and the explanation's parts).
COMPARED = ("entry_id", "kind", "amount_cents", "due_date", "label", "corrects", "plugin_version")
#: Explanation parts compared (inputs name files by their path on the posting machine: their
#: content is compared through the input fingerprint instead).
EXPLANATION_PARTS = ("summary", "formula", "rounding", "reason", "posting")


@attrs.frozen
class Difference:
    """One thing that differs between the stored ledger and its rebuild (French texts)."""

    run_id: str
    entry: str  # entry id or key, or "" for a run-level difference
    field: str
    stored: str
    rebuilt: str

    def text(self) -> str:
        where = f"passage {self.run_id}" + (f", écriture {self.entry}" if self.entry else "")
        return f"{where} : {self.field} — enregistré : {self.stored} ; recalculé : {self.rebuilt}"


@attrs.frozen
class RunReplay:
    """The verdict on one run: ``identical``, ``different`` or ``not_reproducible``."""

    run: Run
    status: str
    entries: int
    differences: tuple[Difference, ...] = ()
    reason: str = ""


@attrs.frozen
class ReplayReport:
    runs: tuple[RunReplay, ...]
    entries: tuple[Entry, ...]
    as_of: dt.date | None
    seconds: float  # wall-clock seconds of the replay

    @property
    def ok(self) -> bool:
        return all(r.status == "identical" for r in self.runs)

    @property
    def differences(self) -> list[Difference]:
        return [d for r in self.runs for d in r.differences]

    @property
    def not_reproducible(self) -> list[RunReplay]:
        return [r for r in self.runs if r.status == "not_reproducible"]

    def totals(self) -> dict[tuple[str, str], int]:
        """(contract, module) -> total posted, over the replayed runs."""
        out: dict[tuple[str, str], int] = {}
        for e in self.entries:
            out[(e.contract_id, e.module)] = out.get((e.contract_id, e.module), 0) + e.amount_cents
        return dict(sorted(out.items()))

    @property
    def throughput(self) -> float:
        """Entries replayed per second."""
        return len(self.entries) / self.seconds if self.seconds > 0 else 0.0


def runs_as_of(runs: Sequence[Run], as_of: dt.date | None) -> list[Run]:
    """The runs of the ledger as it stood on ``as_of``: those posted (run date) on or before it."""
    return [r for r in runs if as_of is None or r.business_date <= as_of]


def plugin_mismatch(run: Run, registry: PluginRegistry, posted_modules: set[str] | None = None) -> str:
    """Why the installed plugins cannot reproduce ``run`` ("" when they can). Only the modules
    that posted entries in the run count when ``posted_modules`` is given (a module that posted
    nothing is rebuilt with the installed version: any entry it now produces shows as a difference)."""
    recorded: dict[str, str] = json.loads(run.plugins or "{}")
    installed = registry.modules()
    reasons = []
    for code, text in sorted(recorded.items()):
        if posted_modules is not None and code not in posted_modules:
            continue
        version = text.rsplit(" ", 1)[-1]
        if code not in installed:
            reasons.append(f"module {code} calculé par {text}, absent de cette installation")
        elif installed[code].spec.version != version:
            reasons.append(
                f"module {code} calculé par la version {version} du plugin, version installée "
                f"{installed[code].spec.version} (installez la version {version} pour rejouer ce passage)"
            )
    return " ; ".join(reasons)


def _amount(value: Any) -> str:
    return format_eur(int(value)) if isinstance(value, int) else str(value)


def _param_index(explanation: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(p.get("id", p.get("name"))): {k: v for k, v in p.items() if k != "source"}
        for p in explanation.get("parameters") or []
    }


def compare_entry(run_id: str, stored: Entry, rebuilt: Mapping[str, Any], inputs: bool = True) -> list[Difference]:
    """Field by field; parameter versions by name so that a changed value is named. ``inputs``
    False: the input fingerprint is not compared (a run posted before runs recorded their
    known-on date fingerprinted the working files of that day, which the history cannot show)."""
    out = []
    label = stored.entry_id
    for name in COMPARED:
        a = getattr(stored, name)
        b = rebuilt[name]
        if name == "corrects":
            a, b = list(a), list(b)
        if a != b:
            show = _amount if name == "amount_cents" else str
            out.append(Difference(run_id, label, name, show(a), show(b)))
    a_expl, b_expl = stored.explanation_dict(), json.loads(rebuilt["explanation"])
    a_par, b_par = _param_index(a_expl), _param_index(b_expl)
    for pid in sorted(set(a_par) | set(b_par)):
        a, b = a_par.get(pid), b_par.get(pid)
        if a != b:
            name = (a or b).get("name", pid)
            out.append(
                Difference(
                    run_id,
                    label,
                    f"paramètre {name}",
                    "absent" if a is None else f"{a.get('value')} (effet {a.get('start')}, {a.get('reference')})",
                    "absent" if b is None else f"{b.get('value')} (effet {b.get('start')}, {b.get('reference')})",
                )
            )
    if (
        stored.parameter_fingerprint != rebuilt["parameter_fingerprint"]
        and not (set(a_par) ^ set(b_par))
        and all(a_par[k] == b_par[k] for k in a_par)
    ):
        out.append(
            Difference(
                run_id,
                label,
                "empreinte des paramètres",
                stored.parameter_fingerprint,
                rebuilt["parameter_fingerprint"],
            )
        )
    for part in EXPLANATION_PARTS:
        a, b = a_expl.get(part), b_expl.get(part)
        if a != b:
            if part == "posting":
                a, b = (a or {}).get("text", a), (b or {}).get("text", b)
            out.append(Difference(run_id, label, f"explication ({part})", str(a), str(b)))
    if inputs and stored.input_fingerprint != rebuilt["input_fingerprint"]:
        out.append(
            Difference(
                run_id, label, "empreinte des données d'entrée", stored.input_fingerprint, rebuilt["input_fingerprint"]
            )
        )
    return out


def _compare_data_files(run: Run, rebuilt: Mapping[str, str]) -> list[Difference]:
    if not run.data_files:
        return []
    stored: dict[str, str] = json.loads(run.data_files)
    out = []
    for name in sorted(set(stored) | set(rebuilt)):
        a, b = stored.get(name), rebuilt.get(name)
        if a != b:
            out.append(
                Difference(
                    run.run_id,
                    "",
                    f"fichier de données {name} tel que connu le {run.known_on_date:%d/%m/%Y}",
                    a or "absent",
                    b or "absent",
                )
            )
    return out


def pin_data_versions(view: DataView, run: Run, aliases: Mapping[str, str] | None) -> DataView | Difference:
    """The data view reading exactly the versions the run read (its recorded fingerprints), so a
    version recorded later with an earlier reception date does not change what the run saw."""
    if not run.data_files or not view.registered:
        return view
    read: dict[str, str] = json.loads(run.data_files)
    subs = load_register(view.data_dir)
    versions = {}
    for rel in view.registered:
        wanted = read.get(f"data/{rel}")
        if wanted is None:
            continue  # not received when the run was posted
        found = [s for s in subs if s.file == rel and (aliases or {}).get(s.sha256, s.sha256) == wanted]
        if not found:
            return Difference(
                run.run_id,
                "",
                f"fichier de données data/{rel} lu par le passage",
                f"version {wanted[:12]}…",
                "absente du registre des réceptions (version supprimée ou remplacée)",
            )
        versions[rel] = found[-1]
    return attrs.evolve(view, versions=versions)


def replay_run(
    run: Run,
    stored_entries: Sequence[Entry],
    prior: Sequence[Entry],
    contracts_dir: Path,
    data_dir: Path,
    registry: PluginRegistry,
    pseudonymiser: Pseudonymiser | None,
    digest_aliases: Mapping[str, str] | None = None,
    scrub: Scrubber | None = None,
    cache: ReadCache | None = None,
) -> RunReplay:
    """Rebuild one run against the entries stored before it and compare (``cache``: parsed
    files shared with the other runs of the replay)."""
    why = plugin_mismatch(run, registry, {e.module for e in stored_entries})
    if why:
        return RunReplay(run, "not_reproducible", len(stored_entries), reason=why)
    modules = sorted(m for m in json.loads(run.plugins or "{}") if m in registry.modules())
    try:
        workspace = Workspace(contracts_dir, data_dir, registry, run.business_date, run.known_on_date, cache)
        pinned = pin_data_versions(workspace.data, run, digest_aliases)
        if isinstance(pinned, Difference):
            return RunReplay(run, "different", len(stored_entries), (pinned,))
        workspace.data = pinned
        proposal = prepare(
            workspace, list(run.selectors) or None, pseudonymiser, modules, digest_aliases=digest_aliases, scrub=scrub
        )
    except NmrError as exc:
        diff = Difference(run.run_id, "", "reconstruction impossible", "passage enregistré", str(exc))
        return RunReplay(run, "different", len(stored_entries), (diff,))
    rebuilt = plan(proposal, prior)
    diffs = _compare_data_files(run, proposal.data_files)
    by_key = {tuple(f[k] for k in KEY_FIELDS): f for f in rebuilt}
    stored_keys = {e.key: e for e in stored_entries}
    for key in sorted(set(by_key) | set(stored_keys)):
        e, f = stored_keys.get(key), by_key.get(key)
        shown = " / ".join(key[:4]) + f" / {key[5]}"
        if e is None:
            diffs.append(Difference(run.run_id, shown, "écriture", "absente", f"{_amount(f['amount_cents'])}"))
        elif f is None:
            diffs.append(Difference(run.run_id, e.entry_id, "écriture", _amount(e.amount_cents), f"absente ({shown})"))
        else:
            diffs.extend(compare_entry(run.run_id, e, f, inputs=bool(run.known_on)))
    return RunReplay(run, "different" if diffs else "identical", len(stored_entries), tuple(diffs))


def replay(
    runs: Sequence[Run],
    entries: Sequence[Entry],
    contracts_dir: Path,
    data_dir: Path,
    registry: PluginRegistry,
    pseudonymiser: Pseudonymiser | None,
    as_of: dt.date | None = None,
    digest_aliases: Mapping[str, str] | None = None,
    scrub: Scrubber | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ReplayReport:
    """Replay every run (posted on or before ``as_of``) in ledger order."""
    start = time.perf_counter()
    kept = runs_as_of(runs, as_of)
    entries = sorted(entries, key=lambda e: e.seq)
    seqs = [e.seq for e in entries]
    by_run: dict[str, list[Entry]] = {}
    for e in entries:
        by_run.setdefault(e.run_id, []).append(e)
    verdicts = []
    replayed: list[Entry] = []
    cache = ReadCache()  # the files do not change during a replay: each version is parsed once
    for i, run in enumerate(kept):
        if progress:
            progress(f"passage {run.run_id}", i, len(kept))
        mine = by_run.get(run.run_id, [])
        prior = entries[: bisect.bisect_left(seqs, run.first_entry_seq)]
        verdicts.append(
            replay_run(run, mine, prior, contracts_dir, data_dir, registry, pseudonymiser, digest_aliases, scrub, cache)
        )
        replayed.extend(mine)
    return ReplayReport(tuple(verdicts), tuple(replayed), as_of, time.perf_counter() - start)
