"""SQLite backend: one file, writers serialised by ``BEGIN IMMEDIATE``, WAL journal."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigurationError
from .store import LedgerStore, Session, entry_format, tables_ddl, upgrade_statements

TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'ledger is append-only: {op} on {table} refused'); END"
    for table in ("entries", "runs")
    for op in ("UPDATE", "DELETE")
]
#: Seconds a writer waits for another one before giving up.
BUSY_TIMEOUT = 120


def _patiently(step: Callable[[], object], deadline: float) -> None:  # deadline in monotonic seconds
    """Run ``step`` again while another process holds the lock, until ``deadline``.

    SQLite does not call its busy handler for every lock: switching a new file to WAL, or reading
    the schema while another process creates it, can fail at once with "database is locked".
    """
    pause = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


class SqliteStore(LedgerStore):
    placeholder = "?"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        if not self.path.parent.is_dir():
            raise ConfigurationError(f"registre : le dossier {self.path.parent} n'existe pas")
        deadline = time.monotonic() + BUSY_TIMEOUT
        try:
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            _patiently(lambda: self.conn.execute("PRAGMA journal_mode=WAL"), deadline)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            _patiently(self._install, deadline)
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"registre {self.path} illisible : {exc}") from exc

    def _install(self) -> None:
        """Create the tables and triggers, or add the columns of a newer version, if needed."""
        if not self._installed():
            with self.writing() as session:  # a new ledger: format 2 (tables already there are kept)
                for sql in (*tables_ddl("BLOB"), *TRIGGERS):
                    session.cursor.execute(sql)
        if upgrade_statements(self._columns("runs")):
            with self.writing() as session:  # look again under the lock: another process may have done it
                for sql in upgrade_statements(self._columns("runs")):
                    session.cursor.execute(sql)
        self.entry_format = entry_format(self._columns("entries"))

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}

    def _installed(self) -> bool:
        """Tables and append-only triggers all present (then opening takes no write lock)."""
        names = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}
        wanted = {"runs", "entries"} | {t.split()[5] for t in TRIGGERS}
        return wanted <= names

    @property
    def description(self) -> str:
        return f"SQLite {self.path}"

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Session]:
        cur = self.conn.cursor()
        cur.execute(begin)
        try:
            yield Session(self, cur)
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self._transaction("BEGIN IMMEDIATE") as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._transaction("BEGIN DEFERRED") as session:
            yield session

    def close(self) -> None:
        self.conn.close()
