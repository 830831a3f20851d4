"""Parameter files, one YAML file per parameter (as OpenFisca does)::

    description: Forfait par professionnel formé à l'ETP
    unit: EUR                 # EUR | int | rate | bool | text | table
    columns: {...}            # for unit: table, the unit of each column
    metadata:
      last_value_still_valid_on: 2014-12-31   # review stamp
    values:
      2010-01-01:
        value: "1000.00"      # null: the rule is no longer in force from that date
        confidence: SEED      # SEED | HIGH | MED | LOW | OPEN | CONTRACT
        reference:
          title: ARS Nord-Pas-de-Calais, point presse de mai 2013, fiche 5
          href: https://...
        illustrative: false

A file ``<dir>/training/amount.yaml`` under a module whose code is ``etp`` defines
the parameter ``etp.training.amount``.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs

from ..errors import InputError, Problem
from ..money import parse_euros
from ..yamlfile import LocatedDict, load_yaml
from .model import CONFIDENCE_LEVELS, Parameter, ParameterVersion, Reference

UNITS = ("EUR", "int", "rate", "bool", "text", "table", "date")


def parse_value(raw: Any, unit: str, columns: dict | None = None) -> Any:
    """Turn a YAML scalar into the exact Python value for ``unit``. Raises ValueError (French)."""
    if raw is None:
        return None
    if unit == "EUR":
        return parse_euros(raw)
    if unit == "int":
        if isinstance(raw, bool) or not str(raw).lstrip("-").isdigit():
            raise ValueError(f"entier attendu, reçu {raw!r}")
        return int(raw)
    if unit == "rate":
        text = str(raw).strip()
        if text.endswith("%"):
            return Fraction(text[:-1].strip().replace(",", ".")) / 100
        return Fraction(text.replace(",", "."))
    if unit == "bool":
        if not isinstance(raw, bool):
            raise ValueError(f"booléen attendu (true/false), reçu {raw!r}")
        return raw
    if unit == "date":
        if isinstance(raw, dt.date):
            return raw
        return dt.date.fromisoformat(str(raw))
    if unit == "text":
        return str(raw)
    if unit == "table":
        if not isinstance(raw, list) or not columns:
            raise ValueError("une table attend une liste de lignes et la déclaration « columns »")
        rows = []
        for row in raw:
            if not isinstance(row, dict) or set(row) != set(columns):
                raise ValueError(f"chaque ligne de la table doit avoir exactement les colonnes {sorted(columns)}")
            rows.append({k: parse_value(row[k], columns[k]) for k in columns})
        return tuple(rows)
    raise ValueError(f"unité inconnue {unit!r} ; attendu l'une de {', '.join(UNITS)}")


def _date_key(key: Any) -> dt.date:
    if isinstance(key, dt.date):
        return key
    return dt.date.fromisoformat(str(key))


def load_parameter_file(path: Path, name: str) -> Parameter:
    """Load one parameter file; every problem names the file, line and field."""
    data = load_yaml(path)
    problems: list[Problem] = []
    file = str(path)

    def bad(message: str, field: str, line: int | None) -> None:
        problems.append(Problem(file, message, line, field))

    if not isinstance(data, LocatedDict):
        raise InputError([Problem(file, "un fichier de paramètre doit être un dictionnaire YAML", 1)])
    unit = data.get("unit")
    if unit not in UNITS:
        bad(f"unité attendue parmi {', '.join(UNITS)}, reçu {unit!r}", "unit", data.line_of("unit"))
    columns = data.get("columns")
    if unit == "table" and not isinstance(columns, dict):
        bad("une table doit déclarer ses colonnes et leur unité", "columns", data.line_of("columns"))
    metadata = data.get("metadata") or {}
    stamp = metadata.get("last_value_still_valid_on") if isinstance(metadata, dict) else None
    values = data.get("values")
    versions: list[ParameterVersion] = []
    if not isinstance(values, LocatedDict) or not values:
        bad("au moins une valeur datée est attendue", "values", data.line_of("values"))
        values = LocatedDict()
        values.key_lines = {}
    for key, entry in values.items():
        line = values.line_of(key)
        try:
            start = _date_key(key)
        except ValueError:
            bad(f"date d'effet attendue au format AAAA-MM-JJ, reçu {key!r}", "values", line)
            continue
        if not isinstance(entry, dict) or "value" not in entry:
            bad("chaque date doit porter « value », « confidence » et « reference »", f"values.{key}", line)
            continue
        confidence = entry.get("confidence")
        if confidence not in CONFIDENCE_LEVELS:
            bad(
                f"fiabilité attendue parmi {', '.join(CONFIDENCE_LEVELS)}, reçu {confidence!r}",
                f"values.{key}.confidence",
                line,
            )
            continue
        ref = entry.get("reference")
        if isinstance(ref, dict) and ref.get("title"):
            reference = Reference(str(ref["title"]), ref.get("href"))
        elif isinstance(ref, str) and ref:
            reference = Reference(ref)
        else:
            bad("une référence (title, href) est obligatoire", f"values.{key}.reference", line)
            continue
        try:
            value = parse_value(entry["value"], unit, columns) if unit in UNITS else None
        except (ValueError, ArithmeticError) as exc:
            bad(str(exc), f"values.{key}.value", line)
            continue
        versions.append(
            ParameterVersion(
                name=name,
                start=start,
                value=value,
                unit=unit,
                confidence=confidence,
                reference=reference,
                source=f"{file}:{line}",
                illustrative=bool(entry.get("illustrative", False)),
            )
        )
    if problems:
        raise InputError(problems)
    versions.sort(key=lambda v: v.start)
    # Each version ends the day before the next one starts.
    bounded = tuple(
        _with_end(v, versions[i + 1].start - dt.timedelta(days=1) if i + 1 < len(versions) else None)
        for i, v in enumerate(versions)
    )
    return Parameter(
        name=name,
        description=str(data.get("description", "")),
        unit=unit,
        versions=bounded,
        source=file,
        last_value_still_valid_on=_date_key(stamp) if stamp else None,
        columns=dict(columns) if isinstance(columns, dict) else None,
    )


def _with_end(version: ParameterVersion, end: dt.date | None) -> ParameterVersion:
    return attrs.evolve(version, end=end)


def load_parameter_dir(directory: Path, prefix: str) -> list[Parameter]:
    """Load every ``*.yaml`` below ``directory``; names are ``prefix.sub.dir.file``."""
    directory = Path(directory)
    params = []
    problems: list[Problem] = []
    for path in sorted(directory.rglob("*.yaml")):
        rel = path.relative_to(directory).with_suffix("")
        name = ".".join([prefix, *rel.parts])
        try:
            params.append(load_parameter_file(path, name))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return params
