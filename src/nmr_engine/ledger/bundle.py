"""Audit bundle: one zip holding everything a replay needs, patient identifiers pseudonymised.

Layout::

    manifest.json              sha256 of every file; original vs pseudonymised data fingerprints
    contracts/*.yaml           the contract files (with their history)
    data/submissions.yaml      the register, rewritten with the pseudonymised copies' fingerprints
    data/.history/…            every recorded version, pseudonymised
    data/<module>/<table>.csv  the working files, pseudonymised
    parameters/<module>/…      the installed modules' parameter files
    ledger/runs.jsonl          the ledger, one JSON object per run / entry, hashes included
    ledger/entries.jsonl       (and, from a format-2 ledger, each entry's stored record, base64)
    plugins.json               {module: {"plugin": name, "version": version}}

Columns declared ``Column(pseudonymise=True)`` are replaced by the same keyed pseudonyms
the ledger's texts hold (:mod:`nmr_engine.pseudonym`), so a replay on the bundle computes
the same amounts (they depend on patients' equality, never on their identifiers) and the
same texts, without the key. The manifest maps each pseudonymised data file's sha256 to the
original's, so the rebuilt input fingerprints are compared with those the ledger recorded.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from ..errors import InputError, Problem
from ..inputs.reader import _sniff_separator
from ..inputs.submissions import HISTORY_DIR, REGISTER, Submission, _append, load_register
from ..plugin.manager import PluginRegistry
from ..pseudonym import Pseudonymiser, Scrubber
from .hashchain import canonical_json, verify
from .model import Entry, Run
from .replay import ReplayReport, replay
from .store import LedgerStore

MANIFEST = "manifest.json"
FORMAT = "nmr-audit-bundle/1"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pseudonymise_csv(data: bytes, columns: set[str], sep: str, pseudonymiser: Pseudonymiser) -> bytes:
    """The same CSV with the values of ``columns`` replaced by their pseudonyms (lines kept)."""
    text = data.decode("utf-8")
    lines = text.split("\n")
    if not lines:
        return data
    header = lines[0].rstrip("\r").split(sep)
    idx = [i for i, name in enumerate(header) if name.strip() in columns]
    if not idx:
        return data
    out = [lines[0]]
    for line in lines[1:]:
        end = "\r" if line.endswith("\r") else ""
        fields = line[: len(line) - len(end)].split(sep)
        for i in idx:
            if i < len(fields) and fields[i].strip():
                fields[i] = pseudonymiser.pseudonym(fields[i].strip())
        out.append(sep.join(fields) + end if line else line)
    return "\n".join(out).encode("utf-8")


def _pseudonymised_columns(registry: PluginRegistry) -> dict[str, set[str]]:
    """{"<module>/<table>.csv": columns to pseudonymise}."""
    out = {}
    for code, reg in registry.modules().items():
        for table in reg.spec.tables:
            cols = {c.name for c in table.columns if c.pseudonymise}
            if cols:
                out[f"{code}/{table.name}.csv"] = cols
    return out


@attrs.frozen
class ExportReport:
    path: Path
    files: int
    runs: int
    entries: int
    versions: int


def export_bundle(
    out: Path,
    contracts_dir: Path,
    data_dir: Path,
    store: LedgerStore,
    registry: PluginRegistry,
    pseudonymiser: Pseudonymiser,
) -> ExportReport:
    """Write the audit bundle ``out`` (a zip); the ledger is read in one snapshot."""
    contracts_dir, data_dir = Path(contracts_dir), Path(data_dir)
    runs, entries = store.snapshot()
    files: dict[str, bytes] = {}
    for path in sorted(contracts_dir.glob("*.yaml")):
        files[f"contracts/{path.name}"] = path.read_bytes()
    hide = _pseudonymised_columns(registry)
    data_map: list[dict[str, str]] = []

    def pseudo(rel: str, path: Path) -> bytes:
        raw = path.read_bytes()
        if rel not in hide:
            return raw
        return pseudonymise_csv(raw, hide[rel], _sniff_separator(path), pseudonymiser)

    # Recorded versions, and the register rewritten with the pseudonymised fingerprints.
    subs = load_register(data_dir)
    new_sha: dict[tuple[str, str], str] = {}
    tmp_dir = Path(tempfile.mkdtemp(prefix="nmr-bundle-"))
    try:
        register = tmp_dir / REGISTER
        for sub in subs:
            original = sub.history_path(data_dir)
            content = pseudo(sub.file, original)
            sha = _sha(content)
            new_sha[(sub.file, sub.sha256)] = sha
            copy = Submission(
                sub.file,
                sub.received_on,
                sha,
                new_sha.get((sub.file, sub.supersedes)) if sub.supersedes else None,
                sub.note,
            )
            files["data/" + copy.history_path(Path(".")).as_posix()] = content
            _append(register, copy)
            data_map.append(
                {
                    "file": f"data/{sub.file}",
                    "received_on": sub.received_on.isoformat(),
                    "original_sha256": sub.sha256,
                    "bundle_sha256": sha,
                }
            )
        if subs:
            files[f"data/{REGISTER}"] = register.read_bytes()
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    for path in sorted(data_dir.glob("*/*.csv")):
        rel = path.relative_to(data_dir).as_posix()
        if rel.startswith(HISTORY_DIR + "/"):
            continue
        content = pseudo(rel, path)
        files[f"data/{rel}"] = content
        data_map.append(
            {
                "file": f"data/{rel}",
                "working": "true",
                "original_sha256": _sha(path.read_bytes()),
                "bundle_sha256": _sha(content),
            }
        )
    plugins = {}
    for code, reg in registry.modules().items():
        plugins[code] = {"plugin": reg.plugin_name, "version": reg.spec.version}
        folder = reg.spec.parameters_dir
        if folder is not None and Path(folder).is_dir():
            for path in sorted(Path(folder).rglob("*.yaml")):
                files[f"parameters/{code}/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
    files["plugins.json"] = json.dumps(plugins, indent=2, ensure_ascii=False, sort_keys=True).encode()
    files["ledger/runs.jsonl"] = "".join(
        canonical_json({**r.payload(), "known_on": r.known_on, "data_files": r.data_files, "hash": r.hash}) + "\n"
        for r in runs
    ).encode()
    files["ledger/entries.jsonl"] = "".join(canonical_json(_entry_line(e)) + "\n" for e in entries).encode()
    manifest = {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "ledger": {"runs": len(runs), "entries": len(entries), "head": entries[-1].hash if entries else None},
        "files": {name: _sha(content) for name, content in sorted(files.items())},
        "data": data_map,
        "pseudonymised_columns": {k: sorted(v) for k, v in sorted(hide.items())},
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in sorted(files.items()):
            zf.writestr(name, content)
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
    tmp.replace(out)
    return ExportReport(out, len(files), len(runs), len(entries), len(subs))


def _entry_line(entry: Entry) -> dict:
    """An entry of ``entries.jsonl``: its fields, its hash and, from a format-2 ledger, its stored
    record in base64 (the hash covers the record's bytes; verify checks the fields against it)."""
    line = {**entry.payload(), "hash": entry.hash}
    if entry.record:
        line["record"] = base64.b64encode(entry.record).decode("ascii")
    return line


def load_ledger_jsonl(folder: Path) -> tuple[list[Run], list[Entry]]:
    runs = []
    for line in (folder / "runs.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        d["business_date"] = dt.date.fromisoformat(d["business_date"])
        d["selectors"] = tuple(d["selectors"])
        runs.append(Run(**d))
    entries = []
    for line in (folder / "entries.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        d["due_date"] = dt.date.fromisoformat(d["due_date"])
        d["business_date"] = dt.date.fromisoformat(d["business_date"])
        d["corrects"] = tuple(d["corrects"])
        if "record" in d:
            d["record"] = base64.b64decode(d["record"])
        entries.append(Entry(**d))
    return runs, entries


@contextmanager
def unpacked(bundle: Path) -> Iterator[Path]:
    """The bundle unpacked in a temporary folder, every file checked against the manifest."""
    bundle = Path(bundle)
    tmp = Path(tempfile.mkdtemp(prefix="nmr-audit-"))
    try:
        try:
            with zipfile.ZipFile(bundle) as zf:
                for name in zf.namelist():
                    if name.startswith("/") or ".." in Path(name).parts:
                        raise InputError([Problem(str(bundle), f"chemin interdit dans l'archive : {name}")])
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise InputError([Problem(str(bundle), f"archive zip illisible : {exc}")]) from None
        manifest_path = tmp / MANIFEST
        if not manifest_path.exists():
            raise InputError([Problem(str(bundle), f"{MANIFEST} absent : ce n'est pas un dossier d'audit nmr")])
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        problems = []
        for name, sha in manifest["files"].items():
            path = tmp / name
            if not path.exists():
                problems.append(Problem(f"{bundle}:{name}", "fichier du manifeste absent de l'archive"))
            elif _sha(path.read_bytes()) != sha:
                problems.append(
                    Problem(f"{bundle}:{name}", "empreinte différente de celle du manifeste (fichier modifié)")
                )
        listed = set(manifest["files"]) | {MANIFEST}
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            if rel not in listed:
                problems.append(Problem(f"{bundle}:{rel}", "fichier absent du manifeste"))
        if problems:
            raise InputError(problems)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bundle_registry(root: Path, registry: PluginRegistry) -> PluginRegistry:
    """The installed plugins with their parameters read from the bundle (``parameters/<module>``)."""
    modules = registry.modules()
    for code, reg in list(modules.items()):
        folder = root / "parameters" / code
        modules[code] = attrs.evolve(
            reg, spec=attrs.evolve(reg.spec, parameters_dir=folder if folder.is_dir() else None)
        )
    return registry


@attrs.frozen
class BundleReplay:
    report: ReplayReport
    chain_problems: tuple[str, ...]
    manifest: dict


def replay_bundle(bundle: Path, registry: PluginRegistry, as_of: dt.date | None = None) -> BundleReplay:
    """Unpack, check the manifest and the hash chain, replay on the bundle's own files."""
    with unpacked(bundle) as root:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        runs, entries = load_ledger_jsonl(root / "ledger")
        problems = tuple(verify(runs, entries))
        aliases = {d["bundle_sha256"]: d["original_sha256"] for d in manifest.get("data", [])}
        report = replay(
            runs,
            entries,
            root / "contracts",
            root / "data",
            bundle_registry(root, registry),
            None,
            as_of,
            digest_aliases=aliases,
            scrub=Scrubber({}),
        )
    return BundleReplay(report, problems, manifest)
