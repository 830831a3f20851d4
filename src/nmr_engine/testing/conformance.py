"""Conformance checks for module plugins, run on a module's example contracts and data.

Each check takes an :class:`Example` (the module code, its example contracts and data
folders, and how to load the plugin) and a scratch folder, and raises
``AssertionError`` with a plain message when the module breaks a rule of the engine:

- ``declared_inputs``: a missing column and a value of the wrong type in each example
  table are refused (the core validates what the module declares, naming file, line, field);
- ``typed_outputs``: lines have the standard columns and dtypes, integer cents, no float;
- ``explained``: every line carries an :class:`Explanation` with a summary and a formula,
  every paying line cites parameter versions, every zero line says why;
- ``row_order``: shuffling the rows of every input table gives the same lines;
- ``vectorised``: all contracts at once give the same lines as each contract alone;
- ``parameters``: every parameter version is dated, sourced and has a known confidence.

The checks compare lines on every column but the explanation, and on the explanation's
summary, formula, reason and parameter versions (the input file lines it cites may
differ when rows move).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pandas as pd
import pytest

from ..errors import ConfigurationError, InputError
from ..parameters.model import CONFIDENCE_LEVELS

SHUFFLE_SEED = 20150223


@attrs.define(slots=False)
class Example:
    """A module's example workspace: contracts, data, and where its plugin comes from.

    ``package_dir``: the plugin's package folder, loaded by path when the module is not
    installed (so a freshly scaffolded plugin can test itself before ``pip install``).
    ``periods``: the periods to compute (ids, years or dates; all when None)."""

    module: str
    contracts_dir: Path
    data_dir: Path
    package_dir: Path | None = None
    periods: Sequence[str] | None = None
    run_date: dt.date = attrs.field(factory=dt.date.today)
    #: plugin objects to register instead of looking the module up (tests of the kit itself).
    plugins: Sequence[Any] = ()

    @classmethod
    def from_dir(cls, module: str, example_dir: Path, **kwargs: Any) -> Example:
        """``example_dir/contracts`` and ``example_dir/data``."""
        example_dir = Path(example_dir)
        return cls(module, example_dir / "contracts", example_dir / "data", **kwargs)

    @functools.cached_property
    def registry(self):
        from ..plugin.manager import PluginRegistry

        if self.plugins:
            return PluginRegistry(entry_points=False, plugins=list(self.plugins))
        installed = PluginRegistry()
        if self.module in installed.modules():
            return installed
        if self.package_dir is None:
            raise ConfigurationError(
                f"module « {self.module} » introuvable : installez le paquet du plugin (pip install -e .) "
                f"ou indiquez package_dir ; modules installés : {', '.join(installed.modules()) or 'aucun'}"
            )
        registry = PluginRegistry(paths=[Path(self.package_dir)])
        if self.module not in registry.modules():
            raise ConfigurationError(f"le paquet {self.package_dir} ne déclare pas le module « {self.module} »")
        return registry

    @property
    def spec(self):
        return self.registry.modules()[self.module].spec

    def workspace(self, contracts_dir: Path | None = None, data_dir: Path | None = None):
        from ..engine import Workspace

        return Workspace(contracts_dir or self.contracts_dir, data_dir or self.data_dir, self.registry, self.run_date)

    def calculate(self, contracts_dir: Path | None = None, data_dir: Path | None = None) -> pd.DataFrame:
        """The module's lines for the example periods (raises InputError / PluginError)."""
        workspace = self.workspace(contracts_dir, data_dir)
        periods = list(self.periods) if self.periods else None
        return workspace.calculate(periods, [self.module]).lines

    @functools.cached_property
    def lines(self) -> pd.DataFrame:
        """The example's lines, computed once."""
        return self.calculate()

    def copy_to(self, target: Path, contract_id: str | None = None) -> tuple[Path, Path]:
        """Copy the example (only ``contract_id``'s file and rows when given) to ``target``."""
        contracts, data = Path(target) / "contracts", Path(target) / "data"
        contracts.mkdir(parents=True, exist_ok=True)
        for path in sorted(Path(self.contracts_dir).glob("*.yaml")):
            if contract_id is None or _contract_id(path) == contract_id:
                shutil.copy(path, contracts / path.name)
        source = Path(self.data_dir) / self.module
        (data / self.module).mkdir(parents=True, exist_ok=True)
        for path in sorted(source.glob("*.csv")):
            if contract_id is None:
                shutil.copy(path, data / self.module / path.name)
                continue
            sep, header, rows = read_csv_rows(path)
            if "contract_id" in header:
                col = header.index("contract_id")
                rows = [r for r in rows if len(r) > col and r[col] == contract_id]
            write_csv_rows(data / self.module / path.name, sep, header, rows)
        return contracts, data

    def contract_ids(self) -> list[str]:
        return [_contract_id(p) for p in sorted(Path(self.contracts_dir).glob("*.yaml"))]

    def table_paths(self) -> dict[str, Path]:
        return {t.name: Path(self.data_dir) / self.module / f"{t.name}.csv" for t in self.spec.tables}


