"""The public plugin API: everything a module plugin needs, and nothing else.

A plugin imports only from here (or from the ``nmr_engine`` top level)::

    from nmr_engine.plugin import hookimpl, ModuleSpec, TableSpec, Column, Explanation, lines_frame
"""

from .api import (
    API_VERSION,
    LINE_COLUMNS,
    CalculationContext,
    Column,
    Explanation,
    ModuleSpec,
    SynthScale,
    TableSpec,
    empty_lines,
    lines_frame,
)
from .hookspecs import hookimpl, hookspec

__all__ = [
    "API_VERSION",
    "LINE_COLUMNS",
    "CalculationContext",
    "Column",
    "Explanation",
    "ModuleSpec",
    "SynthScale",
    "TableSpec",
    "empty_lines",
    "hookimpl",
    "hookspec",
    "lines_frame",
]
