"""Deterministic synthetic data sets at any scale (``nmr synth``).

The core draws the contracts (structures with FINESS-like numbers and real communes of
Hauts-de-France, mixed period anchors, enrolments among the registered modules) and
writes them as contract YAML files; each module's plugin then writes its own input
tables through the optional ``nmr_synthesise`` hook. The core names no module.
"""

from .generate import PRESETS, SynthReport, derive_seed, synthesise

__all__ = ["PRESETS", "SynthReport", "derive_seed", "synthesise"]
