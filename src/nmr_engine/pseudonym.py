"""Keyed pseudonymisation of personal identifiers (patients).

Identifiers in the input columns that plugins declare ``Column(pseudonymise=True)``
never reach the ledger or an export in clear: any occurrence in a line's
explanation is replaced by ``PSN-<HMAC-SHA256(key, identifier)>`` (truncated).
The same key gives the same pseudonym, so an auditor holding the key can match a
pseudonym to a patient; without it the pseudonym reveals nothing.

The key lives outside the ledger: env ``NMR_PSEUDONYM_KEY`` (the key itself),
else the file named by ``NMR_PSEUDONYM_KEY_FILE``, else
``~/.config/nmr-engine/pseudonym.key`` (created on first use, mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ConfigurationError

KEY_ENV = "NMR_PSEUDONYM_KEY"
KEY_FILE_ENV = "NMR_PSEUDONYM_KEY_FILE"
DEFAULT_KEY_FILE = Path("~/.config/nmr-engine/pseudonym.key")
PREFIX = "PSN-"
#: Hex digits kept from the HMAC (96 bits: no collision among a caisse's patients).
DIGITS = 24
MIN_KEY_BYTES = 16
#: What :class:`Scrubber` splits texts into: identifiers made of these characters are whole tokens.
TOKEN = re.compile(r"[\w-]+")


def load_key(create: bool = True) -> bytes:
    """The pseudonymisation key, from the environment or the key file (see module doc)."""
    raw = os.environ.get(KEY_ENV)
    if raw:
        key = raw.encode("utf-8")
        origin = f"la variable {KEY_ENV}"
    else:
        path = Path(os.environ.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE).expanduser()
        if not path.exists():
            if not create or os.environ.get(KEY_FILE_ENV):
                raise ConfigurationError(
                    f"clé de pseudonymisation introuvable : {path} (définissez {KEY_ENV} ou {KEY_FILE_ENV})"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        key = path.read_bytes().strip()
        origin = f"le fichier {path}"
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(f"clé de pseudonymisation trop courte dans {origin} (au moins {MIN_KEY_BYTES} octets)")
    return key


@attrs.frozen
class Pseudonymiser:
    """HMAC-SHA256 pseudonyms under one key."""

    key: bytes = attrs.field(repr=False)

    def pseudonym(self, identifier: str) -> str:
        digest = hmac.new(self.key, str(identifier).encode("utf-8"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:DIGITS]

    def scrubber(self, identifiers: Iterable[str]) -> Scrubber:
        """A function replacing each whole-token occurrence of ``identifiers`` by its pseudonym."""
        # Pseudonyms computed on first use: a national campaign hides millions of patient ids,
        # of which the explanations quote few (one HMAC per id would cost seconds for nothing).
        return Scrubber(_LazyPseudonyms({str(i) for i in identifiers if str(i).strip()}, self.pseudonym))


class _LazyPseudonyms(dict):
    """identifier -> pseudonym, each computed (and kept) when first looked up."""

    def __init__(self, identifiers: set[str], pseudonym):
        super().__init__()
        self._ids = identifiers
        self._pseudonym = pseudonym

    def __contains__(self, key) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self):
        return iter(self._ids)

    def __missing__(self, key: str) -> str:
        if key not in self._ids:
            raise KeyError(key)
        value = self._pseudonym(key)
        dict.__setitem__(self, key, value)
        return value

    def get(self, key, default=None):
        return self[key] if key in self._ids else default

    def keys(self):
        return self._ids

    def items(self):
        return ((k, self[k]) for k in self._ids)


class _Without:
    """``mapping`` restricted to the keys not in ``excluded`` (lookups only)."""

    def __init__(self, mapping, excluded: set[str]):
        self._mapping, self._excluded = mapping, excluded

    def __bool__(self) -> bool:
        return len(self._mapping) > len(self._excluded)

    def __contains__(self, key) -> bool:
        return key not in self._excluded and key in self._mapping

    def get(self, key, default=None):
        return self._mapping[key] if key in self else default


class Scrubber:
    """Replaces clear identifiers by pseudonyms in text and in nested JSON-like values.

    Identifiers made of letters, digits, ``_`` and ``-`` (the usual case) are found by
    splitting the text into such tokens and looking each up (linear in the text, whatever
    the number of patients); any other identifier goes through a regular expression."""

    _TOKEN = TOKEN

    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping
        others = sorted((k for k in mapping if not self._TOKEN.fullmatch(k)), key=len, reverse=True)
        # Simple identifiers are looked up in ``mapping`` itself (which may compute pseudonyms lazily).
        self._simple = mapping if not others else _Without(mapping, set(others))
        self._pattern: re.Pattern[str] | None = (
            re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(k) for k in others) + r")(?![\w-])") if others else None
        )

    def text(self, value: str) -> str:
        if self._simple and any(token in self._simple for token in self._TOKEN.findall(value)):
            value = self._TOKEN.sub(lambda m: self._simple.get(m.group(0), m.group(0)), value)
        if self._pattern is not None:
            value = self._pattern.sub(lambda m: self.mapping[m.group(0)], value)
        return value

    def __call__(self, value: Any) -> Any:
        if not self.mapping:  # nothing to hide (the usual case: explanations quote file lines)
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value

    def leaks(self, text: str) -> list[str]:
        """Clear identifiers still present in ``text`` (for checks and tests)."""
        found = {t for t in self._TOKEN.findall(text) if t in self._simple}
        if self._pattern is not None:
            found |= {m.group(0) for m in self._pattern.finditer(text)}
        return sorted(found)


def text_tokens(value: Any) -> set[str]:
    """The tokens (see :data:`TOKEN`) of every text in ``value`` (a JSON-like value): each
    distinct text once (explanations repeat their parameters' texts), in one regex pass."""
    texts: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return set(TOKEN.findall("\n".join(texts)))


#: Bytes outside ASCII letters, digits, ``_`` and ``-`` (what ``^[\w-]+$`` accepts in RE2, ASCII ``\w``).
_NOT_WORD_BYTE = np.ones(256, dtype=bool)
for _c in b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-":
    _NOT_WORD_BYTE[_c] = False


def _not_simple(chunk: pa.Array, block: int = 1 << 24) -> np.ndarray:
    """Per value of a (large) string ``chunk``: holds a byte :data:`_NOT_WORD_BYTE` flags, so is not
    one ASCII token (found on the data buffer with numpy, ``block`` bytes at a time)."""
    out = np.zeros(len(chunk), dtype=bool)
    _, offsets_buffer, data_buffer = chunk.buffers()
    if data_buffer is None or len(chunk) == 0:
        return out
    kind = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=kind)[chunk.offset : chunk.offset + len(chunk) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    for start in range(int(offsets[0]), int(offsets[-1]), block):
        bad = np.flatnonzero(_NOT_WORD_BYTE[data[start : min(start + block, int(offsets[-1]))]]) + start
        out[np.searchsorted(offsets, bad, side="right") - 1] = True
    return out


def identifiers_among(columns: Iterable[pd.Series], tokens: set[str]) -> set[str]:
    """The distinct non-blank values (as text) of the identifier ``columns`` that are among
    ``tokens`` or are not one ASCII token (the scrubber's regular expression looks for those):
    what ``CalculationResult.identifiers_among`` returns, without first finding the distinct
    values of millions of identifiers (text columns are filtered as read, in C and numpy)."""
    wanted = pa.array(list(tokens), type=pa.string())
    sizes = pc.binary_length(wanted)
    picked: list[pa.Array] = []
    for column in columns:
        if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
            values = pa.array(column.array)
            if isinstance(values, pa.ChunkedArray):  # several chunks: one buffer to scan
                values = values.combine_chunks()
        else:  # any other dtype: its distinct values as text, as the engine finds them
            values = pa.array(pd.Series(column.dropna().unique(), dtype=str), type=pa.string())
        # only the tokens as long as some value (a smaller set is probed faster)
        low, high = pc.min_max(pc.binary_length(values)).values()
        fitting = (
            wanted.filter(pc.and_(pc.greater_equal(sizes, low), pc.less_equal(sizes, high)))
            if low.is_valid
            else wanted[:0]
        )
        keep = np.asarray(pc.fill_null(pc.is_in(values, value_set=fitting), False)) | _not_simple(values)
        picked.append(pc.unique(pc.drop_null(values.filter(pa.array(keep)))).cast(pa.string()))
    found = pc.unique(pa.concat_arrays(picked)) if picked else pa.array([], type=pa.string())
    return set(found.filter(pc.not_equal(pc.utf8_trim_whitespace(found), "")).to_pylist())
