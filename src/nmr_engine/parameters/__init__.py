"""Dated parameters: values keyed by the date they take effect, each with its source.

See :mod:`nmr_engine.parameters.model` for the types and
:mod:`nmr_engine.parameters.loader` for the file format.
"""

from .loader import load_parameter_dir, load_parameter_file
from .model import CONFIDENCE_LEVELS, ParamColumn, Parameter, ParameterStore, ParameterVersion, Reference

__all__ = [
    "CONFIDENCE_LEVELS",
    "ParamColumn",
    "Parameter",
    "ParameterStore",
    "ParameterVersion",
    "Reference",
    "load_parameter_dir",
    "load_parameter_file",
]
