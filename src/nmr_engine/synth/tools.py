"""Helpers for plugins' ``nmr_synthesise`` implementations (numpy, vectorised, deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: Default odd multiplier of :func:`pseudonyms` (a bijection modulo 2**64).
GOLDEN_MIX = 0x9E3779B97F4A7C15


def rank_in_groups(sizes: np.ndarray) -> np.ndarray:
    """0, 1, … within consecutive groups of the given sizes."""
    sizes = np.asarray(sizes, dtype=np.int64)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(int(sizes.sum()), dtype=np.int64) - starts


def pseudonyms(numbers: np.ndarray, seed: int, mix: int = GOLDEN_MIX) -> np.ndarray:
    """'PAT-' + 16 upper-case hex digits: a keyed bijection of each number (no identity behind it)."""
    salt = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    numbers = np.asarray(numbers)
    with np.errstate(over="ignore"):
        mixed = (numbers.astype(np.uint64) * np.uint64(mix)) ^ salt
    if not numbers.size:
        return np.zeros(0, dtype=object)
    digits = np.array(list("0123456789ABCDEF"))
    nibbles = (mixed[:, None] >> np.arange(60, -1, -4, dtype=np.uint64)[None, :]) & np.uint64(15)
    hexes = digits[nibbles.astype(np.int64)].astype("<U1").view("<U16").ravel()
    return np.char.add("PAT-", hexes).astype(object)


def tenths_text(values: np.ndarray) -> np.ndarray:
    """Tenths as French decimal text: 625 -> '62,5', 600 -> '60', 5 -> '0,5'."""
    whole, frac = np.divmod(np.asarray(values, dtype=np.int64), 10)
    text = whole.astype(str).astype(object)
    return np.where(frac > 0, text + "," + frac.astype(str).astype(object), text).astype(object)


def iso_dates(days: np.ndarray) -> np.ndarray:
    """ISO date strings ('' for NaT), formatted once per distinct day."""
    days = np.asarray(days, dtype="datetime64[D]")
    unique, inverse = np.unique(days, return_inverse=True)
    text = np.datetime_as_string(unique, unit="D").astype(object)
    text[np.isnat(unique)] = ""
    return text[inverse]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``;``-separated UTF-8 CSV with a header, as the caisse's exports (no quoting needed)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, "wb") as fh:
        fh.write((";".join(frame.columns) + "\n").encode("utf-8"))
        table = pa.Table.from_pandas(frame.astype(str), preserve_index=False)
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, delimiter=";", quoting_style="none"))
