"""The command line asks Linux for ordinary pages (no transparent huge pages) for itself and its
forked children, unless NMR_HUGE_PAGES=on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.memory import ENV, huge_pages_avoided

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
