"""A workspace keeps its modules' periods for its next calculations (its contracts do not change),
and a calculation that writes into its periods does not change the next one's."""

from __future__ import annotations

import pandas as pd

from nmr_engine import engine
from nmr_engine.engine import Workspace
from nmr_engine.plugin.manager import PluginRegistry

from .conftest import ROOT


def test_periods_are_computed_once_per_module_and_selection(monkeypatch):
    calls = []
    original = engine.modules_periods_frames

    def counted(contracts, modules, periods=None):
        calls.append((tuple(modules), tuple(periods) if periods else None))
        return original(contracts, modules, periods)

    monkeypatch.setattr(engine, "modules_periods_frames", counted)
    workspace = Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry())
    first = workspace.calculate(["2012", "2013"])
    etp = workspace.calculate(["2012", "2013"], modules=["etp"])
    again = workspace.calculate(["2012", "2013"])
    other = workspace.calculate(["2013"], modules=["etp"])
    modules = tuple(workspace.registry.modules())
    assert calls == [(modules, ("2012", "2013")), (("etp",), ("2013",))]
    assert first.total_cents == again.total_cents == 49_913_602
    assert etp.total_cents == first.lines.loc[first.lines["module"] == "etp", "amount_cents"].sum()
    assert other.total_cents < etp.total_cents


def test_a_plugin_writing_into_its_periods_does_not_change_the_next_calculation(monkeypatch):
    workspace = Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry())
    first = workspace.calculate(["2013"], modules=["etp"])
    original = Workspace._run_plugin

    def vandal(self, code, context):
        lines = original(self, code, context)
        context.periods["period_id"] = "XXXX"  # written in place, after computing
        context.history["contract_id"] = "XXXX"
        return lines

    monkeypatch.setattr(Workspace, "_run_plugin", vandal)
    workspace.calculate(["2013"], modules=["etp"])
    monkeypatch.setattr(Workspace, "_run_plugin", original)
    after = workspace.calculate(["2013"], modules=["etp"])
    pd.testing.assert_frame_equal(after.lines.drop(columns="explanation"), first.lines.drop(columns="explanation"))
    assert "XXXX" not in set(after.periods["period_id"])
