"""Ledger storage: one interface, two backends chosen by URL.

``sqlite:///path/to/nmr-ledger.sqlite`` (embedded default, a file beside the data) or
``postgresql://user@host:port/db?schema=name`` (several officers at once; ``schema``
defaults to ``nmr_ledger``). Both keep the same two tables, refuse UPDATE and DELETE
with triggers, and serialise writers: :meth:`LedgerStore.writing` holds an exclusive
lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL advisory lock) for one transaction.

Two layouts of the ``entries`` table (the *entry format*, fixed when a ledger is created and
kept for its whole life; ``runs`` is the same in both):

- **format 1** (ledgers created before format 2): one column per entry field
  (:data:`ENTRY_COLUMNS`), the explanation as text;
- **format 2** (every new ledger): the columns that are queried or checked row by row
  (:data:`RECORD_ENTRY_COLUMNS`) and one ``record`` blob: ``zlib`` of the compact JSON array of
  the other fields (:data:`RECORD_FIELDS`), a line feed, and the explanation (UTF-8). A ledger
  file takes ≈ 2 KB per entry instead of ≈ 4.4 KB, and verifying reads 9 values per row, not 23.

:mod:`.hashchain` documents what the hash covers in each format.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .model import GENESIS, Entry, Run

DEFAULT_FILE = "nmr-ledger.sqlite"

RUN_COLUMNS = (
    "seq",
    "run_id",
    "business_date",
    "recorded_at",
    "selectors",
    "input_fingerprint",
    "parameter_fingerprint",
    "plugins",
    "entry_count",
    "total_cents",
    "first_entry_seq",
    "last_entry_hash",
    "prev_hash",
    "hash",
    "known_on",
    "data_files",
)
#: Run columns added after the first schema: created with a default on older ledgers.
ADDED_RUN_COLUMNS = ("known_on", "data_files")
ENTRY_COLUMNS = (
    "seq",
    "entry_id",
    "run_id",
    "contract_id",
    "module",
    "period_id",
    "component",
    "payee_id",
    "instalment",
    "kind",
    "amount_cents",
    "due_date",
    "business_date",
    "recorded_at",
    "label",
    "input_fingerprint",
    "parameter_fingerprint",
    "plugin",
    "plugin_version",
    "explanation",
    "corrects",
    "prev_hash",
    "hash",
)
_INTEGER = {"seq", "entry_count", "total_cents", "first_entry_seq", "amount_cents"}
#: Entry formats (layouts of the ``entries`` table): format 1, one column per field; format 2,
#: :data:`RECORD_ENTRY_COLUMNS` with the other fields and the explanation in a compressed record.
FORMAT_COLUMNS, FORMAT_RECORD = 1, 2
#: The ``entries`` columns of a format-2 ledger, in table order.
RECORD_ENTRY_COLUMNS = ("seq", "entry_id", "run_id", "period_id", "kind", "amount_cents", "prev_hash", "hash", "record")
#: The fields of a format-2 record, in order (before the line feed and the explanation).
RECORD_FIELDS = tuple(c for c in ENTRY_COLUMNS if c not in (*RECORD_ENTRY_COLUMNS, "explanation"))
#: zlib level of the records: 1 is ≈ 30 % faster to write than 6 for 4 % more bytes; any level
#: reads back the same (the hash covers the stored bytes, whatever level wrote them).
RECORD_LEVEL = 1


def _ddl_table(name: str, columns: Sequence[str], extra: str = "", blob: str = "BLOB") -> str:
    cols = []
    for c in columns:
        kind = "BIGINT" if c in _INTEGER else blob if c == "record" else "TEXT"
        suffix = " PRIMARY KEY" if c == "seq" else " NOT NULL"
        if name == "runs" and c in ADDED_RUN_COLUMNS:
            suffix += " DEFAULT ''"
        if (c == "run_id" and name == "runs") or c == "entry_id":
            suffix += " UNIQUE"
        cols.append(f"{c} {kind}{suffix}")
    if extra:
        cols.append(extra)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  " + ",\n  ".join(cols) + "\n)"


_INDEXES = (
    "CREATE INDEX IF NOT EXISTS entries_by_run ON entries (run_id)",
    "CREATE INDEX IF NOT EXISTS entries_by_period ON entries (period_id)",
)
#: The tables of a format-1 ledger (what ledgers were created with before format 2).
TABLES_DDL = (
    _ddl_table("runs", RUN_COLUMNS),
    _ddl_table("entries", ENTRY_COLUMNS, "FOREIGN KEY (run_id) REFERENCES runs (run_id)"),
    *_INDEXES,
)


def tables_ddl(blob: str) -> tuple[str, ...]:
    """The tables of a new ledger (format 2); ``blob`` is the database's binary type."""
    entries = _ddl_table("entries", RECORD_ENTRY_COLUMNS, "FOREIGN KEY (run_id) REFERENCES runs (run_id)", blob)
    return (_ddl_table("runs", RUN_COLUMNS), entries, *_INDEXES)


