"""Parameter types and the store that answers "value in force on date D for contract C"."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

import attrs
import numpy as np
import pandas as pd

from ..errors import ConfigurationError
from ..money import format_eur

#: SEED/HIGH/MED/LOW/OPEN as in RULES.md; CONTRACT = set by the signed convention itself.
CONFIDENCE_LEVELS = ("SEED", "HIGH", "MED", "LOW", "OPEN", "CONTRACT")
#: Levels a statement must flag as defaults that were not confirmed.
WEAK_CONFIDENCE = ("LOW", "OPEN")


@attrs.frozen
class Reference:
    """Legal or documentary source of a value."""

    title: str
    href: str | None = None

    def __str__(self) -> str:
        return f"{self.title} ({self.href})" if self.href else self.title


@attrs.frozen
class ParameterVersion:
    """One value of a parameter, in force from ``start`` to ``end`` (None: open-ended).

    ``value`` is None when the parameter is *not in force* from that date (the
    OpenFisca convention for a rule that ends)."""

    name: str
    start: dt.date
    value: Any
    unit: str
    confidence: str
    reference: Reference
    source: str
    end: dt.date | None = None
    contract_id: str | None = None
    illustrative: bool = False

    @property
    def id(self) -> str:
        suffix = f"#{self.contract_id}" if self.contract_id else ""
        return f"{self.name}@{self.start.isoformat()}{suffix}"

    @property
    def in_force(self) -> bool:
        return self.value is not None

    def display_value(self) -> str:
        return display_value(self.value, self.unit)

    def describe(self) -> str:
        """French one-liner: value, date of effect, source, confidence."""
        origin = f"avenant/convention du contrat {self.contract_id}" if self.contract_id else "barème"
        text = (
            f"{self.name} = {self.display_value()} (en vigueur depuis le {self.start:%d/%m/%Y}, {origin} ; "
            f"source : {self.reference} ; fiabilité : {self.confidence})"
        )
        if self.illustrative:
            text += " [valeur illustrative]"
        return text


def display_value(value: Any, unit: str) -> str:
    if value is None:
        return "non en vigueur"
    if unit == "EUR":
        return format_eur(value)
    if unit == "rate":
        pct = Fraction(value) * 100
        return f"{pct.numerator / pct.denominator:g} %" if pct.denominator != 1 else f"{pct.numerator} %"
    if unit == "table":
        return "; ".join(
            ", ".join(f"{k}={display_value(v, 'EUR') if k.endswith('amount') else v}" for k, v in row.items())
            for row in value
        )
    return str(value)


@attrs.frozen
class Parameter:
    """A named parameter and its successive versions (sorted by start date)."""

    name: str
    description: str
    unit: str
    versions: tuple[ParameterVersion, ...]
    source: str
    last_value_still_valid_on: dt.date | None = None
    columns: dict | None = None

    def at(self, day: dt.date) -> ParameterVersion | None:
        found = None
        for version in self.versions:
            if version.start <= day:
                found = version
            else:
                break
        return found


@attrs.frozen
class ParamColumn:
    """Result of a vectorised lookup: for each row, the index of the version used (-1: none)."""

    name: str
    versions: tuple[ParameterVersion, ...]
    index: np.ndarray

    def version_ids(self) -> pd.Series:
        ids = np.array([v.id for v in self.versions] + [""], dtype=object)
        return pd.Series(ids[self.index])

    def in_force(self) -> np.ndarray:
        """Boolean mask: a version exists and its value is not None."""
        flags = np.array([v.in_force for v in self.versions] + [False], dtype=bool)
        return flags[self.index]

    def values(self, missing: Any = None) -> np.ndarray:
        """Values per row; ``missing`` where no version is in force.

        EUR and int parameters come back as int64 when ``missing`` is an int."""
        vals = [v.value if v.in_force else missing for v in self.versions] + [missing]
        if isinstance(missing, int) and all(isinstance(v, int) for v in vals):
            return np.array(vals, dtype=np.int64)[self.index]
        return np.array(vals, dtype=object)[self.index]

    def version_at(self, row_index: int) -> ParameterVersion | None:
        i = int(self.index[row_index])
        return None if i >= len(self.versions) else self.versions[i]


_EPOCH = dt.date(1970, 1, 1)
_NS_PER_DAY = 86_400_000_000_000


def _day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def _day_numbers(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01 of datetime64 values (floored, as a cast to ``datetime64[D]``) and
    which values are not NaT (their day is then meaningless)."""
    ns = raw.astype("datetime64[ns]", copy=False).view(np.int64)
    known = ns != np.iinfo(np.int64).min
    return ns // _NS_PER_DAY, known


_NAT = np.iinfo(np.int64).min
#: Up to this many versions (starting within ±270 years of 1970), :meth:`ParameterStore.column`
#: compares each row's time with each start.
_FEW_VERSIONS = 8


def _starts_passed(ns: np.ndarray, starts_ns: np.ndarray) -> np.ndarray:
    """For each time (int64 nanoseconds, no NaT), the position of the last of the ascending
    ``starts_ns`` on or before it (-1: none): what :func:`_versions_in_force` gives on the days
    (a start is midnight, so a time is on or after it exactly when its day is)."""
    index = np.full(len(ns), -1, dtype=np.int64)
    for start in starts_ns.tolist():
        index += ns >= start
    return index


