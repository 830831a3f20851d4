"""Hash chain over the stored rows: any later edit of the stored history shows.

Hash format
-----------
A record's hash is the SHA-256 (hex) of its **stored column values, in the table's column
order**, the ``hash`` column itself left out, exactly as the database holds them (integers as
JSON numbers, text as the stored text: ISO dates, JSON texts such as ``selectors``). ``json`` below
is compact JSON (``separators=(",", ":")``, non-ASCII kept), encoded as UTF-8; the array cannot
contain a raw line feed (JSON escapes it), so the first ``\\n`` ends it and what follows is hashed
byte for byte. The values include ``seq`` and ``prev_hash``: the hash covers the record's
position and the previous record's hash.

- a **run** (:data:`~.store.RUN_COLUMNS`): ``json([v1, v2, ...])``.
- an **entry** depends on the ledger's *entry format* (the layout of its ``entries`` table,
  fixed when the ledger was created, :mod:`.store`):

  - **format 2** (every new ledger; columns :data:`~.store.RECORD_ENTRY_COLUMNS`):
    ``json([seq, entry_id, run_id, period_id, kind, amount_cents, prev_hash]) + "\\n" + record``,
    where ``record`` is the stored blob, hashed as stored (never decompressed to verify):
    ``zlib(json([contract_id, module, component, payee_id, instalment, due_date, business_date,
    recorded_at, label, input_fingerprint, parameter_fingerprint, plugin, plugin_version,
    corrects]) + "\\n" + explanation)`` (``corrects`` a JSON list, the explanation its
    canonical JSON text). In Python, for a row read as a dict::

        head = [row[c] for c in ("seq", "entry_id", "run_id", "period_id", "kind", "amount_cents", "prev_hash")]
        text = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode() + b"\\n" + row["record"]
        assert hashlib.sha256(text).hexdigest() == row["hash"]
        fields, _, explanation = zlib.decompress(row["record"]).partition(b"\\n")  # to read it

  - **format 1** (ledgers created before format 2; columns :data:`~.store.ENTRY_COLUMNS`):
    ``json([every column but explanation and hash]) + "\\n" + explanation`` (``corrects`` as its
    stored JSON text)::

        head = [row[c] for c in ENTRY_COLUMNS if c not in ("explanation", "hash")]
        text = json.dumps(head, separators=(",", ":"), ensure_ascii=False) + "\\n" + row["explanation"]
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == row["hash"]

Runs record their entries' count, total, first entry position and last hash, so an edited
amount, date, order, explanation or run id, a removed or inserted entry, or a run cut short is
reported by :func:`verify` and :func:`verify_store`, in both formats.

Why this format (the verify design)
-----------------------------------
The first format hashed ``canonical_json`` of a dict of the entry's fields: verify rebuilt and
re-serialised every ``Entry`` (≈ 10,000 entries per second). Format 1 hashed the row as stored:
:func:`verify_store` streams rows (seq order, in batches, one read snapshot) and does per row one
C-level ``json`` array and one ``sha256`` (≈ 37,000–49,000 entries per second, SQLite). What was
left was reading the row — 23 values, ≈ 4.4 KB of which the explanation is ≈ 80 %, over two
pages — and hashing ≈ 3.5 KB. Format 2 cuts both: verify reads 9 values per row, the record is
≈ 1.4 KB (14 fields and the explanation, zlib level 1, :data:`~.store.RECORD_LEVEL`) instead of
≈ 3.3 KB of explanation alone, and the 7-value array is written with the functions ``json`` uses
for str and int (same bytes; a value of another type, which no row the ledger writes holds,
falls back to ``json`` itself): ≈ 75,000–82,000 entries per second (SQLite). The checks
of the chain, positions, kinds and run totals are per batch on the columns (list comparisons,
``groupby``), never through ``Entry`` objects. Measured figures: docs/benchmarks.md ("Verify").

The record is hashed as stored, not recompressed: zlib's output may differ between builds, so an
``Entry`` read from a format-2 ledger keeps its stored ``record``, sealing builds it once, and an
audit bundle carries it; :func:`verify` on objects checks each entry's fields against its record.

One process fills one core this way (reading a row and hashing it take ≈ 5–7 µs; hashlib holds
the GIL below 2 KB, which a record is, and a reader thread feeding the hashing one was slower). A
long ledger is therefore verified by forked processes, one per CPU, each scanning a range of
entries with :func:`scan_entries`; the parent joins their scans (:mod:`.verify_split`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..money import format_eur
from .model import GENESIS, KINDS, Entry, Run
from .store import (
    ENTRY_COLUMNS,
    FORMAT_COLUMNS,
    FORMAT_RECORD,
    RECORD_ENTRY_COLUMNS,
    RECORD_FIELDS,
    RUN_COLUMNS,
    as_recorded,
    entry_to_record_row,
    entry_to_row,
    json_encoder,
    pack_records,
    pack_texts,
    record_text,
    record_values,
    run_to_row,
    unpack_record,
)

#: Format 1: entry columns in the array of the hash input (every stored column but
#: ``explanation`` and ``hash``).
ENTRY_HEAD_COLUMNS = tuple(c for c in ENTRY_COLUMNS if c not in ("explanation", "hash"))
#: Format 1: column order of the rows :func:`verify_rows` reads: the array's values, then
#: ``hash``, then the explanation as UTF-8 bytes (the stores' fast path selects exactly this).
VERIFY_COLUMNS = (*ENTRY_HEAD_COLUMNS, "hash", "explanation")
#: Format 2: the columns in the array of the hash input (every column but ``hash`` and ``record``).
RECORD_HEAD_COLUMNS = RECORD_ENTRY_COLUMNS[:-2]
#: Column order of the rows :func:`verify_rows` reads, per entry format.
ROW_COLUMNS = {FORMAT_COLUMNS: VERIFY_COLUMNS, FORMAT_RECORD: RECORD_ENTRY_COLUMNS}


@attrs.frozen
class _Layout:
    """Where :func:`verify_rows` finds what it checks in a row of one format."""

    head: int  # the array's values are row[:head]; then the hash, then the hashed bytes
    seq: int
    id: int
    run: int
    kind: int
    amount: int
    prev: int


def _layout(columns: Sequence[str]) -> _Layout:
    head = columns.index("hash")
    checked = ("seq", "entry_id", "run_id", "kind", "amount_cents", "prev_hash")
    return _Layout(head, *(columns.index(c) for c in checked))


_LAYOUTS = {fmt: _layout(columns) for fmt, columns in ROW_COLUMNS.items()}
_ENTRY_ORDER = [ENTRY_COLUMNS.index(c) for c in ENTRY_HEAD_COLUMNS]
_ENTRY_HASH, _ENTRY_EXPLANATION = ENTRY_COLUMNS.index("hash"), ENTRY_COLUMNS.index("explanation")
_RUN_HASH = RUN_COLUMNS.index("hash")


def _not_stored_by_us(value: Any) -> dict[str, str]:
    """JSON for a value the ledger never writes (a blob written over a text column by hand): an
    object, which no honest row holds, so the recomputed hash differs and verify reports it."""
    return {"type": type(value).__name__, "repr": repr(value)}


_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_not_stored_by_us).encode
if json.encoder.c_make_encoder is not None:  # the same C encoder, built once rather than per call (-30 %)
    _c_array = json.encoder.c_make_encoder(
        None, _not_stored_by_us, json.encoder.c_encode_basestring, None, ":", ",", False, False, True
    )

    def _compact_array(values: Sequence[Any]) -> str:
        return "".join(_c_array(values, 0))
else:  # pragma: no cover - CPython always has the C encoder
    _compact_array = _compact
_sha256 = hashlib.sha256
_KINDS = frozenset(KINDS)
# Format 2's array [seq, entry_id, run_id, period_id, kind, amount_cents, prev_hash] and its line
# feed, written with the functions json itself uses for str and int: the same bytes as
# ``_compact_array`` for every row the ledger writes, ≈ 2× faster; any other type raises TypeError.
_RECORD_HEAD = "[%s,%s,%s,%s,%s,%s,%s]\n"
_str, _int = json.encoder.encode_basestring, int.__repr__


_canonical = json_encoder(sort_keys=True)


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, UTF-8 kept (fingerprints, explanations, bundles)."""
    return _canonical(value)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash_input(head: Sequence[Any], stored: bytes) -> bytes:
    """The bytes an entry's hash covers: ``head`` the values of the array (:data:`ENTRY_HEAD_COLUMNS`
    in format 1, :data:`RECORD_HEAD_COLUMNS` in format 2), ``stored`` the explanation's UTF-8
    bytes (format 1) or the record (format 2)."""
    return _compact_array(head).encode() + b"\n" + stored


