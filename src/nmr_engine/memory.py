"""How the engine asks the kernel for memory.

A national calculation makes many short-lived arrays of tens of megabytes (a column of 5 M
séances is 40 MB). Each is fresh memory, and where the kernel backs fresh memory with
transparent huge pages ("always", a common default), every first touch zeroes, and may first
have to assemble, a 2 MB page: on the benchmark machine a national ``calculate`` spent 2.5 s of
its 6.6 s of CPU in the kernel this way, against 1.5 s with ordinary pages (wall 7.5–7.9 s → 5.3–6.4
s; ``pandas.read_csv`` of the same inputs is not affected, 2.2–2.5 s either way). The command
line therefore asks for ordinary pages for its own process and the processes it forks, as
database servers advise for theirs. ``NMR_HUGE_PAGES=on`` keeps the system's choice.

A calculation also makes tens of thousands of small Python objects (its lines' explanations, the
records they are built from). Each few hundred of them trigger Python's cyclic garbage collector,
and now and then a full collection walks every live object again (≈ 0.07 s each at national
scale, 0.2–0.5 s of a 3 s calculation, with nothing to free: a calculation makes no cycles worth
collecting). :func:`collection_paused` keeps the collector off while one runs.

Fresh memory costs at each first touch of a page (a fault, then the page zeroed by the kernel):
glibc's malloc gives each block of 32 MB or more (a column of 5 M séances) its own mapping and
hands it back to the kernel when freed, so the next such array faults every page again; a
national calculation touched ≈ 1.4 GB of fresh memory for a peak of 1 GB (on the benchmark
machine, a virtual one where a fault costs 1.7–3 µs, module 2 spent 0.35–0.66 s of its 1.1–1.7 s
in the kernel). :func:`keep_freed_memory` asks malloc to serve every block from its heap and to
keep what is freed there for the next blocks, as the command line does (it is a short-lived
process: what it keeps goes back at its exit). ``NMR_KEEP_FREED_MEMORY=off`` keeps glibc's
defaults. Before forking, :func:`release_free_memory` hands the heap's free pages back: a page
shared with a child is copied (not merely zeroed) when either process writes it first.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import os
import sys
from collections.abc import Iterator

ENV = "NMR_HUGE_PAGES"
KEEP_ENV = "NMR_KEEP_FREED_MEMORY"
_PR_SET_THP_DISABLE = 41  # linux/prctl.h
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # malloc.h
_OFF = {"off", "0", "non", "no"}


def avoid_huge_pages() -> bool:
    """Ask Linux for ordinary pages for this process and its future children (``prctl
    PR_SET_THP_DISABLE``); True when done, False elsewhere, when ``NMR_HUGE_PAGES=on`` or when
    the kernel refuses (nothing else changes)."""
    if os.environ.get(ENV, "").strip().lower() in {"on", "1", "oui", "yes"}:
        return False
    libc = _libc()
    try:
        return libc is not None and libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    except AttributeError:
        return False


@functools.cache
def _libc():
    """The C library on Linux (loaded once), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _glibc():
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    libc = _libc()
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "malloc_trim") else None


def keep_freed_memory() -> bool:
    """Ask glibc's malloc for this process and its future children to take every block from
    its heap (``M_MMAP_MAX`` 0) and to keep the memory freed there for the next blocks
    (``M_TRIM_THRESHOLD`` at its largest): freed arrays' pages, already touched, serve again
    (see the module doc). True when done; False elsewhere or with ``NMR_KEEP_FREED_MEMORY=off``."""
    if os.environ.get(KEEP_ENV, "").strip().lower() in _OFF:
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def release_free_memory() -> bool:
    """Hand the free pages of glibc's heap back to the kernel (``malloc_trim(0)``), e.g. before a
    fork, so that no process copies a page that nobody uses; False where the C library is not
    glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def huge_pages_avoided() -> bool | None:
    """Whether this process runs with transparent huge pages turned off (``THP_enabled: 0`` in
    ``/proc/self/status``); None where the kernel does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("THP_enabled:"):
                    return line.split()[1] == "0"
    except OSError:
        pass
    return None


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector from running automatically inside the block
    (forked children inherit that); it runs again as before after it (left off if it was off).
    Objects are freed as usual when their last reference goes: only cycles wait."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
