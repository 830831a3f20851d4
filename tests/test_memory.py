"""The command line asks Linux for ordinary pages (no transparent huge pages) for itself and its
forked children, unless NMR_HUGE_PAGES=on; and glibc to keep freed memory for the next arrays,
unless NMR_KEEP_FREED_MEMORY=off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.memory import ENV, KEEP_ENV, _glibc, huge_pages_avoided

pytestmark = pytest.mark.skipif(huge_pages_avoided() is None, reason="the kernel does not report THP_enabled")

PROBE = (
    "from nmr_engine.memory import avoid_huge_pages, huge_pages_avoided; import os\n"
    "before = huge_pages_avoided(); done = avoid_huge_pages(); pid = os.fork()\n"
    "if pid == 0:\n    os._exit(0 if huge_pages_avoided() else 3)\n"
    "child = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
    "print(before, done, huge_pages_avoided(), child)\n"
)


def _probe(**env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != ENV} | env
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_huge_pages_are_turned_off_for_the_process_and_its_children():
    _, done, after, child = _probe().split()  # (before: inherited, e.g. from a test that ran the CLI)
    assert (done, after, child) == ("True", "True", "0")


def test_the_setting_keeps_the_systems_choice():
    before, done, after, _ = _probe(**{ENV: "on"}).split()
    assert done == "False" and after == before


def test_the_command_line_turns_them_off(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    pid = os.fork()
    if pid == 0:  # in a child, so that this test process keeps its pages
        result = CliRunner().invoke(cli, ["plugins"])
        os._exit(0 if result.exit_code == 0 and huge_pages_avoided() else 3)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


# -- freed memory kept for the next arrays (glibc) ------------------------------------------
ARRAYS = (
    "import os, resource, sys, numpy as np\n"
    "from nmr_engine.memory import avoid_huge_pages, keep_freed_memory, release_free_memory\n"
    "def rss(): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') >> 20\n"
    "def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "avoid_huge_pages(); kept = keep_freed_memory()  # as the command line\n"
    "a = np.ones(8_000_000); del a  # 64 MB touched, then freed\n"
    "before = faults(); b = np.ones(8_000_000); again = faults() - before; del b\n"
    "held = rss(); released = release_free_memory(); print(kept, again, held - rss(), released)\n"
)


def _arrays(**env) -> tuple[str, int, int, str]:
    environ = {k: v for k, v in os.environ.items() if k != KEEP_ENV} | env
    out = subprocess.run([sys.executable, "-c", ARRAYS], env=environ, capture_output=True, text=True, check=True)
    kept, again, given_back, released = out.stdout.split()
    return kept, int(again), int(given_back), released


@pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")
def test_a_freed_array_serves_the_next_without_faulting_its_pages_again():
    kept, again, given_back, released = _arrays()
    assert kept == "True" and released == "True"
    assert again < 2_000  # 64 MB is 16,384 pages of 4 kB: they were touched already
    assert given_back >= 60  # until malloc_trim hands the free pages back


@pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")
def test_the_setting_keeps_glibcs_defaults():
    kept, again, given_back, _ = _arrays(**{KEEP_ENV: "off"})
    assert kept == "False"
    assert again >= 15_000  # a fresh mapping: every page faulted again
    assert given_back < 60  # glibc gave the 64 MB back when they were freed


def test_the_command_line_keeps_freed_memory(monkeypatch):
    monkeypatch.delenv(KEEP_ENV, raising=False)
    pid = os.fork()
    if pid == 0:  # in a child, so that this test process keeps glibc's defaults
        import resource

        import numpy as np

        result = CliRunner().invoke(cli, ["plugins"])
        a = np.ones(8_000_000)
        del a
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        b = np.ones(8_000_000)
        again = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        del b
        os._exit(0 if result.exit_code == 0 and again < 2_000 else 3)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
