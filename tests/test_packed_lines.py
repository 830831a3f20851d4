"""Lines sent back by a forked child travel packed (explanations as lists per field) and come
back equal."""

from __future__ import annotations

import pickle

import attrs
import pandas as pd

from nmr_engine.engine import Workspace
from nmr_engine.packed_lines import PackedLines, pack_lines, unpack_lines
from nmr_engine.plugin.api import Explanation
from nmr_engine.plugin.manager import PluginRegistry

from .conftest import ROOT


def _example_lines() -> pd.DataFrame:
    return Workspace(ROOT / "contracts", ROOT / "data", PluginRegistry()).calculate(["2012", "2013"]).lines


def test_packed_lines_come_back_equal_after_pickling():
    lines = _example_lines()
    packed = pack_lines(lines)
    assert isinstance(packed, PackedLines) and "explanation" not in packed.frame.columns
    # the example's 140 lines share a handful of parameter tuples, each sent once
    assert len(packed.parameter_sets) < len(lines) / 4
    back = unpack_lines(pickle.loads(pickle.dumps(packed)))
    assert list(back.columns) == list(lines.columns)
    pd.testing.assert_frame_equal(back.drop(columns="explanation"), lines.drop(columns="explanation"))
    assert all(type(e) is Explanation for e in back["explanation"])
    assert list(back["explanation"]) == list(lines["explanation"])
    assert [e.render() for e in back["explanation"]] == [e.render() for e in lines["explanation"]]


def test_lines_with_another_kind_of_explanation_are_sent_as_they_are():
    @attrs.frozen
    class Annotated(Explanation):
        note: str = ""

    lines = _example_lines().head(3).copy()
    lines["explanation"] = [Annotated(summary="s", formula="f", note="n")] * 3
    assert pack_lines(lines) is lines
    assert unpack_lines(lines) is lines
    assert pack_lines(None) is None  # not a frame: as it is (the validation says what is wrong)
