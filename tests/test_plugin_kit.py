"""The plugin developer kit: API version refusal, plugin isolation, and the conformance checks
failing on plugins that break the rules (so the kit cannot pass vacuously)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from nmr_engine.engine import Workspace
from nmr_engine.errors import ConfigurationError, PluginError
from nmr_engine.plugin import Column, Explanation, ModuleSpec, TableSpec, hookimpl, lines_frame
from nmr_engine.plugin.helpers import priced_lines
from nmr_engine.plugin.manager import PluginRegistry
from nmr_engine.testing import CHECKS, Example

VISITS = TableSpec(
    name="visits",
    columns=(
        Column("contract_id", "str"),
        Column("patient_id", "str"),
        Column("visit_date", "date"),
    ),
    unique=("contract_id", "patient_id", "visit_date"),
    event_date="visit_date",
)

CONTRACT = """\
id: {id}
structure: {{finess: "{finess}", name: Maison {id}, kind: MSP, territory: Test}}
parties: {{ars: ARS Test, caisse: CPAM Test}}
signed_on: 2020-01-01
start: 2020-01-01
end: 2021-12-31
periods: {{anchor: "01-01"}}
modules:
  - {{code: jouet}}
"""

PARAMETER = """\
description: Montant par visite
unit: EUR
values:
  2020-01-01:
    value: "10.00"
    confidence: OPEN
    illustrative: true
    reference: {title: Test du kit}
