"""Verify a long ledger in several processes at once, each on a range of entries.

One CPython process verifies ≈ 130,000–150,000 entries per second: reading a row (≈ 3 µs) and
hashing it (≈ 2 µs, hashlib holds the GIL below 2 KB) fill the time of one core. The work splits
by ranges of ``seq``: forked worker processes each open their own connection and scan one range
(:func:`~.hashchain.scan_entries`), and the parent joins their scans (the chain across range
boundaries, the counts, the runs' aggregates) before checking the runs. Forked, not spawned: a
spawned worker would import the package again (pandas, ≈ 1 s).

Entries are append-only, so the rows up to the highest ``seq`` of the parent's snapshot are the
same in every worker's snapshot. The split path only ever vouches for an intact ledger: any
problem, or any doubt (a range that is not whole, a chain broken between two ranges, a worker that
failed), sends the ledger to the one-process path, which reports the problems in ledger order
with their usual messages.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .. import processes
from .hashchain import ChainReport, EntryScan, chain_report, scan_entries
from .model import GENESIS

#: Environment variable: the number of processes of ``nmr ledger verify`` (1: one process).
WORKERS_ENV = "NMR_VERIFY_WORKERS"
#: Below this many entries one process is used (forking would cost more than it saves).
MIN_ENTRIES = 20_000


def worker_count(requested: int | None, entries: int) -> int:
    """How many processes verify ``entries`` entries: ``requested``, else ``NMR_VERIFY_WORKERS``,
    else one per CPU for a ledger of at least :data:`MIN_ENTRIES` (see
    :func:`~nmr_engine.processes.worker_count`)."""
    return processes.worker_count(WORKERS_ENV, entries, MIN_ENTRIES, requested)


def seq_ranges(last: int, parts: int) -> list[tuple[int, int]]:
    """``1..last`` cut into ``parts`` consecutive ranges ``(first, last)`` of nearly equal size."""
    bounds = [1 + (last * i) // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(parts) if bounds[i + 1] > bounds[i]]


def verify_split(store: Any, session: Any, runs: Sequence[Sequence[Any]], batch: int, workers: int | None):
    """The report on ``store``'s ledger checked by several processes, or ``None`` when one
    process should verify it (a short ledger, one CPU, or anything the split path found)."""
    low, high = session.seq_bounds()
    if type(low) is not int or type(high) is not int or low != 1:  # a bool or text seq: one process tells
        return None
    count = worker_count(workers, high)
    if count < 2:
        return None
    ranges = seq_ranges(high, count)
    try:
        with ProcessPoolExecutor(len(ranges), mp_context=multiprocessing.get_context("fork")) as pool:
            scans = list(pool.map(_scan_range, itertools.repeat(store.url), ranges, itertools.repeat(batch)))
    except Exception:  # a worker that failed vouches for nothing: one process verifies
        return None
    joined = join_scans(scans)
    if joined is None:
        return None
    report: ChainReport = chain_report(runs, joined)
    return None if report.problems else report


def _scan_range(url: str, seqs: tuple[int, int], batch: int) -> EntryScan:
    """In a worker: scan the entries of ``seqs`` on a connection of its own."""
    from . import open_store

    with open_store(url) as store, store.reading() as session:
        fmt = store.entry_format
        return scan_entries(((fmt, rows) for rows in session.verify_batches(batch, seqs)), seqs[0], prev=None)


def join_scans(scans: Sequence[EntryScan]) -> EntryScan | None:
    """The scan of the whole ledger from the scans of its consecutive ranges, or ``None`` when a
    range has a problem, is empty, does not start where the previous one ended, or is not chained
    to it."""
    prev, expected, total = GENESIS, 1, 0
    by_run: dict[str, list] = {}
    for scan in scans:
        if scan.problems or not scan.count or scan.first_seq != expected or scan.first_prev != prev:
            return None
        for run_id, (size, amount, first, last) in scan.by_run.items():
            agg = by_run.get(run_id)
            if agg is None:
                by_run[run_id] = [size, amount, first, last]
            else:
                agg[0] += size
                agg[1] += amount
                agg[3] = last
        total += scan.total
        prev, expected = scan.last_hash, expected + scan.count
    return EntryScan([], 1, expected - 1, GENESIS, prev, total, by_run)
