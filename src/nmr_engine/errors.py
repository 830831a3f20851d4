"""Errors that name where the problem is.

Staff read these messages: they are in French and always say the file, the line
(when there is one), the field and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs


@attrs.frozen
class Problem:
    """One located problem in an input (file, line, field, message)."""

    file: str
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"ligne {self.line}")
        if self.field:
            where.append(f"champ « {self.field} »")
        return f"{', '.join(where)} : {self.message}"


#: How many rows one check reports before it only counts the others.
MAX_PROBLEMS_PER_CHECK = 20


def row_problems(
    frame: Any, mask: Any, field: str, message: Callable[[Any], str], limit: int = MAX_PROBLEMS_PER_CHECK
) -> list[Problem]:
    """One :class:`Problem` per row of ``frame`` (a validated input table: ``attrs['file']`` and a
    ``_line`` column) where ``mask`` holds — the first ``limit`` of them, then a count of the others.

    ``message(row)`` says what is wrong with a row, in French."""
    import numpy as np
    import pandas as pd

    if isinstance(mask, (np.ndarray, pd.Series)) and mask.dtype == bool and not mask.any():
        return []  # nothing to report (aligning a boolean mask on the frame cannot add a row)
    file = frame.attrs.get("file", "?")
    flags = pd.Series(mask, index=frame.index).fillna(False).astype(bool)
    if not np.any(flags.to_numpy()):  # the usual case: no row to report, no frame to build
        return []
    bad = frame[flags]
    problems = [Problem(file, message(row), int(row["_line"]), field) for _, row in bad.head(limit).iterrows()]
    if len(bad) > limit:
        problems.append(Problem(file, f"… {len(bad) - limit} autre(s) ligne(s) dans ce cas", None, field))
    return problems


class NmrError(Exception):
    """Base class of the engine's errors."""


class InputError(NmrError):
    """One or more problems in input files; nothing was computed or written."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self, limit: int = 50) -> str:
        shown = [str(p) for p in self.problems[:limit]]
        more = len(self.problems) - limit
        if more > 0:
            shown.append(f"… et {more} autre(s) erreur(s)")
        return "\n".join(shown)


class PluginError(NmrError):
    """A plugin failed or returned invalid lines; the run is abandoned and nothing is written."""

    def __init__(self, plugin: str, message: str, contract_id: str | None = None, module: str | None = None):
        self.plugin = plugin
        self.contract_id = contract_id
        self.module = module
        self.detail = message
        if module:
            where = f"le plugin « {plugin} » (module « {module} »"
            where += f", contrat {contract_id})" if contract_id else ")"
        else:
            where = f"le module « {plugin} »"
            if contract_id:
                where += f" (contrat {contract_id})"
        super().__init__(f"{where} a échoué : {message}")


class ConfigurationError(NmrError):
    """Bad configuration: plugin API mismatch, unknown parameter, missing file."""
