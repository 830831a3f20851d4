"""Work shared between forked processes: how many, who takes what, and a safe way back.

CPython runs one thread of Python at a time; on a machine of several CPUs, a long job made of
independent pieces (the modules of a national calculation, the ranges of a long ledger) goes
faster in several processes. Forked, not spawned: a forked child starts with everything the
parent has read (the input tables, the parameters), nothing is sent to it; only its results come
back (pickled). A spawned one would import pandas again (≈ 1 s) and need the tables sent.

Nothing is vouched for by a child alone: a child that fails in any way (an exception, a signal,
a result that cannot come back) has its pieces computed again in the parent, which then raises
the error it would have raised in one process, in the same order.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .errors import ConfigurationError
from .memory import release_free_memory

#: Environment variable: how many processes share a big calculation (its modules, its contract
#: files); 1: one process.
CALC_WORKERS_ENV = "NMR_CALC_WORKERS"


def cpu_count() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(env: str, size: int, minimum: int, requested: int | None = None) -> int:
    """How many processes share a job of ``size`` pieces of work (rows, entries): ``requested``,
    else the environment variable ``env``, else one per CPU when ``size`` ≥ ``minimum`` (1
    below); never more than ``size``, and 1 where processes cannot be forked."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if requested is None:
        text = os.environ.get(env, "").strip()
        if text:
            if not text.isdigit() or int(text) < 1:
                raise ConfigurationError(f"{env} : nombre de processus attendu (entier ≥ 1), reçu « {text} »")
            requested = int(text)
        elif size < minimum:
            return 1
        else:
            requested = cpu_count()
    return max(1, min(requested, size))


def first_order(weights: Sequence[int]) -> list[int]:
    """Positions of ``weights``, the heaviest first (ties: the first in position): the order in
    which :func:`in_processes` hands its items out."""
    return sorted(range(len(weights)), key=lambda i: (-weights[i], i))


#: Where children leave their results for the parent (memory, not disk, where Linux has it).
_SPILL_DIR = "/dev/shm"

#: The work of :func:`in_processes` while it runs: forked children find it here (nothing is sent).
_SHARED: dict[str, Any] = {}


def in_child() -> bool:
    """Whether this process is a child computing items of :func:`in_processes` (a piece of work
    that would send back an exception as its result raises it instead: the parent computes that
    item again, and the exception keeps its cause and traceback)."""
    return _IN_CHILD


_IN_CHILD = False


def _child(pinned: int | None, count: int) -> tuple[list[tuple[int, bool]], str] | None:
    """In a child: its pinned item (``pinned``, a rank in :func:`first_order`), or else the next
    item left, then the next ones up to ``count`` items: ``(position, ok)`` of each (``ok`` False
    where it raised: the parent computes that one again, and raises there) and the file of their
    results (:func:`_spill`); None when no item was left. Its results go back when the task ends,
    while the child goes on with its next task."""
    global _IN_CHILD
    _IN_CHILD = True
    work, items = _SHARED["work"], _SHARED["items"]
    done: list[tuple[int, bool]] = []
    values: list[Any] = []
    for position in _claimed(pinned):
        try:
            values.append(work(items[position]))
            done.append((position, True))
        except Exception:
            values.append(None)
            done.append((position, False))
        if len(done) >= count:
            break
    return (done, _spill(values)) if done else None


def _spill(value: Any) -> str:
    """``value`` pickled into a file of the call's spill folder, whose path goes back instead.
    Sent through the executor's pipe (64 kB at a time), megabytes of lines kept the child waiting
    until the parent, busy computing, had read them all, one switch of Python's lock per piece."""
    handle, path = tempfile.mkstemp(dir=_SHARED["spill"], suffix=".pickle")
    with os.fdopen(handle, "wb") as out:
        pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _unspill(path: str) -> Any:
    with open(path, "rb") as spilled:
        value = pickle.load(spilled)
    os.unlink(path)
    return value


def _claimed(pinned: int | None):
    """The positions a process computes: the item pinned to it (if any), then the next unclaimed
    one in :func:`first_order`, one at a time (claimed when asked for), while any is left."""
    if pinned is not None:
        yield _SHARED["order"][pinned]
    while (position := _claim()) is not None:
        yield position


def _claim() -> int | None:
    """The next unclaimed position in :func:`first_order` (claimed under the shared counter's
    lock), or None when every item is taken."""
    order, counter = _SHARED["order"], _SHARED["next"]
    with counter.get_lock():
        taken = counter.value
        counter.value = taken + 1
    return order[taken] if taken < len(order) else None


