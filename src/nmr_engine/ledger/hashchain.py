"""Hash chain over canonical JSON: any later edit of the stored history shows.

Each entry's hash covers all its fields, its position (``seq``) and the previous
entry's hash; runs are chained the same way and record their entries' count, total
and last hash, so an edited amount, date or order, a removed or inserted entry, or a
run cut short is reported by :func:`verify`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import attrs

from ..money import format_eur
from .model import GENESIS, KINDS, Entry, Run


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash(entry: Entry) -> str:
    return sha256_text(canonical_json(entry.payload()))


def run_hash(run: Run) -> str:
    return sha256_text(canonical_json(run.payload()))


def seal_entries(entries: Sequence[Entry], first_seq: int, prev_hash: str) -> list[Entry]:
    """Number and chain ``entries`` after ``prev_hash``."""
    out = []
    for i, entry in enumerate(entries):
        entry = attrs.evolve(entry, seq=first_seq + i, prev_hash=prev_hash, hash="")
        entry = attrs.evolve(entry, hash=entry_hash(entry))
        prev_hash = entry.hash
        out.append(entry)
    return out


def seal_run(run: Run, seq: int, prev_hash: str) -> Run:
    run = attrs.evolve(run, seq=seq, prev_hash=prev_hash, hash="")
    return attrs.evolve(run, hash=run_hash(run))


def verify(runs: Sequence[Run], entries: Sequence[Entry]) -> list[str]:
    """Problems found in the stored history (French), empty when it is intact.

    ``runs`` and ``entries`` are in storage order (by ``seq``)."""
    problems: list[str] = []
    prev = GENESIS
    for expected_seq, entry in enumerate(entries, start=1):
        where = f"écriture n° {entry.seq} ({entry.entry_id})"
        if entry.seq != expected_seq:
            problems.append(f"{where} : position {entry.seq} au lieu de {expected_seq} (écriture manquante ou insérée)")
        if entry.prev_hash != prev:
            problems.append(f"{where} : chaînage rompu (l'empreinte précédente ne correspond pas ; ordre modifié ?)")
        if entry.hash != entry_hash(entry):
            problems.append(f"{where} : contenu modifié (empreinte recalculée différente)")
        if entry.kind not in KINDS:
            problems.append(f"{where} : nature d'écriture inconnue « {entry.kind} »")
        prev = entry.hash

    by_run: dict[str, list[Entry]] = {}
    for entry in entries:
        by_run.setdefault(entry.run_id, []).append(entry)
    prev = GENESIS
    known = set()
    for expected_seq, run in enumerate(runs, start=1):
        where = f"passage {run.run_id}"
        known.add(run.run_id)
        if run.seq != expected_seq:
            problems.append(f"{where} : position {run.seq} au lieu de {expected_seq}")
        if run.prev_hash != prev:
            problems.append(f"{where} : chaînage des passages rompu")
        if run.hash != run_hash(run):
            problems.append(f"{where} : contenu modifié (empreinte recalculée différente)")
        prev = run.hash
        mine = by_run.get(run.run_id, [])
        total = sum(e.amount_cents for e in mine)
        if len(mine) != run.entry_count:
            problems.append(f"{where} : {len(mine)} écriture(s) trouvée(s), {run.entry_count} enregistrée(s)")
        if total != run.total_cents:
            problems.append(
                f"{where} : total des écritures {format_eur(total)} au lieu de {format_eur(run.total_cents)}"
            )
        if mine and (mine[0].seq != run.first_entry_seq or mine[-1].hash != run.last_entry_hash):
            problems.append(f"{where} : les écritures ne sont pas celles enregistrées pour ce passage")
    for run_id in sorted(set(by_run) - known):
        problems.append(f"écritures du passage inconnu {run_id} ({len(by_run[run_id])})")
    return problems
