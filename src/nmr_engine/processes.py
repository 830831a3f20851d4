"""Work shared between forked processes: how many, how the work is dealt, and a safe way back.

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


def deal(weights: Sequence[int], groups: int) -> list[list[int]]:
    """Positions of ``weights`` dealt into at most ``groups`` groups of nearly equal total, the
    heaviest first, each to the lightest group so far (ties: the first); each group in position
    order, empty groups left out."""
    totals = [0] * max(groups, 1)
    dealt: list[list[int]] = [[] for _ in totals]
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        g = totals.index(min(totals))
        dealt[g].append(i)
        totals[g] += weights[i]
    return [sorted(g) for g in dealt if g]


#: The work of :func:`in_processes` while it runs: forked children find it here (nothing is sent).
_SHARED: dict[str, Any] = {}


def in_child() -> bool:
    """Whether this process is a child computing items of :func:`in_processes` (a piece of work
    that would send back an exception as its result raises it instead: the parent computes that
    item again, and the exception keeps its cause and traceback)."""
    return _IN_CHILD


_IN_CHILD = False


def _child(positions: Sequence[int]) -> list[tuple[bool, Any]]:
    """In a child: ``(True, result)`` for each item of its group, ``(False, None)`` where one
    raised (the parent computes that one again, and raises there)."""
    global _IN_CHILD
    _IN_CHILD = True
    out: list[tuple[bool, Any]] = []
    for position in positions:
        try:
            out.append((True, _SHARED["work"](_SHARED["items"][position])))
        except Exception:
            out.append((False, None))
    return out


def in_processes(work: Callable[[Any], Any], items: Sequence[Any], weights: Sequence[int], workers: int) -> list:
    """``work(item)`` of every item, in order, as in one process. With ``workers`` ≥ 2, the items
    are dealt by ``weights`` (:func:`deal`): this process computes the first group while forked
    children compute the others and send their results back. An item whose child failed is
    computed again here; the first item in order that raises raises, as in one process."""
    groups = deal(weights, workers) if workers >= 2 else []
    if len(groups) < 2:
        return [work(item) for item in items]
    outer = dict(_SHARED)  # a call made by a piece of work (in this process or a child) comes back to it
    _SHARED.update(work=work, items=items)
    outcomes: dict[int, Any] = {}
    failed: set[int] = set()
    try:
        with ProcessPoolExecutor(len(groups) - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [(group, pool.submit(_child, group)) for group in groups[1:]]  # one round trip each
            for i in groups[0]:
                try:
                    outcomes[i] = work(items[i])
                except Exception as exc:  # raised below, in item order
                    outcomes[i] = exc
                    failed.add(i)
            for group, future in futures:
                try:
                    done = future.result()
                except Exception:  # whatever happened there, this process computes them again
                    done = [(False, None)] * len(group)
                for i, (ok, value) in zip(group, done, strict=True):
                    outcomes[i] = value if ok else _AGAIN
    finally:
        _SHARED.clear()
        _SHARED.update(outer)
    results = []
    for i, item in enumerate(items):
        if outcomes[i] is _AGAIN:
            outcomes[i] = work(item)
        elif i in failed:
            raise outcomes[i]
        results.append(outcomes[i])
    return results


_AGAIN = object()
