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

    Values must match :data:`DECIMAL` (checked by the validation hooks first). Each distinct
    text is converted once (a table repeats a few values: FTE, results)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if (codes < 0).any():
        raise ValueError("valeur décimale manquante")
    micro = np.array([_micro(str(text)) for text in uniques], dtype=np.int64)
    return pd.Series(micro[codes] if len(codes) else np.zeros(0, np.int64), index=values.index, dtype="int64")


_MICRO_TEXT = re.compile(r"([+-]?)(\d+)(?:\.(\d{1,6}))?")


def _micro(text: str) -> int:
    found = _MICRO_TEXT.fullmatch(text.strip().replace(",", "."))
    if found is None:
        raise ValueError(f"nombre décimal attendu, reçu « {text} »")
    sign, whole, frac = found.groups()
    value = int(whole) * MICRO + int((frac or "").ljust(6, "0"))
    return -value if sign == "-" else value
