"""PostgreSQL backend (psycopg 3): writers serialised by a transaction-level advisory lock.

The URL may carry ``?schema=name`` (default ``nmr_ledger``): the tables live in that
schema, created on first use. Reads use a REPEATABLE READ snapshot.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError
from .store import LedgerStore, Session, entry_format, tables_ddl, upgrade_statements

DEFAULT_SCHEMA = "nmr_ledger"
_FUNCTION = """
CREATE OR REPLACE FUNCTION nmr_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$
"""
TRIGGERS = [
    f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION nmr_ledger_append_only()"
    for table in ("entries", "runs")
] + [
    f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
    "FOR EACH STATEMENT EXECUTE FUNCTION nmr_ledger_append_only()"
    for table in ("entries", "runs")
]


def split_url(url: str) -> tuple[str, str]:
    """(libpq URL without ``schema``, schema name)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), DEFAULT_SCHEMA)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ConfigurationError(f"nom de schéma PostgreSQL invalide « {schema} » (minuscules, chiffres, _)")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _lock_key(schema: str) -> int:
    """A 63-bit advisory-lock key per schema."""
    return int.from_bytes(hashlib.sha256(f"nmr-ledger:{schema}".encode()).digest()[:8], "big") >> 1


class PostgresStore(LedgerStore):
    placeholder = "%s"
    explanation_bytes = "convert_to(explanation, 'UTF8')"

    def __init__(self, url: str):
        import psycopg

        self._psycopg = psycopg
        self.conninfo, self.schema = split_url(url)
        self.url = url
        self.lock_key = _lock_key(self.schema)
        try:
            self.conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise ConfigurationError(f"registre PostgreSQL injoignable ({self.description}) : {exc}") from exc
        if not self._installed():
            self._install()
        self.conn.execute(f"SET search_path TO {self.schema}")
        self._upgrade()

    def _upgrade(self) -> None:
        """Add the run columns an older ledger lacks (under the write lock); read the entry format."""
        missing = upgrade_statements(self._columns("runs"))
        if missing:
            with self.writing() as session:
                for sql in missing:
                    session.cursor.execute(sql.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"))
        self.entry_format = entry_format(self._columns("entries"))

    def _columns(self, table: str) -> set[str]:
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (self.schema, table),
        ).fetchall()
        return {r[0] for r in rows}

    def _installed(self) -> bool:
        """Tables and append-only triggers all present (then opening takes no lock)."""
        row = self.conn.execute(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND t.tgname = ANY(%s)",
            (self.schema, [t.split()[4] for t in TRIGGERS]),
        ).fetchone()
        return row[0] == len(TRIGGERS)

    def _install(self) -> None:
        with self._transaction("BEGIN") as session:
            cur = session.cursor
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            for sql in (*tables_ddl("BYTEA"), _FUNCTION, *TRIGGERS):  # a new ledger: format 2
                cur.execute(sql)

    @property
    def description(self) -> str:
        parts = urlsplit(self.conninfo)
        host = parts.hostname or "local"
        return f"PostgreSQL {host}:{parts.port or 5432}{parts.path} schéma {self.schema}"

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Session]:
        cur = self.conn.cursor()
        cur.execute(begin)
        try:
            yield Session(self, cur)
        except BaseException:
            if not self.conn.closed:
                self.conn.rollback()
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self._transaction("BEGIN ISOLATION LEVEL READ COMMITTED") as session:
            # Held until COMMIT/ROLLBACK: one writer at a time; each statement after it
            # sees everything the previous writer committed.
            session.cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as session:
            yield session

    def stream(self, session: Session, sql: str, batch: int) -> Iterator[list[tuple]]:
        """Rows sent by the server as the client checks the previous ones (libpq chunked rows:
        the whole result is never held at once), binary format (the explanation's bytes as
        they are, not hex text to decode)."""
        with self.conn.cursor(binary=True) as cursor:
            rows = cursor.stream(sql, size=batch)
            while part := list(itertools.islice(rows, batch)):
                yield part

    def close(self) -> None:
        self.conn.close()
