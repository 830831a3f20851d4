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


#: The work of :func:`in_processes` while it runs: forked children find it here (nothing is sent).
_SHARED: dict[str, Any] = {}


def in_child() -> bool:
    """Whether this process is a child computing items of :func:`in_processes` (a piece of work
    that would send back an exception as its result raises it instead: the parent computes that
    item again, and the exception keeps its cause and traceback)."""
    return _IN_CHILD


_IN_CHILD = False


def _child(pinned: int) -> list[tuple[int, bool, Any]]:
    """In a child: its pinned item, then each item it claims until none is left, as
    ``(position, True, result)``, or ``(position, False, None)`` where one raised (the parent
    computes that one again, and raises there)."""
    global _IN_CHILD
    _IN_CHILD = True
    out: list[tuple[int, bool, Any]] = []
    for position in _claimed(pinned):
        try:
            out.append((position, True, _SHARED["work"](_SHARED["items"][position])))
        except Exception:
            out.append((position, False, None))
    return out


def _claimed(pinned: int):
    """The positions this process computes: the item pinned to it, then the next unclaimed one in
    :func:`first_order`, one at a time, while any is left (claimed under the shared counter's lock)."""
    order, counter = _SHARED["order"], _SHARED["next"]
    yield order[pinned]
    while True:
        with counter.get_lock():
            taken = counter.value
            counter.value = taken + 1
        if taken >= len(order):
            return
        yield order[taken]


def in_processes(work: Callable[[Any], Any], items: Sequence[Any], weights: Sequence[int], workers: int) -> list:
    """``work(item)`` of every item, in order, as in one process. With ``workers`` ≥ 2 and as
    many items, this process and ``workers - 1`` forked children share them, heaviest first by
    ``weights`` (:func:`first_order`): each starts with one of the heaviest, then takes the next
    item left whenever it is free (no process waits while another has several left, whatever the
    items really cost); children send their results back. An item whose child failed is computed
    again here; the first item in order that raises raises, as in one process."""
    participants = min(workers, len(items))
    if participants < 2:
        return [work(item) for item in items]
    context = multiprocessing.get_context("fork")
    outer = dict(_SHARED)  # a call made by a piece of work (in this process or a child) comes back to it
    _SHARED.update(work=work, items=items, order=first_order(weights), next=context.Value("q", participants))
    outcomes: dict[int, Any] = {}
    failed: set[int] = set()
    release_free_memory()  # no page freed so far is then shared, to be copied on its first write
    try:
        with ProcessPoolExecutor(participants - 1, mp_context=context) as pool:
            futures = [pool.submit(_child, k) for k in range(1, participants)]  # one round trip each
            for i in _claimed(0):
                try:
                    outcomes[i] = work(items[i])
                except Exception as exc:  # raised below, in item order
                    outcomes[i] = exc
                    failed.add(i)
            for future in futures:
                try:
                    done = future.result()
                except Exception:  # whatever happened there, this process computes its items again
                    done = []
                for i, ok, value in done:
                    outcomes[i] = value if ok else _AGAIN
    finally:
        _SHARED.clear()
        _SHARED.update(outer)
    results = []
    for i, item in enumerate(items):
        if outcomes.get(i, _AGAIN) is _AGAIN:
            outcomes[i] = work(item)
        elif i in failed:
            raise outcomes[i]
        results.append(outcomes[i])
    return results


_AGAIN = object()