def _contract_id(path: Path) -> str:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return str(yaml.safe_load(fh)["id"])


def read_csv_rows(path: Path) -> tuple[str, list[str], list[list[str]]]:
    """(separator, header, rows) of a CSV file, as the core reads it (``;`` or ``,``)."""
    text = Path(path).read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    sep = ";" if ";" in first and first.count(";") >= first.count(",") else ","
    rows = list(csv.reader(text.splitlines(), delimiter=sep))
    return sep, rows[0] if rows else [], rows[1:]


def write_csv_rows(path: Path, sep: str, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=sep, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


# -- comparing lines ---------------------------------------------------------------------
def comparable_lines(lines: pd.DataFrame) -> list[dict[str, Any]]:
    """Lines as sorted plain records, the explanation reduced to what must not depend on
    row order (summary, formula, reason, parameter versions)."""
    records = []
    for row in lines.to_dict("records"):
        e = row.pop("explanation")
        row["due_date"] = pd.Timestamp(row["due_date"]).date().isoformat()
        row["unit_amount_cents"] = None if pd.isna(row["unit_amount_cents"]) else int(row["unit_amount_cents"])
        row["amount_cents"] = int(row["amount_cents"])
        row["quantity"] = int(row["quantity"])
        row["summary"] = e.summary
        row["formula"] = e.formula
        row["reason"] = e.reason
        row["parameters"] = tuple(sorted(p.id for p in e.parameters))
        records.append(row)
    keys = ("contract_id", "period_id", "module", "component", "payee_id", "instalment")
    return sorted(records, key=lambda r: tuple(str(r[k]) for k in keys))


def assert_same_lines(expected: pd.DataFrame, actual: pd.DataFrame, what: str) -> None:
    a, b = comparable_lines(expected), comparable_lines(actual)
    if a == b:
        return
    if len(a) != len(b):
        raise AssertionError(f"{what} : {len(b)} ligne(s) au lieu de {len(a)}")
    for x, y in zip(a, b, strict=True):
        if x != y:
            diff = {k: (x[k], y.get(k)) for k in x if x[k] != y.get(k)}
            raise AssertionError(
                f"{what} : la ligne {x['contract_id']} {x['period_id']} « {x['component']} » "
                f"({x['instalment']}) diffère : {diff}"
            )


# -- the checks --------------------------------------------------------------------------
def check_module_registered(example: Example, tmp: Path) -> None:
    """The module is registered, its API version accepted, and its example pays something."""
    from ..plugin.manager import api_compatible

    spec = example.spec
    assert spec.code == example.module
    assert api_compatible(spec.api_version), f"API {spec.api_version} incompatible"
    assert spec.version, "ModuleSpec.version est vide"
    ids = example.contract_ids()
    assert len(ids) >= 2, f"l'exemple doit compter au moins deux contrats (trouvé {len(ids)})"
    lines = example.lines
    assert not lines.empty, "l'exemple ne produit aucune ligne : les contrôles seraient vides"
    assert int(lines["amount_cents"].abs().sum()) > 0, "l'exemple ne paie rien : ajoutez des données qui paient"


def check_declared_inputs(example: Example, tmp: Path) -> None:
    """For each example table with rows: a missing column and a mistyped value are refused."""
    tried = typed_tried = 0
    for table in example.spec.tables:
        path = example.table_paths()[table.name]
        if not path.exists():
            continue
        sep, header, rows = read_csv_rows(path)
        if not rows:
            continue
        tried += 1
        # 1. a declared, required column removed from the header
        column = next((c for c in table.columns if c.required), table.columns[0])
        contracts, data = example.copy_to(tmp / f"{table.name}-missing")
        col = header.index(column.name)
        write_csv_rows(
            data / example.module / path.name,
            sep,
            [h for i, h in enumerate(header) if i != col],
            [[v for i, v in enumerate(r) if i != col] for r in rows],
        )
        problems = _expect_refused(example, contracts, data, f"{path.name} sans la colonne {column.name}")
        _expect_problem(problems, path.name, column.name, 1, f"colonne {column.name} manquante")
        # 2. a value of the wrong type in the first data row
        typed = next((c for c in table.columns if c.type != "str"), None)
        bad_value = "pas-une-valeur"
        if typed is None:
            typed = next((c for c in table.columns if c.choices), None)
            bad_value = "valeur-hors-liste"
        if typed is None:
            continue
        typed_tried += 1
        contracts, data = example.copy_to(tmp / f"{table.name}-type")
        col = header.index(typed.name)
        broken = [list(r) for r in rows]
        broken[0][col] = bad_value
        write_csv_rows(data / example.module / path.name, sep, header, broken)
        problems = _expect_refused(example, contracts, data, f"{path.name}, ligne 2, {typed.name}={bad_value!r}")
        _expect_problem(problems, path.name, typed.name, 2, f"valeur {bad_value!r} de type {typed.type}")
    assert tried, "aucune table de l'exemple n'a de lignes : les entrées déclarées ne sont pas éprouvées"
    assert typed_tried, "aucune colonne typée (int, date, money, bool) ni à choix : les entrées ne sont pas typées"


def _expect_refused(example: Example, contracts: Path, data: Path, what: str) -> list:
    try:
        example.calculate(contracts, data)
    except InputError as exc:
        return exc.problems
    raise AssertionError(f"entrée invalide acceptée : {what}")


def _expect_problem(problems: list, file: str, field: str, line: int, what: str) -> None:
    hit = [p for p in problems if p.file.endswith(file) and p.field == field and p.line == line]
    assert hit, f"{what} : aucune erreur ne nomme {file}, ligne {line}, champ {field} ; erreurs : {problems}"


def check_typed_outputs(example: Example, tmp: Path) -> None:
    """Standard columns and dtypes, integer cents, no float anywhere, sane values."""
    from ..plugin.api import INSTALMENTS, LINE_COLUMNS

    lines = example.lines
    assert list(lines.columns) == list(LINE_COLUMNS), f"colonnes {list(lines.columns)}"
    for col, dtype in LINE_COLUMNS.items():
        if dtype == "object":  # pandas ≥ 3 may infer its string dtype for text columns
            assert str(lines[col].dtype) in ("object", "str", "string"), f"colonne {col} : {lines[col].dtype}"
        else:
            assert str(lines[col].dtype) == dtype, f"colonne {col} : {lines[col].dtype} au lieu de {dtype}"
        if dtype == "object":
            floats = lines[col].map(lambda v: isinstance(v, float))
            assert not floats.any(), f"colonne {col} : nombre flottant {lines.loc[floats, col].iloc[0]!r}"
    assert lines["amount_cents"].notna().all(), "montant manquant"
    assert lines["due_date"].notna().all(), "échéance sans date"
    assert (lines["quantity"] >= 0).all(), "quantité négative"
    assert lines["module"].eq(example.module).all(), "ligne d'un autre module"
    assert lines["instalment"].isin(INSTALMENTS).all(), "échéance inconnue"
    for col in ("contract_id", "period_id", "component", "label", "payee_id"):
        empty = lines[col].map(lambda v: not isinstance(v, str) or not v.strip())
        assert not empty.any(), f"colonne {col} vide ou non textuelle"


def check_explained(example: Example, tmp: Path) -> None:
    """Every line explained; paying lines cite parameters; zero lines say why."""
    from ..plugin.api import Explanation

    lines = example.lines
    for row in lines.itertuples(index=False):
        where = f"{row.contract_id} {row.period_id} « {row.component} »"
        e = row.explanation
        assert isinstance(e, Explanation), f"{where} : pas d'Explanation"
        assert e.summary.strip() and e.formula.strip(), f"{where} : résumé ou formule vide"
        if int(row.amount_cents) != 0:
            assert e.parameters, f"{where} : montant non nul sans paramètre cité"
        else:
            assert e.reason and e.reason.strip(), f"{where} : ligne à zéro sans motif"
        for p in e.parameters:
            assert p.confidence in CONFIDENCE_LEVELS, f"{where} : fiabilité {p.confidence!r} de {p.name}"
            assert p.reference.title.strip(), f"{where} : {p.name} sans référence"


def check_row_order(example: Example, tmp: Path) -> None:
    """Shuffling the rows of every input table changes no line."""
    expected = example.lines
    contracts, data = example.copy_to(tmp / "shuffled")
    rng = random.Random(SHUFFLE_SEED)
    moved = 0
    for path in sorted((data / example.module).glob("*.csv")):
        sep, header, rows = read_csv_rows(path)
        shuffled = list(reversed(rows))
        rng.shuffle(shuffled)
        moved += shuffled != rows
        write_csv_rows(path, sep, header, shuffled)
    assert moved, "aucune table de plus d'une ligne à mélanger"
    assert_same_lines(expected, example.calculate(contracts, data), "lignes mélangées")


def check_vectorised(example: Example, tmp: Path) -> None:
    """All contracts computed at once give the lines of each contract computed alone."""
    expected = example.lines
    frames = []
    for contract_id in example.contract_ids():
        contracts, data = example.copy_to(tmp / contract_id.replace("/", "_"), contract_id)
        frames.append(example.calculate(contracts, data))
    alone = pd.concat(frames, ignore_index=True)
    assert_same_lines(expected, alone, "contrat par contrat")


def check_parameters(example: Example, tmp: Path) -> None:
    """The module's parameter files: each version dated, with a reference and a known confidence."""
    from ..parameters import load_parameter_dir

    folder = example.spec.parameters_dir
    assert folder is not None and Path(folder).is_dir(), "ModuleSpec.parameters_dir absent : aucun paramètre daté"
    params = load_parameter_dir(Path(folder), example.module)
    assert params, f"aucun fichier de paramètre dans {folder}"
    for param in params:
        assert param.versions, f"{param.name} : aucune valeur datée"
        starts = [v.start for v in param.versions]
        assert len(set(starts)) == len(starts), f"{param.name} : deux valeurs à la même date"
        for v in param.versions:
            assert isinstance(v.start, dt.date), f"{param.name} : date d'effet invalide"
            assert v.confidence in CONFIDENCE_LEVELS, f"{param.name}@{v.start} : fiabilité {v.confidence!r}"
            assert v.reference.title.strip(), f"{param.name}@{v.start} : référence vide"


#: The checks, by name, in the order the suite runs them.
CHECKS: dict[str, Callable[[Example, Path], None]] = {
    "module_registered": check_module_registered,
    "declared_inputs": check_declared_inputs,
    "typed_outputs": check_typed_outputs,
    "explained": check_explained,
    "row_order": check_row_order,
    "vectorised": check_vectorised,
    "parameters": check_parameters,
}


# -- the pytest suite --------------------------------------------------------------------
class ConformanceSuite:
    """Base class of the generated suites: one test per check, on ``example``."""

    __test__ = False
    example: Example

    def test_module_registered(self, tmp_path):
        check_module_registered(self.example, tmp_path)

    def test_declared_inputs_are_validated(self, tmp_path):
        check_declared_inputs(self.example, tmp_path)

    def test_outputs_are_typed_and_exact(self, tmp_path):
        check_typed_outputs(self.example, tmp_path)

    def test_every_line_is_explained(self, tmp_path):
        check_explained(self.example, tmp_path)

    def test_independent_of_row_order(self, tmp_path):
        check_row_order(self.example, tmp_path)

    def test_vectorised_equals_contract_by_contract(self, tmp_path):
        check_vectorised(self.example, tmp_path)

    def test_parameters_are_dated_and_sourced(self, tmp_path):
        check_parameters(self.example, tmp_path)


def conformance_suite(
    module: str,
    example_dir: Path | None = None,
    *,
    contracts_dir: Path | None = None,
    data_dir: Path | None = None,
    package_dir: Path | None = None,
    periods: Sequence[str] | None = None,
    run_date: dt.date | None = None,
) -> type:
    """A pytest test class running every conformance check on ``module``'s example.

    ``example_dir`` holds ``contracts/`` and ``data/<module>/``; or give ``contracts_dir``
    and ``data_dir``. Assign the result to a name pytest collects::

        TestConformance = conformance_suite("my_code", example_dir=HERE.parent / "example")
    """
    if example_dir is not None:
        contracts_dir = contracts_dir or Path(example_dir) / "contracts"
        data_dir = data_dir or Path(example_dir) / "data"
    if contracts_dir is None or data_dir is None:
        raise TypeError("conformance_suite: example_dir, or contracts_dir and data_dir, required")
    example = Example(
        module,
        Path(contracts_dir),
        Path(data_dir),
        package_dir=Path(package_dir) if package_dir else None,
        periods=tuple(periods) if periods else None,
        run_date=run_date or dt.date.today(),
    )
    suite = type(
        f"TestConformance_{module}",
        (ConformanceSuite,),
        {"__test__": True, "example": example, "__doc__": f"Conformance of module « {module} »."},
    )
    return pytest.mark.nmr_conformance(suite)