class _Children:
    """The parent's side of the children's items: each child computes ``count`` items per task
    (one when there are few), and a new task is asked for whenever a task's results come back (in
    the executor's thread). Each child has two tasks asked at a time (its pinned item, then the
    next left): it starts the next one without waiting for its last results to be read. A task
    that finds no item left, or fails, is not followed."""

    def __init__(self, pool: ProcessPoolExecutor, children: int, count: int):
        self.pool = pool
        self.count = count
        self.results: list[tuple[list[tuple[int, bool]], str]] = []
        self.changed = threading.Condition()
        self.live = 2 * children  # tasks asked for and not yet ended
        for k in range(1, children + 1):
            self._ask(k)
            self._ask(None)

    def _ask(self, pinned: int | None) -> None:
        try:
            self.pool.submit(_child, pinned, self.count).add_done_callback(self._done)
        except Exception:  # the pool is broken: this child's items are computed again here
            self._end()

    def _done(self, future) -> None:
        try:
            outcome = future.result()
        except BaseException:  # whatever happened there, this process computes its items again
            outcome = None
        if outcome is None:
            self._end()
            return
        with self.changed:
            self.results.append(outcome)
            self.changed.notify()
        self._ask(None)

    def _end(self) -> None:
        with self.changed:
            self.live -= 1
            self.changed.notify()

    def wait(self, received: Callable[[Any], Any] | None) -> list[tuple[int, bool, Any]]:
        """Every result sent back, read (and given to ``received``) as soon as it is there, until
        no child has an item left; ``ok`` False: computed again here, also when a result cannot
        be read back."""
        out: list[tuple[int, bool, Any]] = []
        taken = 0  # tasks' results read
        while True:
            with self.changed:
                while taken == len(self.results) and self.live > 0:
                    self.changed.wait()
                new, over = self.results[taken:], self.live == 0
            for done, path in new:
                try:
                    values = _unspill(path)
                    pairs = zip(done, values, strict=True)
                    got = [(i, ok, received(v) if ok and received else v) for (i, ok), v in pairs]
                except Exception:
                    got = [(i, False, None) for i, _ in done]
                out.extend(got)
                taken += 1
            if over and taken == len(self.results):
                return out


def in_processes(
    work: Callable[[Any], Any],
    items: Sequence[Any],
    weights: Sequence[int],
    workers: int,
    received: Callable[[Any], Any] | None = None,
) -> list:
    """``work(item)`` of every item, in order, as in one process. With ``workers`` ≥ 2 and as
    many items, this process and ``workers - 1`` forked children share them, heaviest first by
    ``weights`` (:func:`first_order`): each starts with one of the heaviest, then takes the next
    item left whenever it is free (no process waits while another has several left, whatever the
    items really cost); a child sends each result back as soon as it is computed. An item whose
    child failed is computed again here; the first item in order that raises raises, as in one
    process. ``received``, when given, is applied here to each result of a child as soon as it is
    back (e.g. to unpack it while the others are computed)."""
    participants = min(workers, len(items))
    if participants < 2:
        return [work(item) for item in items]
    context = multiprocessing.get_context("fork")
    outer = dict(_SHARED)  # a call made by a piece of work (in this process or a child) comes back to it
    spill = tempfile.mkdtemp(prefix="nmr-results-", dir=_SPILL_DIR if os.path.isdir(_SPILL_DIR) else None)
    _SHARED.update(
        work=work, items=items, order=first_order(weights), next=context.Value("q", participants), spill=spill
    )
    outcomes: dict[int, Any] = {}
    failed: set[int] = set()
    release_free_memory()  # no page freed so far is then shared, to be copied on its first write
    pool = None
    try:
        pool = ProcessPoolExecutor(participants - 1, mp_context=context)
        # a few items per task when there are many (contract files), one when few (modules)
        children = _Children(pool, participants - 1, max(1, len(items) // (8 * participants)))
        for i in _claimed(0):
            try:
                outcomes[i] = work(items[i])
            except Exception as exc:  # raised below, in item order
                outcomes[i] = exc
                failed.add(i)
        for i, ok, value in children.wait(received):
            outcomes[i] = value if ok else _AGAIN
    finally:
        if pool is not None:  # every task has ended: the children's exit (their memory handed back
            pool.shutdown(wait=False, cancel_futures=True)  # to the system) is not waited for
        _SHARED.clear()
        _SHARED.update(outer)
        shutil.rmtree(spill, ignore_errors=True)
    results = []
    for i, item in enumerate(items):
        if outcomes.get(i, _AGAIN) is _AGAIN:
            outcomes[i] = work(item)
        elif i in failed:
            raise outcomes[i]
        results.append(outcomes[i])
    return results


_AGAIN = object()