def entry_format_of(entry: Entry) -> int:
    """An entry with a record is of format 2 (read from, or sealed for, a format-2 ledger)."""
    return FORMAT_RECORD if entry.record else FORMAT_COLUMNS


def verify_row(entry: Entry) -> tuple:
    """The row :func:`verify_rows` checks for ``entry``, in :data:`ROW_COLUMNS` order of its format
    (what the stores' fast path returns)."""
    if entry.record:
        return entry_to_record_row(entry)
    row = entry_to_row(entry)
    return (*(row[i] for i in _ENTRY_ORDER), row[_ENTRY_HASH], row[_ENTRY_EXPLANATION].encode("utf-8"))


def entry_hash(entry: Entry) -> str:
    row = verify_row(entry)
    head = _LAYOUTS[entry_format_of(entry)].head
    return _sha256(entry_hash_input(row[:head], row[head + 1])).hexdigest()


def run_row_hash(row: Sequence[Any]) -> str:
    """The hash of a run row in :data:`~.store.RUN_COLUMNS` order (its ``hash`` value ignored)."""
    return _sha256(_compact_array([*row[:_RUN_HASH], *row[_RUN_HASH + 1 :]]).encode()).hexdigest()


def run_hash(run: Run) -> str:
    return run_row_hash(run_to_row(run))