def entry_format(entry_columns: set[str]) -> int:
    """The format of a ledger whose ``entries`` table has ``entry_columns``."""
    return FORMAT_RECORD if "record" in entry_columns else FORMAT_COLUMNS


#: Called with (message, done, total) during long work (the CLI shows a progress bar).
Progress = Callable[[str, int, int], None]


def upgrade_statements(existing_run_columns: set[str]) -> list[str]:
    """ALTER TABLE statements adding the run columns an older ledger lacks (backward compatible:
    old rows read as "" and keep their hash)."""
    return [
        f"ALTER TABLE runs ADD COLUMN {c} TEXT NOT NULL DEFAULT ''"
        for c in ADDED_RUN_COLUMNS
        if c not in existing_run_columns
    ]


def run_to_row(run: Run) -> tuple:
    p = run.payload()
    p["hash"] = run.hash
    p["known_on"] = run.known_on
    p["data_files"] = run.data_files
    p["selectors"] = json.dumps(p["selectors"], ensure_ascii=False)
    return tuple(p[c] for c in RUN_COLUMNS)


def entry_to_row(entry: Entry) -> tuple:
    p = entry.payload()
    p["hash"] = entry.hash
    p["corrects"] = json.dumps(p["corrects"])
    return tuple(p[c] for c in ENTRY_COLUMNS)


def json_encoder(sort_keys: bool) -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)`` with
    json's C encoder built once, not per call (same text; ≈ 5× faster for a small value)."""
    make = json.encoder.c_make_encoder
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return lambda value: json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)
    # no circular check (markers None): a cycle, which no ledger value holds, recurses until RecursionError
    default, text = json.JSONEncoder().default, json.encoder.c_encode_basestring
    encode = make(None, default, text, None, ":", ",", sort_keys, False, True)
    return lambda value: "".join(encode(value, 0))


_compact = json_encoder(sort_keys=False)


def record_values(entry: Entry) -> list[Any]:
    """The values of :data:`RECORD_FIELDS` as a record holds them (dates as ISO text, ``corrects``
    as a list)."""
    return as_recorded([getattr(entry, c) for c in RECORD_FIELDS])


def as_recorded(values: list[Any]) -> list[Any]:
    """``values`` of :data:`RECORD_FIELDS` (an entry's) as a record holds them (see :func:`record_values`)."""
    for i in _RECORD_DATES:
        values[i] = values[i].isoformat()
    values[_RECORD_CORRECTS] = list(values[_RECORD_CORRECTS])
    return values


def record_text(values: list[Any], explanation: str) -> bytes:
    """A record before compression: the compact JSON array of ``values`` (:func:`record_values`),
    a line feed and the explanation, UTF-8."""
    return _compact(values).encode() + b"\n" + explanation.encode()


def _record_text(entry: Entry) -> bytes:
    return record_text(record_values(entry), entry.explanation)


def pack_record(entry: Entry) -> bytes:
    """The format-2 record of ``entry``: zlib(compact JSON array of :func:`record_values` + line
    feed + explanation, UTF-8)."""
    return zlib.compress(_record_text(entry), RECORD_LEVEL)


def pack_records(entries: Sequence[Entry]) -> list[bytes]:
    """:func:`pack_record` of each entry (see :func:`pack_texts`)."""
    return pack_texts([_record_text(e) for e in entries])


def pack_texts(texts: Sequence[bytes]) -> list[bytes]:
    """Each :func:`record_text` compressed; zlib (most of the time, and it releases the GIL) runs
    in two threads for a large posting."""
    if len(texts) < 512:
        return [zlib.compress(t, RECORD_LEVEL) for t in texts]

    def packed(part: Sequence[bytes]) -> list[bytes]:
        return [zlib.compress(t, RECORD_LEVEL) for t in part]

    half = len(texts) // 2
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(packed, texts[half:])
        return packed(texts[:half]) + second.result()


_RECORD_DATES = [RECORD_FIELDS.index(c) for c in ("due_date", "business_date")]
_RECORD_CORRECTS = RECORD_FIELDS.index("corrects")


