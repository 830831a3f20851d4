"""Exact money.

Amounts are integer cents (``int`` in Python, ``int64`` in pandas). Rates are
:class:`fractions.Fraction`. Decimal is used only at the edges (parsing "1000.00"
from a file, printing "1 000,00 €").

**The rounding rule** (one, documented): a computed amount that is not a whole
number of cents is rounded *half-up to the cent* (half away from zero), once per
payment line, by :func:`div_round` / :func:`apply_rate`. When a line is split into
instalments, every instalment but the last is rounded with that rule and the last
takes the remainder, so the instalments add up to the line exactly.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

import numpy as np
import pandas as pd

ROUNDING_RULE = "arrondi au centime le plus proche, la demi-unité étant arrondie au centime supérieur"

CENTS = Decimal("0.01")


def parse_euros(text: str | int | Decimal) -> int:
    """'1000', '1000.00', '1 000,50' or Decimal -> cents. Refuses sub-cent precision."""
    if isinstance(text, bool):
        raise ValueError(f"montant invalide : {text!r}")
    if isinstance(text, int):
        return text * 100
    if isinstance(text, float):
        raise ValueError(
            "un montant ne peut pas être un nombre à virgule flottante binaire ; écrivez-le entre guillemets"
        )
    raw = str(text).strip().replace("\u202f", "").replace("\xa0", "").replace(" ", "").replace("€", "")
    raw = raw.replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"montant invalide : {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"montant invalide : {text!r}")
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"montant avec plus de deux décimales : {text!r}")
    return int(cents)


def to_decimal(cents: int) -> Decimal:
    """Cents -> Decimal euros (for exports)."""
    return (Decimal(int(cents)) / 100).quantize(CENTS)


def format_eur(cents: int) -> str:
    """Cents -> French display, e.g. 123456 -> '1 234,56 €'."""
    cents = int(cents)
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    grouped = f"{euros:,}".replace(",", "\u202f")
    return f"{sign}{grouped},{rest:02d}\u00a0€"


def div_round(numerator, denominator):
    """Half-up (away from zero) integer division, for ints or int64 Series/arrays.

    ``div_round(7, 2) == 4``, ``div_round(-7, 2) == -4``. Exact: integer arithmetic only.
    """
    if isinstance(numerator, (pd.Series, np.ndarray)) or isinstance(denominator, (pd.Series, np.ndarray)):
        num = np.asarray(numerator, dtype=np.int64)
        den = np.asarray(denominator, dtype=np.int64)
        if np.any(den <= 0):
            raise ZeroDivisionError("dénominateur nul ou négatif")
        mag = (2 * np.abs(num) + den) // (2 * den)
        out = np.sign(num) * mag
        if isinstance(numerator, pd.Series):
            return pd.Series(out, index=numerator.index, dtype="int64")
        if isinstance(denominator, pd.Series):
            return pd.Series(out, index=denominator.index, dtype="int64")
        return out
    numerator, denominator = int(numerator), int(denominator)
    if denominator <= 0:
        raise ZeroDivisionError("dénominateur nul ou négatif")
    mag = (2 * abs(numerator) + denominator) // (2 * denominator)
    return mag if numerator >= 0 else -mag


def apply_rate(cents, rate: Fraction | int):
    """cents × rate, rounded once with the project's rule. Works on ints and int64 Series."""
    rate = Fraction(rate)
    return div_round(cents * rate.numerator, rate.denominator)


def round_cents(value: Fraction) -> int:
    """The rounding rule applied once to an exact amount in cents: Fraction -> int."""
    value = Fraction(value)
    return int(div_round(value.numerator, value.denominator))


def split_instalments(total_cents, shares: list[Fraction]):
    """Split a total into instalments by shares (summing to 1): all but the last rounded,
    the last takes the remainder. Works on ints and int64 Series."""
    if sum(shares, Fraction(0)) != 1:
        raise ValueError(f"les quotes-parts des échéances doivent totaliser 100 % (reçu {sum(shares)})")
    parts = [apply_rate(total_cents, s) for s in shares[:-1]]
    last = total_cents - sum(parts) if parts else total_cents
    return [*parts, last]


def assert_exact(frame: pd.DataFrame, columns: list[str]) -> None:
    """Raise TypeError if a money column is not an integer dtype (catches floats early)."""
    for col in columns:
        dtype = frame[col].dtype
        if not pd.api.types.is_integer_dtype(dtype):
            raise TypeError(f"la colonne monétaire {col!r} doit être en centimes entiers, reçu {dtype}")
