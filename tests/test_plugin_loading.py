"""Plugins come from entry points or a path; the core checks API versions and allow-lists."""

from __future__ import annotations

import textwrap

import pytest

from nmr_engine.errors import ConfigurationError
from nmr_engine.plugin.manager import PluginRegistry, api_compatible

PLUGIN = """\
    from nmr_engine.plugin import ModuleSpec, hookimpl

    @hookimpl
    def nmr_register_modules(register):
        register(ModuleSpec(code="demo", title="Démo", version="0.1", api_version="{api}"))

    @hookimpl
    def nmr_calculate(module, context):
        return None
    """


def test_load_a_plugin_from_a_path(tmp_path):
    path = tmp_path / "demo_plugin.py"
    path.write_text(textwrap.dedent(PLUGIN.format(api="1.0")), encoding="utf-8")
    registry = PluginRegistry(paths=[path])
    assert "demo" in registry.modules() and "etp" in registry.modules()


def test_incompatible_api_version_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "future_plugin.py"
    path.write_text(textwrap.dedent(PLUGIN.format(api="2.0")), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"écrit pour l'API 2.0 ; ce moteur fournit l'API 1.1"):
        PluginRegistry(paths=[path]).modules()
    assert api_compatible("1.0") and api_compatible("1.1") and not api_compatible("1.9") and not api_compatible("0.9")


def test_allow_list_restricts_entry_points(monkeypatch):
    monkeypatch.setenv("NMR_PLUGINS", "nothing-allowed")
    assert PluginRegistry().modules() == {}
