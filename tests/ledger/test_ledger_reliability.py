"""Reliability on both backends: tampering is detected, concurrent posts post once,
and a posting killed at any moment leaves none or all of its run."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path
from queue import Empty

import pytest
from click.testing import CliRunner
from ledger_support import ESSAI_PLUGIN, add_late_patient, raw_connection, workspace

from nmr_engine.cli.main import cli
from nmr_engine.ledger import commit, open_store, plan, prepare, verify
from nmr_engine.ledger.hashchain import VERIFY_COLUMNS, entry_hash, verify_store
from nmr_engine.ledger.store import (
    _INTEGER,
    ENTRY_COLUMNS,
    RECORD_ENTRY_COLUMNS,
    RECORD_FIELDS,
    RUN_COLUMNS,
    Session,
    unpack_record,
)

RUN_DATE = dt.date(2013, 1, 15)
REPO = Path(__file__).resolve().parents[2]


def _posted(url, proposals):
    with open_store(url) as store:
        for proposal in proposals:
            commit(store, proposal)
        return store.snapshot()


def tamper(url: str, *statements) -> None:
    """Edit the stored history directly, dropping the append-only triggers first. A statement is
    SQL, or a function called with the connection and the parameter mark (``?`` or ``%s``)."""
    with raw_connection(url) as (conn, mark):
        if mark == "?":
            for name in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]:
                conn.execute(f"DROP TRIGGER {name}")
        else:
            for table in ("entries", "runs"):
                conn.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        for sql in statements:
            sql(conn, mark) if callable(sql) else conn.execute(sql)


def in_record(seq: int, field: str, change):
    """A statement rewriting the record of entry ``seq`` (format 2) with ``field`` (one of
    RECORD_FIELDS, or "explanation") replaced by ``change(old value)``: decompressed, edited and
    compressed again, as someone editing the database by hand would do."""

    def run(conn, mark):
        record = conn.execute(f"SELECT record FROM entries WHERE seq = {seq}").fetchone()[0]
        values, explanation = unpack_record(bytes(record))
        if field == "explanation":
            explanation = change(explanation)
        else:
            values[RECORD_FIELDS.index(field)] = change(values[RECORD_FIELDS.index(field)])
        head = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
        new = zlib.compress(head.encode() + b"\n" + explanation.encode())
        conn.execute(f"UPDATE entries SET record = {mark} WHERE seq = {seq}", (new,))

    return run


TAMPERING = {
    "amount": (["UPDATE entries SET amount_cents = amount_cents + 1 WHERE seq = 3"], "écriture n° 3 "),
    "business date": (["UPDATE entries SET business_date = '2012-12-01' WHERE seq = 2"], "écriture n° 2 "),
    "due date": (["UPDATE entries SET due_date = '2011-12-31' WHERE seq = 5"], "écriture n° 5 "),
    "order": (
        [
            "UPDATE entries SET seq = -1 WHERE seq = 2",
            "UPDATE entries SET seq = 2 WHERE seq = 4",
            "UPDATE entries SET seq = 4 WHERE seq = -1",
        ],
        "chaînage rompu",
    ),
    "removal": (["DELETE FROM entries WHERE seq = 6"], "écriture manquante"),
    "explanation": (["UPDATE entries SET explanation = replace(explanation, '250', '260') WHERE seq = 1"], "n° 1 "),
    "run total": (["UPDATE runs SET total_cents = 0 WHERE seq = 1"], "contenu modifié"),
}
#: The same edits in a format-2 ledger, for the fields kept in the record.
IN_RECORD = {
    "business date": [in_record(2, "business_date", lambda _: "2012-12-01")],
    "due date": [in_record(5, "due_date", lambda _: "2011-12-31")],
    "explanation": [in_record(1, "explanation", lambda text: text.replace("250", "260"))],
}


@pytest.mark.parametrize("entry_format", [1, 2])
@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_reported_by_verify(case, entry_format, ledgers, two_proposals):
    ledger_url = ledgers.new(entry_format)
    runs, entries = _posted(ledger_url, two_proposals)
    assert verify(runs, entries) == []
    assert all(bool(e.record) == (entry_format == 2) for e in entries)
    ok = CliRunner().invoke(cli, ["ledger", "verify", "--ledger", ledger_url])
    assert ok.exit_code == 0 and "Registre intègre" in ok.output and "8 écriture(s)" in ok.output

    statements, expected = TAMPERING[case]
    if entry_format == 2:
        statements = IN_RECORD.get(case, statements)
    tamper(ledger_url, *statements)
    with open_store(ledger_url) as store:
        problems = verify(*store.snapshot())
    assert problems and any(expected in p for p in problems), problems
    bad = CliRunner().invoke(cli, ["ledger", "verify", "--ledger", ledger_url])
    assert bad.exit_code == 1
    assert "anomalie(s)" in bad.output and expected.strip() in bad.output


def _changed(table: str, column: str, seq: int) -> list:
    """An UPDATE changing ``column`` of record ``seq`` (still a valid value, so that the objects
    of ``store.snapshot()`` can be built too); ``record.<field>``: that field in the record."""
    valid = {"due_date": "'1999-01-01'", "business_date": "'1999-01-01'", "corrects": """'["E-x"]'""",
             "selectors": """'["1999"]'"""}  # fmt: skip
    if column.startswith("record."):
        field = column.split(".", 1)[1]
        new = {"due_date": "1999-01-01", "business_date": "1999-01-01", "corrects": ["E-x"]}
        return [in_record(seq, field, lambda old: new[field] if field in new else old + "x")]
    if column in valid:
        return [f"UPDATE {table} SET {column} = {valid[column]} WHERE seq = {seq}"]
    if column == "seq":
        return [f"UPDATE {table} SET seq = seq + 1000 WHERE seq = {seq}"]
    if column in _INTEGER:
        return [f"UPDATE {table} SET {column} = {column} + 1 WHERE seq = {seq}"]
    if table == "entries" and column == "run_id":  # move it to the other run (the foreign key holds)
        return [f"UPDATE entries SET run_id = (SELECT run_id FROM runs WHERE seq = 2) WHERE seq = {seq}"]
    return [f"UPDATE {table} SET {column} = {column} || 'x' WHERE seq = {seq}"]


STORED = (
    [(1, "entries", c) for c in ENTRY_COLUMNS]
    + [(2, "entries", c) for c in RECORD_ENTRY_COLUMNS if c != "record"]
    + [(2, "entries", f"record.{c}") for c in (*RECORD_FIELDS, "explanation")]
    + [(f, "runs", c) for f in (1, 2) for c in RUN_COLUMNS]
)


@pytest.mark.parametrize("entry_format, table, column", STORED)
def test_tampering_with_any_stored_column_is_reported_by_the_fast_verify(
    entry_format, table, column, ledgers, two_proposals
):
    ledger_url = ledgers.new(entry_format)
    _posted(ledger_url, two_proposals)
    with open_store(ledger_url) as store:
        assert verify_store(store, batch=3).problems == []
    statements = _changed(table, column, 3 if table == "entries" else 1)
    if ledger_url.startswith("postgres") and (table, column) == ("runs", "run_id"):
        statements.insert(0, "ALTER TABLE entries DROP CONSTRAINT entries_run_id_fkey")
    tamper(ledger_url, *statements)
    with open_store(ledger_url) as store:
        problems = verify_store(store, batch=3).problems  # batches of 3: the checks span batch boundaries
        assert problems == verify(*store.snapshot())  # the object path finds the same
        assert verify_store(store, batch=3, workers=3).problems == problems  # split over 3 processes: the same
    if table == "entries":
        where = "écriture n° 1003 " if column == "seq" else "écriture n° 3 "
        assert any(where in p and "contenu modifié" in p for p in problems), problems
    else:
        assert any(p.startswith("passage ") and "contenu modifié" in p for p in problems), problems


@pytest.mark.parametrize("entry_format", [1, 2])
def test_the_fast_verify_reports_values_no_entry_could_hold(entry_format, ledgers, two_proposals):
    ledger_url = ledgers.new(entry_format)
    sqlite = ledger_url.startswith("sqlite")
    _posted(ledger_url, two_proposals)
    if entry_format == 1:
        changes = "due_date = 'garbage', corrects = '['"
        if sqlite:  # SQLite keeps a blob written into a TEXT column
            changes += ", label = X'00ff'"
    elif sqlite:  # a text over the record, a blob over a text column
        changes = "record = 'du texte', period_id = X'00ff'"
    else:
        changes = "record = decode('789c00ff', 'hex')"  # not a zlib stream
    tamper(ledger_url, f"UPDATE entries SET {changes} WHERE seq = 4")
    with open_store(ledger_url) as store:  # hashed as stored: nothing is parsed, nothing fails
        problems = verify_store(store).problems
    assert problems == ["écriture n° 4 (" + problems[0].split("(", 1)[1]]
    assert problems[0].endswith(" : contenu modifié (empreinte recalculée différente)")


@pytest.mark.parametrize("entry_format", [1, 2])
def test_posting_then_verifying_round_trips_with_the_documented_hash(entry_format, ledgers, two_proposals):
    ledger_url = ledgers.new(entry_format)
    runs, entries = _posted(ledger_url, two_proposals)
    with open_store(ledger_url) as store:
        assert store.entry_format == entry_format
        report = verify_store(store, batch=3)
        with store.reading() as session:
            rows = [r for batch in session.verify_batches(5) for r in batch]
            run_rows = session.run_rows()
    assert report.problems == [] and verify(runs, entries) == []
    assert (report.runs, report.entries, report.head) == (2, 8, entries[-1].hash)
    assert report.total_cents == sum(e.amount_cents for e in entries) == 468_333 + 25_000
    # the format of hashchain's docstring, rebuilt here from the stored values
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    for row, entry in zip(rows, entries, strict=True):
        if entry_format == 1:
            values = dict(zip(VERIFY_COLUMNS, row, strict=True))
            head = [values[c] for c in ENTRY_COLUMNS if c not in ("explanation", "hash")]
            assert isinstance(values["explanation"], bytes) and values["explanation"].decode() == entry.explanation
            text = json.dumps(head, **compact).encode() + b"\n" + values["explanation"]
        else:
            values = dict(zip(RECORD_ENTRY_COLUMNS, row, strict=True))
            head = [values[c] for c in RECORD_ENTRY_COLUMNS if c not in ("hash", "record")]
            text = json.dumps(head, **compact).encode() + b"\n" + values["record"]
            # the record: the other fields, a line feed, the explanation
            fields, _, explanation = zlib.decompress(values["record"]).partition(b"\n")
            assert explanation.decode() == entry.explanation and len(values["record"]) < len(fields) + len(explanation)
            assert dict(zip(RECORD_FIELDS, json.loads(fields), strict=True)) == {
                **{c: getattr(entry, c) for c in RECORD_FIELDS},
                "due_date": entry.due_date.isoformat(),
                "business_date": entry.business_date.isoformat(),
                "corrects": list(entry.corrects),
            }
        assert hashlib.sha256(text).hexdigest() == values["hash"] == entry.hash == entry_hash(entry)
    for row, run in zip(run_rows, runs, strict=True):
        values = [v for c, v in zip(RUN_COLUMNS, row, strict=True) if c != "hash"]
        assert hashlib.sha256(json.dumps(values, **compact).encode()).hexdigest() == run.hash


# -- concurrency ------------------------------------------------------------------------
def _racer(url, proposal, barrier, queue):
    try:
        barrier.wait()
        with open_store(url) as store:
            result = commit(store, proposal)
        queue.put(("ok", result.run.run_id if result.run else None))
    except BaseException as exc:  # say why, rather than leave the parent waiting
        queue.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _race(url, proposal, n):
    # spawn, not fork: forking a test process that already runs threads (pyarrow, psycopg) can deadlock.
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(url, proposal, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results, deadline = [], time.monotonic() + 300  # spawned children import pandas: slow on a loaded machine
    while len(results) < n:
        try:
            results.append(queue.get(timeout=5))
        except Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a racer died without reporting (exit codes {dead})"
            assert time.monotonic() < deadline, f"racers still running after 300 s ({len(results)}/{n} reported)"
    for p in procs:
        p.join(60)
    errors = [r for kind, r in results if kind == "error"]
    assert not errors, errors
    assert all(p.exitcode == 0 for p in procs)
    return [r for _, r in results]


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_posts_of_the_same_period_post_once(n, ledgers, example, pseudonymiser):
    url = ledgers.new()  # fresh: the racers also race to create the schema
    first = prepare(workspace(example, RUN_DATE), ["2012"], pseudonymiser)
    results = _race(url, first, n)
    assert len([r for r in results if r]) == 1
    add_late_patient(example)
    corrected = prepare(workspace(example, RUN_DATE), ["2012"], pseudonymiser)
    results = _race(url, corrected, n)
    assert len([r for r in results if r]) == 1
    with open_store(url) as store:
        runs, entries = store.snapshot()
    assert [r.entry_count for r in runs] == [7, 1]
    assert sum(e.amount_cents for e in entries) == 468_333 + 25_000  # see test_ledger_campaign
    assert verify(runs, entries) == []


def test_two_concurrent_nmr_post_commands_post_once(ledger_url, example):
    nmr = Path(sys.executable).with_name("nmr")
    cmd = [
        str(nmr),
        "post",
        "--period",
        "2012",
        "--run-date",
        "2013-01-15",
        "--contracts",
        str(example / "contracts"),
        "--data",
        str(example / "data"),
        "--plugin",
        str(ESSAI_PLUGIN),
        "--ledger",
        ledger_url,
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    texts = sorted(out for out, _ in outputs)
    assert "7 écriture(s) enregistrée(s)" in texts[0] and "total 4\u202f683,33" in texts[0]
    assert texts[1].startswith("Rien de nouveau")
    with open_store(ledger_url) as store:
        assert len(store.runs()) == 1


# -- crash safety -----------------------------------------------------------------------
def _bundled_example(tmp_path: Path) -> tuple[Path, Path]:
    """The bundled example, and a corrected copy (every 7th séance withdrawn)."""
    original, corrected = tmp_path / "orig", tmp_path / "corr"
    for root in (original, corrected):
        shutil.copytree(REPO / "contracts", root / "contracts")
        shutil.copytree(REPO / "data", root / "data")
    sessions = corrected / "data" / "etp" / "sessions.csv"
    lines = sessions.read_text(encoding="utf-8").splitlines()
    sessions.write_text("\n".join([lines[0]] + [x for i, x in enumerate(lines[1:]) if i % 7 != 3]) + "\n")
    return original, corrected


def _child(url, proposal, seed, write_fd):
    rng = random.Random(seed)

    def progress(message, done, total):
        os.write(write_fd, b"L" if message.startswith("comparaison") else b"W")
        time.sleep(rng.uniform(0, 0.002))

    original = Session.append
    Session.append = lambda self, run, entries, progress=None, chunk=25: original(self, run, entries, progress, 1)
    with open_store(url) as store:
        commit(store, proposal, progress)
    os.write(write_fd, b"C")


def _spawn(url, proposal, seed, kill_after):
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_fd)
            _child(url, proposal, seed, write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    if kill_after is not None:
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    elapsed = time.monotonic() - started
    marks = b""
    while chunk := os.read(read_fd, 4096):
        marks += chunk
    os.close(read_fd)
    return marks, elapsed


def _small_example(example: Path) -> tuple[Path, Path]:
    """The small example, and a corrected copy (a late patient, RPPS-2's training withdrawn)."""
    corrected = example.parent / "corrected"
    shutil.copytree(example, corrected)
    add_late_patient(corrected)
    trainings = corrected / "data" / "etp" / "trainings.csv"
    trainings.write_text("\n".join(trainings.read_text().splitlines()[:2]) + "\n")
    return example, corrected


def crash_campaign(ledgers, roots, periods, date, pseudonymiser, runs: int, seed: int) -> collections.Counter:
    """Alternately post the original and the corrected inputs, killing each posting at a random
    moment; check none-or-all after each kill, then that the next run completes it."""
    proposals = [prepare(workspace(root, date), periods, pseudonymiser) for root in roots]
    rng = random.Random(seed)
    url = ledgers.new()
    durations = [_spawn(url, proposals[i % 2], i, None)[1] for i in range(2)]  # calibration runs (not killed)
    window = 1.3 * statistics.median(durations)
    outcomes: collections.Counter = collections.Counter()
    for i in range(runs):
        if i % 25 == 0:
            url = ledgers.new()
        proposal = proposals[i % 2]
        with open_store(url) as store:
            runs_before, before = store.snapshot()
        expected = plan(proposal, before)
        marks, _ = _spawn(url, proposal, seed * 1000 + i, rng.uniform(0, window))
        with open_store(url) as store:
            # Observe under the writer lock, as the next posting does: a PostgreSQL server may
            # still be finishing (committing or rolling back) the killed client's transaction.
            with store.writing() as session:
                runs_after, after = session.runs(), session.entries()
            assert verify(runs_after, after) == []
            assert after[: len(before)] == before
            added = after[len(before) :]
            if added:
                assert [(e.entry_id, e.amount_cents) for e in added] == [
                    (f["entry_id"], f["amount_cents"]) for f in expected
                ]
                assert len(runs_after) == len(runs_before) + 1
                outcome = "all"
            else:
                assert len(runs_after) == len(runs_before)
                outcome = "none"
            phase = "after commit" if b"C" in marks else "in transaction" if b"L" in marks else "before the lock"
            if phase == "after commit":
                assert outcome == "all"
            if phase == "before the lock":
                assert outcome == "none"
            outcomes[f"{phase}: {outcome}"] += 1
            # The next run completes it: the ledger then holds exactly the expected differences once.
            completion = commit(store, proposal)
            assert len(completion.entries) == (len(expected) if outcome == "none" else 0)
            final_runs, final = store.snapshot()
            assert [e.entry_id for e in final[len(before) :]] == [f["entry_id"] for f in expected]
            assert verify(final_runs, final) == []
    return outcomes


def test_crash_at_random_moments_quick(ledgers, example, pseudonymiser):
    roots = _small_example(example)
    outcomes = crash_campaign(ledgers, roots, ["2012"], RUN_DATE, pseudonymiser, runs=20, seed=7)
    assert sum(outcomes.values()) == 20


@pytest.mark.slow
def test_crash_at_random_moments_many(ledgers, tmp_path, pseudonymiser):
    roots = _bundled_example(tmp_path)
    outcomes = crash_campaign(ledgers, roots, ["2012", "2013"], dt.date(2014, 9, 1), pseudonymiser, 300, 2026)
    print(f"\n{ledgers.backend}: {dict(sorted(outcomes.items()))}")
    assert sum(outcomes.values()) == 300
    assert outcomes["in transaction: none"] > 0  # kills did land inside open transactions


def _open_sqlite_ledger(path: str) -> str | None:
    from nmr_engine.ledger.sqlite import SqliteStore

    try:
        SqliteStore(Path(path)).close()
    except Exception as exc:  # reported to the parent, which names it
        return f"{type(exc).__name__}: {exc}"
    return None


def test_many_processes_creating_the_same_sqlite_ledger_all_succeed(tmp_path):
    # SQLite answers "database is locked" at once, without waiting, when processes switch a new file
    # to WAL together; the store must wait its turn rather than fail (a CI run once failed so).
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        errors = []
        for i in range(15):
            path = str(tmp_path / f"ledger-{i}.sqlite")
            errors += [e for e in pool.map(_open_sqlite_ledger, [path] * 8) if e]
    assert errors == []
    tables = sqlite3.connect(tmp_path / "ledger-0.sqlite").execute("SELECT name FROM sqlite_master").fetchall()
    assert {"runs", "entries"} <= {t[0] for t in tables}