def seal_entries(
    entries: Sequence[Entry], first_seq: int, prev_hash: str, entry_format: int = FORMAT_RECORD
) -> list[Entry]:
    """Number and chain ``entries`` after ``prev_hash``, for a ledger of ``entry_format`` (format 2:
    each entry's record is built once here, and stored as it is)."""
    out = []
    if entry_format == FORMAT_RECORD:
        for i, (entry, record) in enumerate(zip(entries, pack_records(entries), strict=True)):
            seq = first_seq + i
            head = [seq, entry.entry_id, entry.run_id, entry.period_id, entry.kind, entry.amount_cents, prev_hash]
            digest = _sha256(entry_hash_input(head, record)).hexdigest()  # = entry_hash
            out.append(attrs.evolve(entry, seq=seq, prev_hash=prev_hash, hash=digest, record=record))
            prev_hash = digest
        return out
    for i, entry in enumerate(entries):
        entry = attrs.evolve(entry, seq=first_seq + i, prev_hash=prev_hash, hash="", record=b"")
        entry = attrs.evolve(entry, hash=entry_hash(entry))
        prev_hash = entry.hash
        out.append(entry)
    return out


def seal_fields(
    fields: Sequence[dict[str, Any]], first_seq: int, prev_hash: str, entry_format: int = FORMAT_RECORD
) -> list[Entry]:
    """``seal_entries([Entry(seq=0, **f) for f in fields], ...)``, each entry built once (format 2:
    the records from the fields, then the sealed entries)."""
    if entry_format != FORMAT_RECORD:
        return seal_entries([Entry(seq=0, **f) for f in fields], first_seq, prev_hash, entry_format)
    texts = [record_text(as_recorded([f[c] for c in RECORD_FIELDS]), f["explanation"]) for f in fields]
    out = []
    for seq, f, record in zip(itertools.count(first_seq), fields, pack_texts(texts)):
        head = [seq, f["entry_id"], f["run_id"], f["period_id"], f["kind"], f["amount_cents"], prev_hash]
        digest = _sha256(entry_hash_input(head, record)).hexdigest()  # = entry_hash
        out.append(Entry(**f, seq=seq, prev_hash=prev_hash, hash=digest, record=record))
        prev_hash = digest
    return out


def seal_run(run: Run, seq: int, prev_hash: str) -> Run:
    run = attrs.evolve(run, seq=seq, prev_hash=prev_hash, hash="")
    return attrs.evolve(run, hash=run_hash(run))


@attrs.frozen
class ChainReport:
    """What :func:`verify_rows` found: ``problems`` (French, empty when intact) and a summary."""

    problems: list[str]
    runs: int
    entries: int
    total_cents: int
    head: str


def verify(runs: Sequence[Run], entries: Sequence[Entry]) -> list[str]:
    """Problems found in the stored history (French), empty when it is intact.

    ``runs`` and ``entries`` are in storage order (by ``seq``). Stores use the faster
    :func:`verify_store`, which reads the rows without building objects. A format-2 entry is
    also checked against its record (an audit bundle carries both)."""
    batches = [(fmt, [verify_row(e) for e in group]) for fmt, group in itertools.groupby(entries, entry_format_of)]
    problems = verify_rows([run_to_row(r) for r in runs], batches).problems
    return [*(p for e in entries if e.record and (p := _record_disagrees(e))), *problems]


