"""Types of the plugin API (version :data:`API_VERSION`).

Stable within a major version: the names exported by :mod:`nmr_engine.plugin`, the
fields of these classes (new optional fields may be added), the hook names and
their arguments (new arguments may be added: pluggy lets an implementation take
fewer), and the columns of a lines frame (:data:`LINE_COLUMNS`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from ..money import ROUNDING_RULE, format_eur
from ..parameters.model import WEAK_CONFIDENCE, ParamColumn, ParameterStore, ParameterVersion

#: Version of the plugin API this core provides. A plugin declares the version it
#: was written for; the core accepts the same major version with a minor ≤ its own.
API_VERSION = "1.1"
#: 1.1 (compatible with 1.0 plugins): the optional ``nmr_synthesise`` hook; the public helpers
#: :mod:`nmr_engine.plugin.intervals` and :mod:`nmr_engine.decimals`.

COLUMN_TYPES = ("str", "int", "date", "bool", "money")


@attrs.frozen
class Column:
    """A column of an input table, validated by the core before any plugin runs.

    ``type``: str | int | date (AAAA-MM-JJ) | bool (0/1, oui/non, true/false) | money
    (euros with at most two decimals, read into cents). ``min`` bounds ints/money,
    ``choices`` bounds str. ``pseudonymise`` marks personal identifiers (patients).
    ``category``: a str column handed to the plugin as a pandas category with sorted
    categories, as ``contract_id`` (an identifier repeated over many rows, e.g. the programme
    of each séance: less memory, and integer codes instead of hashing text)."""

    name: str
    type: str
    description: str = ""
    required: bool = True
    min: int | None = None
    choices: tuple[str, ...] | None = None
    pseudonymise: bool = False
    category: bool = False

    def __attrs_post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column type {self.type!r} not in {COLUMN_TYPES}")
        if self.category and self.type != "str":
            raise ValueError(f"column {self.name!r}: only a str column can be read as a category")


@attrs.frozen
class TableSpec:
    """An input table a module needs: ``<data>/<module code>/<name>.csv``.

    ``unique``: columns whose combination must not repeat (duplicate rows are errors).
    ``event_date``: the column that places each row in a contract period (the core
    adds ``period_id`` and refuses rows outside every period of the module).
    ``optional``: a missing file is read as an empty table."""

    name: str
    columns: tuple[Column, ...]
    description: str = ""
    unique: tuple[str, ...] = ()
    event_date: str | None = None
    optional: bool = False

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@attrs.frozen
class ModuleSpec:
    """What a plugin declares about one remuneration module."""

    code: str
    title: str
    version: str
    api_version: str
    tables: tuple[TableSpec, ...] = ()
    parameters_dir: Path | None = None
    description: str = ""
    #: ``nmr synth`` only: share of the synthetic contracts enrolled in the module (0 to 1);
    #: ``None``: the core's default (every contract when it is the only module, else 0.85).
    synth_enrolment: float | None = None  # ratio of synthetic contracts enrolled (not money)


@attrs.frozen
class Explanation:
    """Why a payment line has its amount, in words a payment officer reads (French).

    ``inputs``: (label, value) pairs — what was counted and from which records.
    ``parameters``: the parameter versions used (value, date of effect, source, confidence).
    ``reason``: for a line that pays nothing, why."""

    summary: str
    formula: str
    inputs: tuple[tuple[str, str], ...] = ()
    parameters: tuple[ParameterVersion, ...] = ()
    reason: str | None = None
    rounding: str | None = None
    warnings: tuple[str, ...] = ()

    def weak_parameters(self) -> list[ParameterVersion]:
        return [p for p in self.parameters if p.confidence in WEAK_CONFIDENCE or p.illustrative]

    def render(self) -> str:
        out = [self.summary, f"  Calcul : {self.formula}"]
        if self.reason:
            out.append(f"  Motif : {self.reason}")
        for label, value in self.inputs:
            out.append(f"  Donnée : {label} = {value}")
        for p in self.parameters:
            out.append(f"  Paramètre : {p.describe()}")
        if self.rounding:
            out.append(f"  Arrondi : {self.rounding}")
        weak = self.weak_parameters()
        if weak:
            out.append(
                "  Attention : valeur(s) par défaut non confirmée(s) ou illustrative(s) : "
                + ", ".join(p.name for p in weak)
            )
        for w in self.warnings:
            out.append(f"  Avertissement : {w}")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "formula": self.formula,
            "inputs": [list(i) for i in self.inputs],
            "parameters": [_parameter_dict(p) for p in self.parameters],
            "reason": self.reason,
            "rounding": self.rounding,
            "warnings": list(self.warnings),
        }


#: id -> (version, its dict): lines share a few parameter versions, each described once.
_PARAMETER_DICTS: dict[int, tuple[ParameterVersion, dict[str, Any]]] = {}


def _parameter_dict(p: ParameterVersion) -> dict[str, Any]:
    """A parameter version as :meth:`Explanation.to_dict` lists it (a new dict each time)."""
    found = _PARAMETER_DICTS.get(id(p))
    if found is None or found[0] is not p:  # the version is kept with its dict: its id is not reused
        if len(_PARAMETER_DICTS) >= 65536:
            _PARAMETER_DICTS.clear()
        found = (
            p,
            {
                "id": p.id,
                "name": p.name,
                "value": p.display_value(),
                "start": p.start.isoformat(),
                "end": p.end.isoformat() if p.end else None,
                "unit": p.unit,
                "contract_id": p.contract_id,
                "confidence": p.confidence,
                "reference": str(p.reference),
                "source": p.source,
                "illustrative": p.illustrative,
            },
        )
        _PARAMETER_DICTS[id(p)] = found
    return dict(found[1])


#: Columns of a lines frame, with their dtypes. Amounts are integer cents.
LINE_COLUMNS: dict[str, str] = {
    "contract_id": "object",
    "module": "object",
    "period_id": "object",
    "component": "object",
    "label": "object",
    "payee_id": "object",
    "instalment": "object",
    "due_date": "datetime64[ns]",
    "quantity": "int64",
    "unit_amount_cents": "Int64",
    "amount_cents": "int64",
    "explanation": "object",
}

INSTALMENTS = ("unique", "avance", "solde")


def empty_lines() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in LINE_COLUMNS.items()})


def lines_frame(records: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Build a lines frame with the standard columns and dtypes (no float allowed)."""
    if isinstance(records, list) and records and all(r.keys() == records[0].keys() for r in records):
        return _lines_of_records(records)  # the usual case: records (dicts) with the same keys
    frame = pd.DataFrame(records) if not isinstance(records, pd.DataFrame) else records.copy()
    if frame.empty:
        return empty_lines()
    for col, dtype in LINE_COLUMNS.items():
        if col not in frame:
            if col == "instalment":
                frame[col] = "unique"
            elif col == "unit_amount_cents":
                frame[col] = pd.NA
            else:
                raise ValueError(f"lines frame: missing column {col!r}")
        if dtype in ("int64", "Int64") and pd.api.types.is_float_dtype(frame[col].dtype):
            raise TypeError(f"lines frame: column {col!r} is float; money and counts must be integers")
        frame[col] = frame[col].astype(dtype) if dtype != "object" else frame[col]
    return frame[list(LINE_COLUMNS)].reset_index(drop=True)


