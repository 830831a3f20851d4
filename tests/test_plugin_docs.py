"""The plugin guide and the hookspecs stay in step with the code (as datasette's test_docs does)."""

import inspect
from pathlib import Path

import pytest

from nmr_engine.plugin import API_VERSION, hookspecs
from nmr_engine.testing.conformance import ConformanceSuite

GUIDE = (Path(__file__).resolve().parent.parent / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("nmr_")]


def test_there_are_hooks():
    assert set(HOOKS) == {"nmr_register_modules", "nmr_validate_inputs", "nmr_calculate", "nmr_synthesise"}


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented_in_its_spec_and_in_the_guide(name):
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert "Called" in doc and ":return:" in doc and "Example::" in doc, name
    for param in inspect.signature(getattr(hookspecs, name)).parameters:
        assert f":param {param}:" in doc, (name, param)
    assert f"def {name}(" in GUIDE


def test_the_guide_lists_every_conformance_check_and_the_api_version():
    tests = [n for n in vars(ConformanceSuite) if n.startswith("test_")]
    assert len(tests) == 7
    for name in tests:
        assert f"`{name}`" in GUIDE, name
    assert f"Plugin API version: **{API_VERSION}**" in GUIDE