def _record_disagrees(entry: Entry) -> str:
    """A problem when the fields of a format-2 ``entry`` are not those of its record, else ""."""
    try:
        same = unpack_record(entry.record) == (record_values(entry), entry.explanation)
    except (TypeError, ValueError, zlib.error):  # an unreadable record (json's errors are ValueErrors)
        same = False
    if same:
        return ""
    return f"écriture n° {entry.seq} ({entry.entry_id}) : champs ou explication différents de l'enregistrement stocké"


def verify_store(store: Any, batch: int = 2000, workers: int | None = None) -> ChainReport:
    """Verify the ledger of ``store`` (a :class:`~.store.LedgerStore`) on its raw rows, one snapshot.

    A long ledger is checked by ``workers`` processes at once (default: one per CPU, from
    ``NMR_VERIFY_WORKERS`` if set), each on a range of entries (:mod:`.verify_split`); whatever
    they find, or anything they cannot vouch for, is reported by the one-process path below."""
    from .verify_split import verify_split

    fmt = store.entry_format
    with store.reading() as session:
        runs = session.run_rows()
        report = verify_split(store, session, runs, batch, workers)
        if report is not None:
            return report
        return verify_rows(runs, ((fmt, rows) for rows in session.verify_batches(batch)))


def _record_hashes(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Format 2: the hash of each row of :data:`~.store.RECORD_ENTRY_COLUMNS`."""
    sha, head, s, i = _sha256, _RECORD_HEAD, _str, _int
    try:
        return [
            sha((head % (i(q), s(e), s(r), s(p), s(k), i(a), s(v))).encode() + b).hexdigest()
            for q, e, r, p, k, a, v, _, b in rows
        ]
    except TypeError:  # a value no honest row holds (a number as text, a float, a text record...)
        return [_hash_or_none(r[:-2], r[-1]) for r in rows]


def _column_hashes(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Format 1: the hash of each row of :data:`VERIFY_COLUMNS`."""
    sha, compact, head = _sha256, _compact_array, _LAYOUTS[FORMAT_COLUMNS].head
    try:
        return [sha(compact(r[:head]).encode() + b"\n" + r[head + 1]).hexdigest() for r in rows]
    except TypeError:  # hashed bytes that are not bytes (written by hand)
        return [_hash_or_none(r[:head], r[head + 1]) for r in rows]


def _hash_or_none(head: Sequence[Any], stored: Any) -> str:
    """The hash of one row read from a ledger edited by hand ("" when ``stored`` is not bytes)."""
    if not isinstance(stored, bytes | bytearray | memoryview):
        return ""
    return _sha256(entry_hash_input(head, bytes(stored))).hexdigest()


_HASHES = {FORMAT_COLUMNS: _column_hashes, FORMAT_RECORD: _record_hashes}


@attrs.frozen
class EntryScan:
    """What :func:`scan_entries` found in consecutive entry rows: ``problems`` (French), the
    ``count`` of rows from ``first_seq``, the stored ``first_prev`` hash of the first row, the
    ``last_hash``, the ``total`` of the amounts and ``by_run`` (run_id -> [count, total, first
    seq, last hash], in ledger order)."""

    problems: list[str]
    first_seq: int
    count: int
    first_prev: str | None
    last_hash: str
    total: int
    by_run: dict[str, list]


def scan_entries(
    batches: Iterable[tuple[int, Sequence[Sequence[Any]]]], expected: int = 1, prev: str | None = GENESIS
) -> EntryScan:
    """Check entry rows (``batches`` of ``(entry format, rows in ROW_COLUMNS[entry format]
    order)``, in ``seq`` order, the first one expected at position ``expected`` and chained to
    ``prev``; ``prev=None``: to whatever the first row stores, for a range whose predecessor is
    checked by the caller): hashes, chain, positions and kinds, and each run's aggregates."""
    problems: list[str] = []
    first_seq, first_prev, total = expected, None, 0
    # run_id -> [count, total, first seq, last hash] over the entries in ledger order
    by_run: dict[str, list] = {}
    for fmt, rows in batches:
        if not rows:
            continue
        lay = _LAYOUTS[fmt]
        _SEQ, _ID, _RUN, _KIND, _AMOUNT, _PREV = lay.seq, lay.id, lay.run, lay.kind, lay.amount, lay.prev
        if first_prev is None:
            first_prev = rows[0][_PREV]
            prev = first_prev if prev is None else prev
        seqs = [r[_SEQ] for r in rows]
        hashes = [r[lay.head] for r in rows]
        prevs = [r[_PREV] for r in rows]
        computed = _HASHES[fmt](rows)
        n = len(rows)
        ok_seq = seqs == list(range(expected, expected + n))
        ok_chain = prevs[0] == prev and prevs[1:] == hashes[:-1]
        ok_hash = computed == hashes
        kinds = {r[_KIND] for r in rows}
        if not (ok_seq and ok_chain and ok_hash and kinds <= _KINDS):
            for i, r in enumerate(rows):
                where = f"écriture n° {r[_SEQ]} ({r[_ID]})"
                if r[_SEQ] != expected + i:
                    problems.append(
                        f"{where} : position {r[_SEQ]} au lieu de {expected + i} (écriture manquante ou insérée)"
                    )
                if r[_PREV] != (hashes[i - 1] if i else prev):
                    problems.append(
                        f"{where} : chaînage rompu (l'empreinte précédente ne correspond pas ; ordre modifié ?)"
                    )
                if computed[i] != hashes[i]:
                    problems.append(f"{where} : contenu modifié (empreinte recalculée différente)")
                if r[_KIND] not in _KINDS:
                    problems.append(f"{where} : nature d'écriture inconnue « {r[_KIND]} »")
        prev, expected = hashes[-1], expected + n
        start = 0
        for run_id, group in itertools.groupby(r[_RUN] for r in rows):
            size = sum(1 for _ in group)
            amounts = [r[_AMOUNT] for r in rows[start : start + size]]
            try:
                amount = sum(amounts)
            except TypeError:  # a non-number written over an amount: its hash is reported above
                amount = sum(a for a in amounts if isinstance(a, int))
            agg = by_run.get(run_id)
            if agg is None:
                by_run[run_id] = [size, amount, seqs[start], hashes[start + size - 1]]
            else:
                agg[0] += size
                agg[1] += amount
                agg[3] = hashes[start + size - 1]
            total += amount
            start += size
    count = expected - first_seq
    return EntryScan(problems, first_seq, count, first_prev, prev if count else "", total, by_run)


def verify_rows(runs: Sequence[Sequence[Any]], batches: Iterable[tuple[int, Sequence[Sequence[Any]]]]) -> ChainReport:
    """Check the run rows (:data:`~.store.RUN_COLUMNS` order) and the entry rows (``batches`` of
    ``(entry format, rows in ROW_COLUMNS[entry format] order)``), both in ``seq`` order: hashes,
    chain, positions, kinds, then each run's count, total, first entry and last hash."""
    return chain_report(runs, scan_entries(batches))


def chain_report(runs: Sequence[Sequence[Any]], scan: EntryScan) -> ChainReport:
    """The report on a whole ledger: the entries' ``scan`` (from position 1) and the runs' checks."""
    problems = [*scan.problems, *_check_runs(runs, scan.by_run)]
    return ChainReport(problems, len(runs), scan.count, scan.total, scan.last_hash)


def _check_runs(rows: Sequence[Sequence[Any]], by_run: dict[str, list]) -> list[str]:
    problems = []
    prev = GENESIS
    known = set()
    for expected_seq, row in enumerate(rows, start=1):
        run = dict(zip(RUN_COLUMNS, row, strict=True))
        where = f"passage {run['run_id']}"
        known.add(run["run_id"])
        if run["seq"] != expected_seq:
            problems.append(f"{where} : position {run['seq']} au lieu de {expected_seq}")
        if run["prev_hash"] != prev:
            problems.append(f"{where} : chaînage des passages rompu")
        if run["hash"] != run_row_hash(row):
            problems.append(f"{where} : contenu modifié (empreinte recalculée différente)")
        prev = run["hash"]
        count, total, first_seq, last_hash = by_run.get(run["run_id"], (0, 0, None, None))
        if count != run["entry_count"]:
            problems.append(f"{where} : {count} écriture(s) trouvée(s), {run['entry_count']} enregistrée(s)")
        if total != run["total_cents"]:
            problems.append(
                f"{where} : total des écritures {format_eur(total)} au lieu de {format_eur(run['total_cents'])}"
            )
        if count and (first_seq != run["first_entry_seq"] or last_hash != run["last_entry_hash"]):
            problems.append(f"{where} : les écritures ne sont pas celles enregistrées pour ce passage")
    for run_id in sorted(set(by_run) - known):
        problems.append(f"écritures du passage inconnu {run_id} ({by_run[run_id][0]})")
    return problems