def _lines_of_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """:func:`lines_frame` of records that all have the same keys: each column built once, with
    its dtype, then the frame (no frame of every key to convert column by column)."""
    keys = records[0].keys()
    columns = {}
    for col, dtype in LINE_COLUMNS.items():
        if col in keys:
            values = pd.Series([r[col] for r in records])
        elif col == "instalment":
            values = pd.Series(["unique"] * len(records))
        elif col == "unit_amount_cents":
            values = pd.Series([pd.NA] * len(records))
        else:
            raise ValueError(f"lines frame: missing column {col!r}")
        if dtype in ("int64", "Int64") and pd.api.types.is_float_dtype(values.dtype):
            raise TypeError(f"lines frame: column {col!r} is float; money and counts must be integers")
        columns[col] = values.astype(dtype) if dtype != "object" else values
    return pd.DataFrame(columns)


@attrs.frozen
class CalculationContext:
    """What a plugin's ``nmr_calculate`` receives.

    ``periods``: the (contract, period) rows to compute, one per contract period where the
    module is active (see :func:`nmr_engine.model.module_periods_frame` for columns).
    ``history``: the same for every period of the contracts (for "once per contract" rules).
    ``tables``: validated input tables by name; rows with an event date carry ``period_id``.
    ``parameters``: dated parameters, with the contracts' overrides.
    ``suspensions``: contract_id, start, end (datetimes) — the spans where a contract is
    suspended and pays nothing. ``active_days`` already leaves them out; a rule that counts
    days over ``active_start``..``active_end`` itself subtracts them with
    :func:`nmr_engine.plugin.intervals.suspended_days`."""

    module: ModuleSpec
    periods: pd.DataFrame
    history: pd.DataFrame
    tables: Mapping[str, pd.DataFrame]
    parameters: ParameterStore
    run_date: dt.date
    suspensions: pd.DataFrame = attrs.field(
        factory=lambda: pd.DataFrame(
            {
                "contract_id": pd.Series(dtype="object"),
                "start": pd.Series(dtype="datetime64[ns]"),
                "end": pd.Series(dtype="datetime64[ns]"),
            }
        )
    )

    def param(self, name: str) -> str:
        """Full name of one of this module's parameters: ``param('x.y') == '<code>.x.y'``."""
        return f"{self.module.code}.{name}"

    def lookup(self, name: str, contract_ids: pd.Series, dates: pd.Series) -> ParamColumn:
        """Vectorised "value in force on each date for each contract" of a module parameter."""
        return self.parameters.column(self.param(name), contract_ids, dates)

    def at(self, name: str, day: dt.date, contract_id: str | None = None) -> ParameterVersion | None:
        return self.parameters.at(self.param(name), day, contract_id)


@attrs.frozen
class SynthScale:
    """The size of a synthetic data set, as ``nmr synth`` hands it to ``nmr_synthesise``.

    ``years``: the calendar years of activity to generate (e.g. ``(2012, 2013)``).
    ``patients_per_structure``: mean number of new patient cycles per contract, module
    programme and year (a plugin without patients reads it as its main size knob).
    ``name``: the preset (``custom``, ``example``, ``national``), for messages only."""

    years: tuple[int, ...]
    patients_per_structure: int
    name: str = "custom"


def euros(cents: int) -> str:
    """Format cents for an explanation (plugins use it so every text reads the same)."""
    return format_eur(cents)


__all__ = [
    "API_VERSION",
    "INSTALMENTS",
    "LINE_COLUMNS",
    "ROUNDING_RULE",
    "CalculationContext",
    "Column",
    "Explanation",
    "ModuleSpec",
    "SynthScale",
    "TableSpec",
    "empty_lines",
    "euros",
    "lines_frame",
]
