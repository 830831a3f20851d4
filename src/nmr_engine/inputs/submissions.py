"""The register of data submissions: which activity file was received when, with its fingerprint.

``<data>/submissions.yaml`` lists every version of every activity file received, in the order
they were recorded (``nmr data record FILE --received-on D`` appends one)::

    submissions:
      - file: etp/sessions.csv          # path inside the data folder
        received_on: 2013-01-10
        sha256: 9f2c…                   # fingerprint of the file as received
      - file: etp/sessions.csv
        received_on: 2013-05-15
        sha256: 41ab…
        supersedes: 9f2c…               # the version it replaces: a late correction
        note: Séances de novembre oubliées

Each recorded version is copied to ``<data>/.history/<dir>/<stem>.<received_on>.<sha12><ext>``
when it is recorded (the working file will be overwritten by the next version), so a replay can
read any file as it was. ``nmr data check`` verifies the fingerprints: a working file changed
without being recorded, a missing file or an altered copy is an error naming it.

``Workspace(known_on=D)`` reads, for each registered file, the latest version received on or
before D (a file not yet received is read as empty). The register is module-agnostic: it knows
files, not modules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import attrs

from ..errors import InputError, Problem
from ..yamlfile import LocatedDict, LocatedList, load_yaml

REGISTER = "submissions.yaml"
HISTORY_DIR = ".history"
_FIELDS = ("file", "received_on", "sha256", "supersedes", "note")

_HEADER = """\
# Registre des fichiers d'activité reçus (tenu par « nmr data record », dans l'ordre d'enregistrement).
# Chaque version reçue est conservée dans .history/ ; « nmr data check » vérifie les empreintes.
submissions:
"""


@attrs.frozen
class Submission:
    """One version of an activity file, as received."""

    file: str  # posix path relative to the data folder
    received_on: dt.date
    sha256: str
    supersedes: str | None = None
    note: str = ""
    line: int | None = None

    def history_path(self, data_dir: Path) -> Path:
        rel = Path(self.file)
        name = f"{rel.stem}.{self.received_on.isoformat()}.{self.sha256[:12]}{rel.suffix}"
        return Path(data_dir) / HISTORY_DIR / rel.parent / name

    def label(self, data_dir: Path) -> str:
        """How explanations and errors name this version."""
        return f"{Path(data_dir) / self.file} (version reçue le {self.received_on:%d/%m/%Y})"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_register(data_dir: Path) -> list[Submission]:
    """Every recorded submission (empty when there is no register). Located errors on a bad one."""
    path = Path(data_dir) / REGISTER
    if not path.exists():
        return []
    file = str(path)
    data = load_yaml(path)
    items = data.get("submissions") if isinstance(data, LocatedDict) else None
    if items is None and isinstance(data, LocatedDict) and "submissions" in data:
        return []
    if not isinstance(items, LocatedList):
        raise InputError([Problem(file, "attendu « submissions: » suivi d'une liste de fichiers reçus", 1)])
    problems: list[Problem] = []
    out: list[Submission] = []
    latest: dict[str, Submission] = {}
    for i, entry in enumerate(items):
        field = f"submissions[{i}]"
        if not isinstance(entry, LocatedDict):
            problems.append(
                Problem(file, "fichier reçu attendu (file, received_on, sha256)", items.item_lines[i], field)
            )
            continue
        before = len(problems)

        def bad(key, message, entry=entry, field=field):
            problems.append(Problem(file, message, entry.line_of(key) if key else entry.line, f"{field}.{key}"))

        for key in entry:
            if key not in _FIELDS:
                bad(key, f"champ inconnu ; champs admis : {', '.join(_FIELDS)}")
        rel = entry.get("file")
        if not isinstance(rel, str) or not rel.strip():
            bad("file", "chemin du fichier dans le dossier des données attendu")
        elif Path(rel).is_absolute() or ".." in Path(rel).parts:
            bad("file", f"chemin relatif au dossier des données attendu, reçu {rel!r}")
        received = entry.get("received_on")
        if not isinstance(received, dt.date):
            try:
                received = dt.date.fromisoformat(str(received))
            except ValueError:
                bad("received_on", f"date de réception attendue au format AAAA-MM-JJ, reçu {received!r}")
                received = None
        sha = str(entry.get("sha256", ""))
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            bad("sha256", f"empreinte sha256 attendue (64 caractères hexadécimaux), reçu {sha!r}")
        supersedes = entry.get("supersedes")
        if len(problems) > before:
            continue
        prev = latest.get(rel)
        if prev is not None:
            if received < prev.received_on:
                bad(
                    "received_on",
                    f"reçu le {received:%d/%m/%Y}, avant la version précédente de {rel} "
                    f"(reçue le {prev.received_on:%d/%m/%Y}) : le registre suit l'ordre de réception",
                )
                continue
            if supersedes != prev.sha256:
                bad("supersedes", f"doit désigner la version précédente de {rel} ({prev.sha256[:12]}…)")
                continue
        elif supersedes is not None:
            bad("supersedes", f"première version de {rel} : elle ne remplace rien")
            continue
        sub = Submission(rel, received, sha, supersedes, str(entry.get("note") or ""), entry.line)
        latest[rel] = sub
        out.append(sub)
    if problems:
        raise InputError(problems)
    return out


def latest_versions(submissions: list[Submission], known_on: dt.date | None = None) -> dict[str, Submission]:
    """For each file, the latest version received on or before ``known_on`` (all when None)."""
    out: dict[str, Submission] = {}
    for sub in submissions:
        if known_on is None or sub.received_on <= known_on:
            out[sub.file] = sub
    return out


def record_submission(data_dir: Path, path: Path, received_on: dt.date, note: str = "") -> Submission | None:
    """Record a received file: fingerprint it, keep a copy in ``.history/`` and append it to the
    register. Returns None when this exact content is already the latest recorded version."""
    data_dir = Path(data_dir)
    path = Path(path)
    if not path.is_file():
        raise InputError([Problem(str(path), "fichier introuvable")])
    try:
        rel = path.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:
        raise InputError(
            [Problem(str(path), f"le fichier doit se trouver dans le dossier des données {data_dir}")]
        ) from None
    if rel == REGISTER or rel.startswith(HISTORY_DIR + "/"):
        raise InputError([Problem(str(path), "ce fichier appartient au registre lui-même")])
    register = load_register(data_dir)
    prev = latest_versions(register).get(rel)
    sha = sha256_of(path)
    if prev is not None:
        if prev.sha256 == sha:
            return None
        if received_on < prev.received_on:
            raise InputError(
                [
                    Problem(
                        str(path),
                        f"date de réception {received_on:%d/%m/%Y} antérieure à celle de la version enregistrée "
                        f"(reçue le {prev.received_on:%d/%m/%Y})",
                        None,
                        "--received-on",
                    )
                ]
            )
    sub = Submission(rel, received_on, sha, prev.sha256 if prev else None, note)
    copy = sub.history_path(data_dir)
    copy.parent.mkdir(parents=True, exist_ok=True)
    tmp = copy.with_name(copy.name + ".tmp")
    shutil.copyfile(path, tmp)
    if sha256_of(tmp) != sha:  # the file changed while we copied it
        tmp.unlink()
        raise InputError([Problem(str(path), "le fichier a changé pendant son enregistrement ; recommencez")])
    os.replace(tmp, copy)
    _append(data_dir / REGISTER, sub)
    return sub


def _append(register: Path, sub: Submission) -> None:
    text = register.read_text(encoding="utf-8") if register.exists() else _HEADER
    if not text.endswith("\n"):
        text += "\n"
    block = [
        f"  - file: {json.dumps(sub.file, ensure_ascii=False)}",
        f"    received_on: {sub.received_on.isoformat()}",
        f'    sha256: "{sub.sha256}"',  # quoted: a digest must never be read as a number
    ]
    if sub.supersedes:
        block.append(f'    supersedes: "{sub.supersedes}"')
    if sub.note:
        block.append(f"    note: {json.dumps(sub.note, ensure_ascii=False)}")
    tmp = register.with_name(register.name + ".tmp")
    tmp.write_text(text + "\n".join(block) + "\n", encoding="utf-8")
    os.replace(tmp, register)


def check_submissions(data_dir: Path, patterns: tuple[str, ...] = ("*/*.csv",)) -> list[Problem]:
    """Problems between the register and the files: a working file changed (or added) without
    being recorded, a missing file, a missing or altered copy of a recorded version."""
    data_dir = Path(data_dir)
    register_file = str(data_dir / REGISTER)
    submissions = load_register(data_dir)
    problems: list[Problem] = []
    for sub in submissions:
        copy = sub.history_path(data_dir)
        if not copy.exists():
            problems.append(Problem(str(copy), f"copie de la version reçue le {sub.received_on:%d/%m/%Y} introuvable"))
        elif sha256_of(copy) != sub.sha256:
            problems.append(
                Problem(
                    str(copy),
                    f"copie altérée : son empreinte ne correspond plus à celle enregistrée ({register_file}, "
                    f"ligne {sub.line})",
                )
            )
    latest = latest_versions(submissions)
    for rel, sub in sorted(latest.items()):
        path = data_dir / rel
        if not path.exists():
            problems.append(Problem(str(path), f"fichier enregistré le {sub.received_on:%d/%m/%Y} introuvable"))
            continue
        found = sha256_of(path)
        if found != sub.sha256:
            problems.append(
                Problem(
                    str(path),
                    f"le fichier a changé depuis sa réception du {sub.received_on:%d/%m/%Y} sans être enregistré "
                    f"(empreinte attendue {sub.sha256[:12]}…, trouvée {found[:12]}…) : enregistrez la nouvelle "
                    "version avec « nmr data record » en indiquant sa date de réception",
                )
            )
    if submissions or (data_dir / REGISTER).exists():
        for pattern in patterns:
            for path in sorted(data_dir.glob(pattern)):
                rel = path.relative_to(data_dir).as_posix()
                if rel.startswith(HISTORY_DIR + "/") or rel in latest:
                    continue
                problems.append(
                    Problem(str(path), "fichier de données absent du registre des réceptions (nmr data record)")
                )
    return problems


@attrs.frozen
class DataView:
    """Where to read each data file: the working file, or a recorded version as known on a date."""

    data_dir: Path
    known_on: dt.date | None = None
    versions: dict[str, Submission] = attrs.field(factory=dict)
    registered: frozenset[str] = frozenset()

    @classmethod
    def open(cls, data_dir: Path, known_on: dt.date | None = None) -> DataView:
        subs = load_register(data_dir)
        return cls(Path(data_dir), known_on, latest_versions(subs, known_on), frozenset(s.file for s in subs))

    def locate(self, rel: str) -> tuple[Path | None, str, list[str]]:
        """(path to read or None when not yet received, label for messages, warnings)."""
        working = self.data_dir / rel
        if self.known_on is None or not self.registered:
            warnings = []
            sub = self.versions.get(rel)
            if sub is not None and working.exists() and sha256_of(working) != sub.sha256:
                warnings.append(
                    f"{working} a changé depuis sa réception du {sub.received_on:%d/%m/%Y} sans être enregistré "
                    "(nmr data check)"
                )
            return working, str(working), warnings
        if rel not in self.registered:
            warning = (
                f"{working} n'est pas au registre des réceptions : lu dans son état actuel, "
                f"pas tel qu'il était connu le {self.known_on:%d/%m/%Y}"
            )
            return working, str(working), [warning] if working.exists() else []
        sub = self.versions.get(rel)
        if sub is None:
            return None, f"{working} (pas encore reçu le {self.known_on:%d/%m/%Y})", []
        copy = sub.history_path(self.data_dir)
        if not copy.exists():
            raise InputError(
                [Problem(str(copy), f"copie de la version reçue le {sub.received_on:%d/%m/%Y} introuvable")]
            )
        if sha256_of(copy) != sub.sha256:
            raise InputError(
                [
                    Problem(
                        str(copy),
                        f"copie altérée : son empreinte ne correspond plus à celle enregistrée le "
                        f"{sub.received_on:%d/%m/%Y} ({self.data_dir / REGISTER}, ligne {sub.line})",
                    )
                ]
            )
        return copy, sub.label(self.data_dir), []
