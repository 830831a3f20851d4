"""Exact decimals that are not money (FTE, indicator results, shares).

In pandas they are int64 *millionths* (``MICRO`` units): '0,5' -> 500000; in Python,
:class:`fractions.Fraction`. Never binary floats.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

import numpy as np
import pandas as pd

from .money import div_round

#: Text form accepted for a decimal: optional sign, up to 12 digits, ',' or '.', up to 6 places.
DECIMAL = re.compile(r"[+-]?\d{1,12}(?:[.,]\d{1,6})?")
MICRO = 1_000_000


@functools.lru_cache(maxsize=65536)  # results repeat the same texts (pure; errors are not cached)
def parse_decimal(text: str) -> Fraction:
    """'62,5' or '62.5' -> Fraction(125, 2) (exact). Raises ValueError."""
    if not DECIMAL.fullmatch(text.strip()):
        raise ValueError(text)
    return Fraction(text.strip().replace(",", "."))


@functools.lru_cache(maxsize=65536)
def decimal_text(value: Fraction, places: int = 2) -> str:
    """Exact fraction -> French decimal text rounded half-up (display only), e.g. '12,36'."""
    scale = 10**places
    q = div_round(value.numerator * scale, value.denominator)
    sign = "-" if q < 0 else ""
    whole, frac = divmod(abs(q), scale)
    return f"{sign}{whole},{frac:0{places}d}" if places else f"{sign}{whole}"


@functools.lru_cache(maxsize=65536)
def percent_text(rate: Fraction) -> str:
    pct = Fraction(rate) * 100
    return f"{pct.numerator} %" if pct.denominator == 1 else f"{decimal_text(pct)} %"


def decimal_micro(values: pd.Series) -> pd.Series:
    """Exact decimals ('0,5', '62.25', at most six places) -> int64 millionths: '0,5' -> 500000.

    Values must match :data:`DECIMAL` (checked by the validation hooks first)."""
    parts = values.str.strip().str.replace(",", ".", regex=False).str.extract(r"^([+-]?)(\d+)(?:\.(\d{1,6}))?$")
    sign = np.where(parts[0].eq("-").to_numpy(dtype=bool, na_value=False), -1, 1)
    whole = pd.to_numeric(parts[1]).astype("int64")
    frac = pd.to_numeric(parts[2].fillna("").str.ljust(6, "0")).astype("int64")
    return pd.Series(sign * (whole * MICRO + frac), index=values.index, dtype="int64")