"""


def good_calculate(context):
    visits = context.tables["visits"]
    price = context.lookup("visit.amount", visits["contract_id"], visits["visit_date"])
    return lines_frame(
        priced_lines(context, visits, price, component="visites", label="Visites", unit_word="visite(s)")
    )


def make_plugin(tmp_path: Path, calculate=good_calculate, api_version: str = "1.0", name: str = "PluginJouet"):
    """A module plugin object (registered with ``PluginRegistry(plugins=[...])``)."""
    params = tmp_path / "parameters" / "visit"
    params.mkdir(parents=True, exist_ok=True)
    (params / "amount.yaml").write_text(PARAMETER, encoding="utf-8")
    spec = ModuleSpec(
        code="jouet",
        title="Module jouet",
        version="0.1",
        api_version=api_version,
        tables=(VISITS,),
        parameters_dir=tmp_path / "parameters",
    )

    class Plugin:
        @hookimpl
        def nmr_register_modules(register):
            register(spec)

        @hookimpl
        def nmr_calculate(module, context):
            return calculate(context)

    Plugin.__name__ = name
    return Plugin


def make_example(tmp_path: Path, rows: str | None = None) -> Path:
    """Two contracts and their visits; returns the example folder."""
    example = tmp_path / "example"
    (example / "contracts").mkdir(parents=True)
    (example / "data" / "jouet").mkdir(parents=True)
    for cid, finess in (("C-A", "590000001"), ("C-B", "590000002")):
        (example / "contracts" / f"{cid}.yaml").write_text(CONTRACT.format(id=cid, finess=finess), encoding="utf-8")
    rows = rows or (
        "contract_id;patient_id;visit_date\n"
        "C-A;P1;2020-02-01\nC-A;P2;2020-03-01\nC-A;P3;2021-03-01\n"
        "C-B;P9;2020-05-01\nC-B;P8;2020-06-01\n"
    )
    (example / "data" / "jouet" / "visits.csv").write_text(rows, encoding="utf-8")
    return example


# -- API versioning -----------------------------------------------------------------------
def test_a_plugin_written_for_api_2_is_refused_with_a_clear_message(tmp_path):
    registry = PluginRegistry(entry_points=False, plugins=[make_plugin(tmp_path, api_version="2.0")])
    with pytest.raises(ConfigurationError) as err:
        registry.modules()
    assert str(err.value) == (
        "le module « jouet » (plugin PluginJouet) a été écrit pour l'API 2.0 ; ce moteur fournit l'API 1.1 "
        "(même version majeure et mineure inférieure ou égale requises)"
    )


@pytest.mark.parametrize(
    ("wanted", "accepted"), [("1.0", True), ("1.1", True), ("1.2", False), ("0.9", False), ("x", False)]
)
def test_api_versions_accepted(tmp_path, wanted, accepted):
    registry = PluginRegistry(entry_points=False, plugins=[make_plugin(tmp_path, api_version=wanted)])
    if accepted:
        assert list(registry.modules()) == ["jouet"]
    else:
        with pytest.raises(ConfigurationError, match=f"l'API {wanted} ;"):
            registry.modules()


# -- isolation of a broken plugin -----------------------------------------------------------
def raises_on_c_b(context):
    if "C-B" in set(context.tables["visits"]["contract_id"]):
        raise ValueError("division par zéro dans le calcul")
    return good_calculate(context)


def float_amount(context):
    frame = good_calculate(context)
    frame["amount_cents"] = frame["amount_cents"].astype("float64")
    frame.loc[frame["contract_id"] == "C-B", "amount_cents"] += 0.5
    return frame


def no_explanation(context):
    frame = good_calculate(context)
    frame["explanation"] = [
        e if c == "C-A" else None for c, e in zip(frame["contract_id"], frame["explanation"], strict=True)
    ]
    return frame


def unknown_period(context):
    frame = good_calculate(context)
    frame.loc[frame["contract_id"] == "C-B", "period_id"] = "2030-01-01/2030-12-31"
    return frame


@pytest.mark.parametrize(
    ("calculate", "message"),
    [
        (
            raises_on_c_b,
            "le plugin « Cassé » (module « jouet », contrat C-B) a échoué : "
            "ValueError: division par zéro dans le calcul",
        ),
        (
            float_amount,
            "le plugin « Cassé » (module « jouet », contrat C-B) a échoué : la colonne amount_cents doit être "
            "entière (centimes), reçu float64",
        ),
        (
            no_explanation,
            "le plugin « Cassé » (module « jouet », contrat C-B) a échoué : ligne « visites » sans explication",
        ),
        (
            unknown_period,
            "le plugin « Cassé » (module « jouet », contrat C-B) a échoué : ligne pour une période inconnue "
            "2030-01-01/2030-12-31",
        ),
    ],
)
def test_a_broken_plugin_is_named_with_its_contract_and_no_line_comes_out(tmp_path, calculate, message):
    example = make_example(tmp_path)
    registry = PluginRegistry(entry_points=False, plugins=[make_plugin(tmp_path, calculate, name="Cassé")])
    workspace = Workspace(example / "contracts", example / "data", registry)
    with pytest.raises(PluginError) as err:
        workspace.calculate()
    assert str(err.value) == message
    assert (err.value.plugin, err.value.module, err.value.contract_id) == ("Cassé", "jouet", "C-B")


def test_the_cli_reports_a_broken_path_plugin_and_prints_no_line(tmp_path):
    example = make_example(tmp_path)
    (tmp_path / "parameters" / "visit").mkdir(parents=True)
    (tmp_path / "parameters" / "visit" / "amount.yaml").write_text(PARAMETER, encoding="utf-8")
    plugin = tmp_path / "casse.py"
    plugin.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from nmr_engine.plugin import Column, ModuleSpec, TableSpec, hookimpl

            TABLE = TableSpec("visits", (Column("contract_id", "str"), Column("patient_id", "str"),
                                         Column("visit_date", "date")), event_date="visit_date")

            @hookimpl
            def nmr_register_modules(register):
                register(ModuleSpec("jouet", "Jouet", "0.1", "1.0", (TABLE,), Path({str(tmp_path / "parameters")!r})))

            @hookimpl
            def nmr_calculate(module, context):
                raise RuntimeError("bogue du plugin")
            """
        ),
        encoding="utf-8",
    )
    run = subprocess.run(
        [sys.executable, "-m", "nmr_engine.cli.main", "calculate", "--json", "--plugin", str(plugin),
         "--contracts", str(example / "contracts"), "--data", str(example / "data")],
        capture_output=True, text=True, env={"NMR_PLUGINS": "none", "PATH": "", "COLUMNS": "300"},
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stdout == ""
    assert f"le plugin « path:{plugin} » (module « jouet »" in run.stderr.replace("\n", "")
    assert "RuntimeError: bogue du plugin" in run.stderr.replace("\n", "")


# -- the kit fails on plugins that break its rules ------------------------------------------
def test_a_conforming_toy_plugin_passes_every_check(tmp_path):
    example = Example.from_dir("jouet", make_example(tmp_path), plugins=[make_plugin(tmp_path)])
    for name, check in CHECKS.items():
        check(example, tmp_path / name)
    # 3 visits of C-A (2 in 2020, 1 in 2021), 2 of C-B in 2020, at 10 € each.
    assert sorted(example.lines["amount_cents"]) == [1000, 2000, 2000]


def order_dependent(context):
    frame = good_calculate(context)
    first = context.tables["visits"].groupby("contract_id")["patient_id"].first()
    frame["explanation"] = [
        Explanation(summary=f"Visites, la première de {first[c]}", formula=e.formula, parameters=e.parameters)
        for c, e in zip(frame["contract_id"], frame["explanation"], strict=True)
    ]
    return frame


def shared_budget(context):
    """Not contract-local: 100 € shared among the contracts of the run."""
    frame = good_calculate(context)
    frame["amount_cents"] = 10000 // context.periods["contract_id"].nunique()
    return frame


def silent_zero(context):
    frame = good_calculate(context)
    frame["amount_cents"] = 0
    return frame


@pytest.mark.parametrize(
    ("calculate", "check", "message"),
    [
        (order_dependent, "row_order", "lignes mélangées : la ligne C-A"),
        (shared_budget, "vectorised", "contrat par contrat : la ligne C-A"),
        (silent_zero, "explained", "ligne à zéro sans motif"),
    ],
)
def test_the_kit_catches_a_plugin_that_breaks_a_rule(tmp_path, calculate, check, message):
    example = Example.from_dir("jouet", make_example(tmp_path), plugins=[make_plugin(tmp_path, calculate)])
    with pytest.raises(AssertionError, match=message):
        CHECKS[check](example, tmp_path / "work")


def test_the_kit_refuses_a_module_that_declares_no_typed_column(tmp_path):
    """A module declaring its date as free text validates nothing: the kit says so."""
    columns = (Column("contract_id", "str"), Column("patient_id", "str"), Column("visit_date", "str"))
    loose = TableSpec("visits", columns)
    spec = ModuleSpec("jouet", "Jouet", "0.1", "1.0", (loose,), tmp_path / "parameters")

    class Loose:
        @hookimpl
        def nmr_register_modules(register):
            register(spec)

    example = Example.from_dir("jouet", make_example(tmp_path), plugins=[Loose])
    with pytest.raises(AssertionError, match="aucune colonne typée"):
        CHECKS["declared_inputs"](example, tmp_path / "work")


def test_the_pytest_plugin_provides_the_nmr_example_fixture(nmr_example, tmp_path, pytestconfig):
    assert pytestconfig.pluginmanager.hasplugin("nmr_engine")  # registered through the pytest11 entry point
    example = nmr_example("jouet", make_example(tmp_path), plugins=[make_plugin(tmp_path)], periods=["2021"])
    # 2021: only C-A's visit of 2021-03-01, at 10 €
    assert example.calculate()[["contract_id", "amount_cents"]].values.tolist() == [["C-A", 1000]]


def test_a_plugin_receives_identifiers_as_categories_and_its_lines_carry_text(tmp_path):
    seen = {}

    def one_line_per_visit(context):
        visits = context.tables["visits"]
        seen["dtypes"] = (visits["contract_id"].dtype, visits["period_id"].dtype)
        lines = good_calculate(context)
        # a plugin that copies an input column into its lines, category and all
        codes = dict(zip(visits["contract_id"].astype(str), visits["contract_id"], strict=True))
        lines["contract_id"] = pd.Series(pd.Categorical([codes[c] for c in lines["contract_id"]]), index=lines.index)
        return lines

    example = make_example(tmp_path)
    registry = PluginRegistry(entry_points=False, plugins=[make_plugin(tmp_path, one_line_per_visit)])
    result = Workspace(example / "contracts", example / "data", registry).calculate(["2020"])
    assert all(isinstance(d, pd.CategoricalDtype) for d in seen["dtypes"])
    assert not isinstance(result.lines["contract_id"].dtype, pd.CategoricalDtype)
    assert sorted(result.lines["contract_id"]) == ["C-A", "C-B"]
    assert result.total_cents == 4_000  # 4 visits of 2020 at 10,00 €
