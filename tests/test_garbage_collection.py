"""A calculation keeps Python's cyclic garbage collector off while it runs, and gives it back."""

from __future__ import annotations

import gc

import pytest

from nmr_engine import engine
from nmr_engine.engine import Workspace
from nmr_engine.memory import collection_paused
from nmr_engine.plugin.manager import PluginRegistry

from .conftest import ROOT


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_inside_and_on_again_after(collector_on):
    with collection_paused():
        assert not gc.isenabled()
        with collection_paused():  # nested: still off, and not turned on by the inner block
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_on):
    gc.disable()
    with collection_paused():
        pass
    assert not gc.isenabled()


def test_it_is_on_again_after_a_calculation_that_failed(collector_on, monkeypatch):
    seen = []

    def failing(self, runs, compute=True):
        seen.append(gc.isenabled())
        raise RuntimeError("panne")

    monkeypatch.setattr(engine.Workspace, "_run_plugins", failing)
    with pytest.raises(RuntimeError, match=r"^panne$"):
        Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry()).calculate(["2012"])
    assert seen == [False] and gc.isenabled()