def _versions_in_force(starts: np.ndarray, days: np.ndarray, known: np.ndarray) -> np.ndarray:
    """For each day, the position of the last start on or before it (-1: none), as
    ``np.searchsorted(starts, days, side="right") - 1``: looked up once per day of the span of
    ``days`` when that span is short (a few years of séances), then gathered."""
    every = bool(known.all())
    seen = days if every else days[known]
    if not seen.size:
        return np.full(len(days), -1, dtype=np.int64)
    low, high = int(seen.min()), int(seen.max())
    if high - low > max(len(days), 1000):  # a long span for few days: search each day
        return (np.searchsorted(starts, days, side="right") - 1).astype(np.int64)
    table = np.searchsorted(starts, np.arange(low, high + 1), side="right").astype(np.int64) - 1
    return table[days - low] if every else table[np.clip(days - low, 0, high - low)]


class ParameterStore:
    """All parameters known to a run, plus the contracts' overrides.

    ``at(name, day, contract_id)`` answers the value in force and says where it
    came from; ``column(...)`` does the same for whole pandas columns at once.
    A contract override applies from its ``start`` to its ``end`` (or the end of the
    contract) and wins over the base scale there."""

    def __init__(self) -> None:
        self._params: dict[str, Parameter] = {}
        self._overrides: dict[tuple[str, str], list[ParameterVersion]] = {}
        self.stale_warnings: set[str] = set()

    # -- building -----------------------------------------------------------------
    def add(self, parameter: Parameter) -> None:
        if parameter.name in self._params:
            raise ConfigurationError(
                f"paramètre « {parameter.name} » défini deux fois "
                f"({self._params[parameter.name].source} et {parameter.source})"
            )
        self._params[parameter.name] = parameter

    def add_override(self, version: ParameterVersion) -> None:
        if version.name not in self._params:
            raise KeyError(version.name)
        key = (version.contract_id, version.name)
        self._overrides.setdefault(key, []).append(version)
        self._overrides[key].sort(key=lambda v: v.start)

    def __contains__(self, name: str) -> bool:
        return name in self._params

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._params[name]
        except KeyError:
            raise ConfigurationError(f"paramètre inconnu : « {name} »") from None

    def names(self) -> list[str]:
        return sorted(self._params)

    def overrides(self) -> dict[tuple[str, str], list[ParameterVersion]]:
        return {k: list(v) for k, v in self._overrides.items()}

    # -- lookup ---------------------------------------------------------------------
    def at(self, name: str, day: dt.date, contract_id: str | None = None) -> ParameterVersion | None:
        """The version in force on ``day`` for ``contract_id`` (None if none)."""
        param = self[name]
        if contract_id is not None:
            for version in reversed(self._overrides.get((contract_id, name), [])):
                if version.start <= day and (version.end is None or day <= version.end):
                    self._check_stale(param, day)
                    return version
        self._check_stale(param, day)
        return param.at(day)

    def column(self, name: str, contract_ids: pd.Series, dates: pd.Series) -> ParamColumn:
        """Vectorised :meth:`at` over aligned columns of contract ids and dates."""
        param = self[name]
        versions = list(param.versions)
        raw = np.asarray(dates) if isinstance(dates, (pd.Series, pd.Index, np.ndarray)) else None
        if raw is None or raw.dtype.kind != "M":  # not already datetime64: parse (dates, Timestamps, text)
            raw = pd.to_datetime(dates).to_numpy()
        starts = np.array([v.start for v in param.versions], dtype="datetime64[D]")
        ns = raw.astype("datetime64[ns]", copy=False).view(np.int64)
        few = len(starts) <= _FEW_VERSIONS and (not len(starts) or int(np.abs(starts.view(np.int64)).max()) < 100_000)
        if few and (not ns.size or int(ns.min()) != _NAT):
            # no NaT and few versions: count the starts on or before each day (one comparison per
            # version, no day numbers for every row)
            days, known = None, None
            index = _starts_passed(ns, starts.view(np.int64) * _NS_PER_DAY)
        else:
            days, known = _day_numbers(raw)
            index = _versions_in_force(starts.view(np.int64), days, known)
            if not known.all():  # NaT: where numpy's search puts it (after every start)
                index[~known] = np.searchsorted(starts, raw[~known].astype("datetime64[D]"), side="right") - 1
        contracts = None  # converted only when the parameter has contract overrides
        for (contract_id, oname), overrides in self._overrides.items():
            if oname != name:
                continue
            if contracts is None:
                contracts = np.asarray(contract_ids, dtype=object)
            rows = np.flatnonzero(contracts == contract_id)
            if rows.size == 0:
                continue
            if days is None:
                days, known = _day_numbers(raw)
            for version in overrides:  # sorted by start: later ones win (NaT: never)
                day_rows = days[rows]
                hit = known[rows] & (day_rows >= _day_number(version.start))
                if version.end is not None:
                    hit &= day_rows <= _day_number(version.end)
                if hit.any():
                    versions.append(version)
                    index[rows[hit]] = len(versions) - 1
        all_known = known is None or bool(known.all())
        if len(ns) and all_known and param.last_value_still_valid_on is not None:  # (a NaT: no check)
            latest = int(ns.max()) // _NS_PER_DAY
            if latest > _day_number(param.last_value_still_valid_on):
                self._check_stale(param, _EPOCH + dt.timedelta(days=latest))
        # -1 (before any version) maps to the sentinel slot len(versions) in ParamColumn.
        index[index < 0] = len(versions)
        return ParamColumn(name, tuple(versions), index)

    def _check_stale(self, param: Parameter, day: dt.date) -> None:
        stamp = param.last_value_still_valid_on
        if stamp is not None and day > stamp:
            self.stale_warnings.add(
                f"Le paramètre « {param.name} » n'a été vérifié que jusqu'au {stamp:%d/%m/%Y} ; "
                f"il est utilisé au-delà (jusqu'au {day:%d/%m/%Y} au moins)."
            )
