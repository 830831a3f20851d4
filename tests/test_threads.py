"""The modules' tables are read in threads: same lines, same warnings, same errors as one by one."""

from __future__ import annotations

import os
import threading
import time

import pandas as pd
import pytest

from nmr_engine.engine import Workspace, each_in_threads
from nmr_engine.errors import InputError

from .conftest import ROOT


def test_each_in_threads_runs_items_at_once_keeps_their_order_and_returns_expected_errors(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    names = {}

    def work(item):
        names[item] = threading.current_thread().name
        time.sleep(0.05 if item == "a" else 0)
        if item == "b":
            raise InputError([])
        return item.upper()

    out = each_in_threads(work, ["a", "b", "c"], InputError)
    assert list(out) == ["a", "b", "c"]
    assert out["a"] == "A" and out["c"] == "C" and isinstance(out["b"], InputError)
    assert all(n.startswith("nmr-read") for n in names.values())

    def broken(item):
        raise KeyError(item)  # not expected: raised, the first item's first

    with pytest.raises(KeyError, match="'a'"):
        each_in_threads(broken, ["a", "b"], InputError)


def test_one_cpu_reads_in_this_thread(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert each_in_threads(lambda item: threading.current_thread().name, ["a", "b"], InputError) == {
        "a": "MainThread",
        "b": "MainThread",
    }


def test_the_example_read_in_threads_gives_the_lines_read_one_by_one(monkeypatch):
    ws = Workspace(ROOT / "contracts", ROOT / "data")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    threaded = ws.calculate(["2012", "2013"])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    alone = ws.calculate(["2012", "2013"])
    columns = [c for c in threaded.lines.columns if c != "explanation"]
    pd.testing.assert_frame_equal(threaded.lines[columns], alone.lines[columns])
    assert [e.to_dict() for e in threaded.lines["explanation"]] == [e.to_dict() for e in alone.lines["explanation"]]
    assert threaded.warnings == alone.warnings
    assert threaded.total_cents == 49_913_602