def unpack_record(record: bytes) -> tuple[list[Any], str]:
    """(the values of :data:`RECORD_FIELDS` as stored, the explanation) of a format-2 record."""
    unzip = zlib.decompressobj()
    text = unzip.decompress(record)
    if not unzip.eof or unzip.unused_data:
        raise ValueError("enregistrement tronqué ou suivi d'autres octets")
    head, _, explanation = text.partition(b"\n")
    values = json.loads(head)
    if not isinstance(values, list) or len(values) != len(RECORD_FIELDS):
        raise ValueError("champs de l'enregistrement inattendus")
    return values, explanation.decode("utf-8")


def entry_to_record_row(entry: Entry) -> tuple:
    """The stored row of ``entry`` in a format-2 ledger (its record built if not sealed with one)."""
    return (
        entry.seq,
        entry.entry_id,
        entry.run_id,
        entry.period_id,
        entry.kind,
        entry.amount_cents,
        entry.prev_hash,
        entry.hash,
        entry.record or pack_record(entry),
    )


def entry_from_record_row(row: Sequence[Any]) -> Entry:
    """The entry of a format-2 row (:data:`RECORD_ENTRY_COLUMNS` order)."""
    seq, entry_id, run_id, period_id, kind, amount, prev_hash, hash_, record = row
    try:
        values, explanation = unpack_record(bytes(record))
        d = dict(zip(RECORD_FIELDS, values, strict=True))
        d["due_date"] = dt.date.fromisoformat(d["due_date"])
        d["business_date"] = dt.date.fromisoformat(d["business_date"])
        d["corrects"] = tuple(d["corrects"])
    except (TypeError, ValueError, zlib.error) as exc:  # json's errors are ValueErrors
        raise ConfigurationError(
            f"registre : écriture n° {seq} ({entry_id}) illisible ({exc}) : l'enregistrement stocké a été "
            "modifié (nmr ledger verify le signale)"
        ) from None
    return Entry(
        seq=int(seq),
        entry_id=entry_id,
        run_id=run_id,
        period_id=period_id,
        kind=kind,
        amount_cents=int(amount),
        prev_hash=prev_hash,
        hash=hash_,
        explanation=explanation,
        record=bytes(record),
        **d,
    )


def run_from_row(row: Sequence[Any]) -> Run:
    d = dict(zip(RUN_COLUMNS, row, strict=True))
    d["business_date"] = dt.date.fromisoformat(d["business_date"])
    d["selectors"] = tuple(json.loads(d["selectors"]))
    for c in ("seq", "entry_count", "total_cents", "first_entry_seq"):
        d[c] = int(d[c])
    return Run(**d)


def entry_from_row(row: Sequence[Any]) -> Entry:
    d = dict(zip(ENTRY_COLUMNS, row, strict=True))
    d["due_date"] = dt.date.fromisoformat(d["due_date"])
    d["business_date"] = dt.date.fromisoformat(d["business_date"])
    d["corrects"] = tuple(json.loads(d["corrects"]))
    d["seq"] = int(d["seq"])
    d["amount_cents"] = int(d["amount_cents"])
    return Entry(**d)


