"""Entry formats: a ledger written before format 2 keeps verifying, reading and posting in format 1."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from ledger_support import make_workspace_files

from nmr_engine.cli.main import cli
from nmr_engine.ledger import commit, open_store, verify
from nmr_engine.ledger.hashchain import verify_store
from nmr_engine.ledger.postgres import split_url
from nmr_engine.ledger.store import ENTRY_COLUMNS, RUN_COLUMNS

#: Written by the code before format 2 (see its README).
FORMAT_1 = Path(__file__).resolve().parents[1] / "data" / "ledger-format-1" / "ledger.sqlite"


def format_1_ledger(ledgers, tmp_path: Path) -> str:
    """The committed format-1 ledger: copied (SQLite) or its rows loaded as stored (PostgreSQL)."""
    if ledgers.backend == "sqlite":
        path = tmp_path / "format-1.sqlite"
        shutil.copy(FORMAT_1, path)
        return f"sqlite:///{path}"
    import psycopg

    url = ledgers.new(entry_format=1)
    src = sqlite3.connect(FORMAT_1)
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo) as conn:
        conn.execute(f"SET search_path TO {schema}")
        for table, columns in (("runs", RUN_COLUMNS), ("entries", ENTRY_COLUMNS)):
            rows = src.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY seq").fetchall()
            marks = ", ".join("%s" for _ in columns)
            conn.cursor().executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    src.close()
    return url


def _entry_columns(url: str) -> set[str]:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            return {r[1] for r in conn.execute("PRAGMA table_info(entries)")}
    import psycopg

    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo) as conn:
        sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'entries'"
        return {r[0] for r in conn.execute(sql, (schema,))}


def test_a_format_1_ledger_still_verifies_reads_and_takes_format_1_entries(ledgers, tmp_path, two_proposals):
    url = format_1_ledger(ledgers, tmp_path)
    with open_store(url) as store:
        assert store.entry_format == 1
        report = verify_store(store, batch=3)
        runs, entries = store.snapshot()
    assert report.problems == [] and verify(runs, entries) == []
    assert (report.runs, report.entries, report.total_cents) == (1, 7, 468_333)
    assert not any(e.record for e in entries)
    first = entries[0]
    assert first.explanation_dict()["posting"]["amount_cents"] == first.amount_cents == 25_000

    root = make_workspace_files(tmp_path / "ws")
    where = ["--contracts", str(root / "contracts"), "--data", str(root / "data"), "--ledger", url]
    shown = CliRunner().invoke(cli, ["explain", first.entry_id, *where])
    assert shown.exit_code == 0, shown.output
    assert f"Écriture {first.entry_id}" in shown.output and "250,00" in shown.output

    # the late patient: one regularisation, chained after the old entries, in the old format
    _, late = two_proposals
    with open_store(url) as store:
        posted = commit(store, late)
        report = verify_store(store, batch=3)
        runs, entries = store.snapshot()
    assert [(e.seq, e.kind, e.amount_cents) for e in posted.entries] == [(8, "regularisation", 25_000)]
    assert posted.entries[0].prev_hash == entries[6].hash and not posted.entries[0].record
    assert report.problems == [] and verify(runs, entries) == []
    assert (report.runs, report.entries, report.total_cents) == (2, 8, 468_333 + 25_000)
    assert _entry_columns(url) == set(ENTRY_COLUMNS)
    ok = CliRunner().invoke(cli, ["ledger", "verify", "--ledger", url])
    assert ok.exit_code == 0 and "Registre intègre" in ok.output and "8 écriture(s)" in ok.output


def test_a_new_ledger_is_of_format_2(ledger_url, two_proposals):
    first, _ = two_proposals
    with open_store(ledger_url) as store:
        assert store.entry_format == 2
        posted = commit(store, first)
        entries = store.entries()
    assert _entry_columns(ledger_url) == {
        "seq", "entry_id", "run_id", "period_id", "kind", "amount_cents", "prev_hash", "hash", "record"
    }  # fmt: skip
    assert entries == list(posted.entries) and [e.record for e in entries] == [e.record for e in posted.entries]
    assert entries[0].explanation_dict()["posting"]["amount_cents"] == entries[0].amount_cents == 25_000
