"""Verify split over processes: the same report as one process on an intact ledger, and never a
clean report for a ledger that one process finds tampered with (the tampering tests run both)."""

from __future__ import annotations

import pytest
from test_ledger_reliability import _posted, tamper

from nmr_engine.errors import ConfigurationError
from nmr_engine.ledger import open_store
from nmr_engine.ledger.hashchain import EntryScan, verify_rows, verify_store
from nmr_engine.ledger.model import GENESIS
from nmr_engine.ledger.verify_split import MIN_ENTRIES, WORKERS_ENV, join_scans, seq_ranges, verify_split, worker_count


@pytest.mark.parametrize("entry_format", [1, 2])
@pytest.mark.parametrize("workers", [2, 3, 8])
def test_an_intact_ledger_verified_by_several_processes_gives_the_one_process_report(
    entry_format, workers, ledgers, two_proposals
):
    ledger_url = ledgers.new(entry_format)
    _, entries = _posted(ledger_url, two_proposals)  # 8 entries in 2 runs: ranges cut through runs
    with open_store(ledger_url) as store:
        fmt = store.entry_format
        with store.reading() as session:
            run_rows = session.run_rows()
            split = verify_split(store, session, run_rows, 2, workers)
            alone = verify_rows(run_rows, ((fmt, rows) for rows in session.verify_batches(2)))
    assert split is not None  # the split path answered (no fallback)
    assert split == alone
    assert (split.runs, split.entries, split.head, split.problems) == (2, 8, entries[-1].hash, [])
    assert split.total_cents == sum(e.amount_cents for e in entries) == 468_333 + 25_000


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM entries WHERE seq = 4",  # a gap inside a range
        "DELETE FROM entries WHERE seq = 5",  # the first entry of the second range
        "UPDATE entries SET prev_hash = hash WHERE seq = 5",  # the chain broken between two ranges
        "UPDATE entries SET amount_cents = amount_cents + 1 WHERE seq = 8",
        "DELETE FROM entries WHERE seq = 1",  # the ledger no longer starts at 1
    ],
)
def test_a_tampered_ledger_is_left_to_one_process_which_reports_it(statement, ledgers, two_proposals):
    ledger_url = ledgers.new()
    _posted(ledger_url, two_proposals)
    tamper(ledger_url, statement)
    with open_store(ledger_url) as store:
        with store.reading() as session:
            assert verify_split(store, session, session.run_rows(), 2, 2) is None
        problems = verify_store(store, batch=2, workers=2).problems
        assert problems and problems == verify_store(store, batch=2, workers=1).problems


def test_seq_ranges_cover_every_position_once():
    assert seq_ranges(10, 3) == [(1, 3), (4, 6), (7, 10)]
    assert seq_ranges(8, 2) == [(1, 4), (5, 8)]
    assert seq_ranges(2, 5) == [(1, 1), (2, 2)]
    for last, parts in ((35_124, 2), (35_124, 7), (1, 1)):
        ranges = seq_ranges(last, parts)
        assert [s for a, b in ranges for s in range(a, b + 1)] == list(range(1, last + 1))


def test_worker_count(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert worker_count(None, MIN_ENTRIES - 1) == 1  # a short ledger: one process
    assert worker_count(3, 2) == 2  # never more processes than entries
    assert worker_count(4, 100) == 4
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert worker_count(None, 10) == 3  # asked for: even a short ledger
    monkeypatch.setenv(WORKERS_ENV, "deux")
    with pytest.raises(ConfigurationError, match=f"^{WORKERS_ENV} : nombre de processus attendu .* « deux »$"):
        worker_count(None, MIN_ENTRIES)
    monkeypatch.setenv(WORKERS_ENV, "0")
    with pytest.raises(ConfigurationError, match="reçu « 0 »"):
        worker_count(None, MIN_ENTRIES)


def _scan(first, count, first_prev, last, runs, problems=()):
    return EntryScan(list(problems), first, count, first_prev, last, sum(r[1] for r in runs.values()), runs)


def test_join_scans_joins_runs_across_ranges_and_refuses_what_does_not_follow():
    a = _scan(1, 3, GENESIS, "h3", {"r1": [3, 300, 1, "h3"]})
    b = _scan(4, 2, "h3", "h5", {"r1": [1, 10, 4, "h4"], "r2": [1, 50, 5, "h5"]})
    joined = join_scans([a, b])
    assert (joined.count, joined.last_hash, joined.total, joined.problems) == (5, "h5", 360, [])
    assert joined.by_run == {"r1": [4, 310, 1, "h4"], "r2": [1, 50, 5, "h5"]}
    assert join_scans([a, _scan(4, 2, "hX", "h5", b.by_run)]) is None  # not chained to the previous range
    assert join_scans([a, _scan(5, 1, "h3", "h5", b.by_run)]) is None  # position 4 missing
    assert join_scans([a, _scan(4, 0, None, "", {}), b]) is None  # an empty range
    assert join_scans([a, _scan(4, 2, "h3", "h5", b.by_run, ["écriture n° 4 : …"])]) is None