class Session:
    """Reads (and, inside :meth:`LedgerStore.writing`, appends) within one transaction."""

    def __init__(self, store: LedgerStore, cursor: Any):
        self.store = store
        self.cursor = cursor

    def _q(self, sql: str) -> str:
        return sql.replace("?", self.store.placeholder)

    def runs(self) -> list[Run]:
        return [run_from_row(r) for r in self.run_rows()]

    def run_rows(self) -> list[tuple]:
        """The runs as stored (:data:`RUN_COLUMNS` order), by ``seq``."""
        self.cursor.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY seq")
        return [tuple(r) for r in self.cursor.fetchall()]

    def verify_batches(self, batch: int = 2000, seqs: tuple[int, int] | None = None) -> Iterator[list[tuple]]:
        """Every entry as stored (only those with ``first <= seq <= last`` when ``seqs`` is
        ``(first, last)``), by ``seq``, in lists of at most ``batch`` rows, columns in the order
        :func:`~.hashchain.verify_rows` checks for the ledger's format
        (:data:`~.hashchain.VERIFY_COLUMNS`: format 1, the explanation as its UTF-8 bytes;
        :data:`RECORD_ENTRY_COLUMNS`: format 2), with no object built and nothing decoded."""
        if self.store.entry_format == FORMAT_RECORD:
            columns = ", ".join(RECORD_ENTRY_COLUMNS)
        else:
            from .hashchain import ENTRY_HEAD_COLUMNS

            columns = f"{', '.join(ENTRY_HEAD_COLUMNS)}, hash, {self.store.explanation_bytes}"
        where = "" if seqs is None else f" WHERE seq BETWEEN {int(seqs[0])} AND {int(seqs[1])}"
        return self.store.stream(self, f"SELECT {columns} FROM entries{where} ORDER BY seq", batch)

    def seq_bounds(self) -> tuple[Any, Any]:
        """The lowest and highest entry ``seq`` as stored (``None`` when there is no entry)."""
        self.cursor.execute("SELECT (SELECT min(seq) FROM entries), (SELECT max(seq) FROM entries)")  # each on the key
        low, high = self.cursor.fetchone()
        return low, high

    def entries(self, run_id: str | None = None, period_ids: Sequence[str] | None = None) -> list[Entry]:
        """Entries in ledger order; only one run's, or only those of some periods, when asked."""
        record = self.store.entry_format == FORMAT_RECORD
        sql = f"SELECT {', '.join(RECORD_ENTRY_COLUMNS if record else ENTRY_COLUMNS)} FROM entries"
        if run_id is not None:
            self.cursor.execute(self._q(sql + " WHERE run_id = ? ORDER BY seq"), (run_id,))
        elif period_ids is not None:
            if not period_ids:
                return []
            marks = ", ".join("?" for _ in period_ids)
            self.cursor.execute(self._q(sql + f" WHERE period_id IN ({marks}) ORDER BY seq"), tuple(period_ids))
        else:
            self.cursor.execute(sql + " ORDER BY seq")
        build = entry_from_record_row if record else entry_from_row
        return [build(r) for r in self.cursor.fetchall()]

    def head(self) -> tuple[int, str, int, str]:
        """(last entry seq, its hash, last run seq, its hash); zeros and GENESIS when empty."""
        self.cursor.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        e = self.cursor.fetchone()
        self.cursor.execute("SELECT seq, hash FROM runs ORDER BY seq DESC LIMIT 1")
        r = self.cursor.fetchone()
        return (int(e[0]) if e else 0, e[1] if e else GENESIS, int(r[0]) if r else 0, r[1] if r else GENESIS)

    def append(self, run: Run, entries: Sequence[Entry], progress: Progress | None = None, chunk: int = 25) -> None:
        """Insert a run and its entries (the caller's transaction commits them together)."""
        cols = ", ".join(RUN_COLUMNS)
        marks = ", ".join("?" for _ in RUN_COLUMNS)
        self.cursor.execute(self._q(f"INSERT INTO runs ({cols}) VALUES ({marks})"), run_to_row(run))
        columns, to_row = ENTRY_COLUMNS, entry_to_row
        if self.store.entry_format == FORMAT_RECORD:
            columns, to_row = RECORD_ENTRY_COLUMNS, entry_to_record_row
        marks = ", ".join("?" for _ in columns)
        sql = self._q(f"INSERT INTO entries ({', '.join(columns)}) VALUES ({marks})")
        for start in range(0, len(entries), chunk):
            self.cursor.executemany(sql, [to_row(e) for e in entries[start : start + chunk]])
            if progress:
                progress("écriture", min(start + chunk, len(entries)), len(entries))


class LedgerStore(abc.ABC):
    """A ledger database. Open with :func:`open_store`; close when done."""

    placeholder = "?"
    url: str
    #: The ledger's entry format (:data:`FORMAT_RECORD` for a new ledger), set when it is opened.
    entry_format: int = FORMAT_RECORD
    #: SQL expression of the explanation as UTF-8 bytes (hashed as stored, not decoded).
    explanation_bytes = "CAST(explanation AS BLOB)"

    def stream(self, session: Session, sql: str, batch: int) -> Iterator[list[tuple]]:
        """The rows of ``sql`` in ``session``'s transaction, in lists of at most ``batch``."""
        session.cursor.execute(sql)
        while rows := session.cursor.fetchmany(batch):
            yield rows

    @abc.abstractmethod
    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One exclusive write transaction: committed on success, rolled back on error."""

    @abc.abstractmethod
    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A consistent snapshot for reads."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """Where the ledger is, for messages (no password)."""

    def runs(self) -> list[Run]:
        with self.reading() as s:
            return s.runs()

    def entries(self, run_id: str | None = None) -> list[Entry]:
        with self.reading() as s:
            return s.entries(run_id)

    def snapshot(self) -> tuple[list[Run], list[Entry]]:
        with self.reading() as s:
            return s.runs(), s.entries()

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_url(data_dir: str | Path) -> str:
    """``sqlite:///<folder containing the data folder>/nmr-ledger.sqlite``."""
    return "sqlite:///" + str(Path(data_dir).parent / DEFAULT_FILE)


def open_store(url: str) -> LedgerStore:
    """Open (creating on first use) the ledger at ``url``."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        return SqliteStore(Path(url[len("sqlite:///") :]))
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigurationError(
        f"adresse de registre non reconnue « {url} » : attendu sqlite:///chemin/vers/fichier.sqlite "
        "ou postgresql://utilisateur@hôte:port/base"
    )
