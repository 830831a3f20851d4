"""Read CSV input tables and validate them against a :class:`TableSpec`.

Files are UTF-8 CSV with a header line, separated by ``;`` (French spreadsheets) or
``,`` (detected from the header). Every problem names the file, the line (the header
is line 1) and the column; all problems of all tables are reported together and
nothing is computed when there is one.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..cache import TableCache
from ..errors import MAX_PROBLEMS_PER_CHECK, InputError, Problem, row_problems
from ..model import DATE_DTYPE
from ..plugin.api import TableSpec
from .snapshots import TableStore, file_identity, periods_digest

_TRUE = {"1", "true", "vrai", "oui", "yes"}
_FALSE = {"0", "false", "faux", "non", "no"}


def _sniff_separator(path: Path) -> str:
    with open(path, "rb") as fh:
        header = fh.readline()
    return ";" if header.count(b";") >= header.count(b",") and b";" in header else ","


def read_table(
    path: Path | None,
    spec: TableSpec,
    known_contracts: set[str] | None = None,
    label: str | None = None,
    cache: TableCache | None = None,
    store: TableStore | None = None,
) -> pd.DataFrame:
    """Read and validate one table. Adds ``_line`` (1-based line in the file);
    ``frame.attrs['file']`` holds the path (or ``label``, e.g. a recorded version's name).
    ``path`` None: a file not yet received, read as empty. Raises :class:`InputError`.

    ``cache``: a :class:`TableCache` that keeps the parsed and checked table of a file
    unchanged since (the contract check, which depends on the contracts, is always redone);
    ``store``: a :class:`~nmr_engine.inputs.snapshots.TableStore` that keeps it on disk for
    the next processes."""
    file = label or str(path)
    if path is None or not Path(path).exists():
        if spec.optional or path is None:
            frame = pd.DataFrame({c.name: pd.Series(dtype=_dtype(c.type)) for c in spec.columns})
            frame["_line"] = pd.Series(dtype="int64")
            frame.attrs["file"] = file
            return frame
        raise InputError([Problem(file, "fichier de données introuvable")])
    path = Path(path)
    key = cache.key(path, spec) if cache is not None else None
    frame = cache.get(key, file) if key is not None else None
    problems: list[Problem] = []
    duplicates: list[Problem] = []
    if frame is None and store is not None:
        frame = store.get(path, spec, file)
    identity = None
    if frame is None:
        if store is not None:
            began, identity = time.time_ns(), file_identity(path)
        frame = _read_checked(path, spec, file)
        if frame is None:  # not a plain file, or a check found a problem: the reference path says which
            frame = _parse_table(path, spec, file, problems)
            duplicates = _duplicate_problems(frame, spec)
    problems += _unknown_contract_problems(frame, known_contracts) + duplicates
    if problems:
        raise InputError(problems)
    if identity is not None:
        store.put(path, spec, frame, identity, began)
    if key is not None:
        cache.put(key, frame)
    return frame


def _parse_table(path: Path, spec: TableSpec, file: str, problems: list[Problem]) -> pd.DataFrame:
    """The file's rows converted to the declared types (conversion problems added to ``problems``)."""
    raw = _read_fast(path)
    try:
        raw = (
            raw
            if raw is not None
            else pd.read_csv(
                path,
                sep=_sniff_separator(path),
                dtype=str,
                keep_default_na=False,
                encoding="utf-8",
                encoding_errors="strict",
                skipinitialspace=False,
                quoting=csv.QUOTE_MINIMAL,
            )
        )
    except UnicodeDecodeError as exc:
        line = _find_bad_utf8_line(path)
        raise InputError([Problem(file, f"le fichier n'est pas encodé en UTF-8 ({exc.reason})", line)]) from None
    except pd.errors.ParserError as exc:
        raise InputError([Problem(file, f"CSV illisible : {exc}")]) from None
    except pd.errors.EmptyDataError:
        raise InputError([Problem(file, "fichier vide : une ligne d'en-tête est attendue", 1)]) from None

    raw.columns = [c.strip() for c in raw.columns]
    missing = [c.name for c in spec.columns if c.name not in raw.columns]
    if missing:
        raise InputError(
            [
                Problem(file, f"colonne obligatoire manquante (colonnes lues : {', '.join(raw.columns)})", 1, m)
                for m in missing
            ]
        )
    lines = pd.RangeIndex(2, len(raw) + 2)
    out = {}
    for col in spec.columns:
        # each text column is released once converted: the file is never held twice in memory
        out[col.name] = _convert(raw.pop(col.name).str.strip(), col, file, lines, problems)
    del raw
    for col in spec.columns:
        if _as_category(col):
            # a few thousand contracts for millions of rows: a category each instead of a text per row
            out[col.name] = out[col.name].astype("category")
    frame = pd.DataFrame(out, copy=False)  # the converted columns are new already
    frame["_line"] = np.asarray(lines, dtype=np.int64)
    frame.attrs["file"] = file
    return frame


def _unknown_contract_problems(frame: pd.DataFrame, known_contracts: set[str] | None) -> list[Problem]:
    if known_contracts is None or "contract_id" not in frame:
        return []
    contracts = frame["contract_id"]
    if (
        isinstance(contracts.dtype, pd.CategoricalDtype)
        and all(c in known_contracts or c == "" for c in contracts.cat.categories)
        and not contracts.hasnans
    ):
        return []  # every distinct contract is known (or empty): no row to look at
    unknown = ~frame["contract_id"].isin(known_contracts) & frame["contract_id"].ne("")
    return row_problems(
        frame,
        unknown,
        "contract_id",
        lambda r: f"contrat inconnu « {r['contract_id']} » (absent du dossier des contrats)",
    )


def _duplicate_problems(frame: pd.DataFrame, spec: TableSpec) -> list[Problem]:
    if not spec.unique:
        return []
    dup = _duplicated(frame, list(spec.unique))
    if not dup.any():
        return []
    first = frame[frame.duplicated(list(spec.unique), keep=False) & ~dup]
    first_line = {
        tuple(k): ln for k, ln in zip(first[list(spec.unique)].itertuples(index=False), first["_line"], strict=True)
    }
    return row_problems(
        frame,
        dup,
        ",".join(spec.unique),
        lambda r: (
            "ligne en double (même "
            + ", ".join(spec.unique)
            + f" que la ligne {first_line.get(tuple(r[c] for c in spec.unique), '?')})"
        ),
    )


def _plain_header(path: Path, scan: bool = True) -> tuple[str, list[str]] | None:
    """Separator and column names of a plain file — no quote character, no BOM, unique
    non-empty header names — that pyarrow's CSV reader parses as pandas' C parser does;
    None for anything else. ``scan`` False: the rows are not scanned for quotes (the caller
    looks for them in what it parsed)."""
    with open(path, "rb") as fh:
        if fh.read(3) == b"\xef\xbb\xbf":
            return None
        fh.seek(0)
        header = fh.readline()
        if b'"' in header:
            return None
        while scan and (chunk := fh.read(1 << 24)):
            if b'"' in chunk:
                return None
    sep = _sniff_separator(path)
    try:
        names = header.decode("utf-8").rstrip("\r\n").split(sep)
    except UnicodeDecodeError:
        return None
    if len(set(names)) != len(names) or "" in names:  # pandas would rename them ("a.1", "Unnamed: 2")
        return None
    return sep, names


def _arrow_read(path: Path, sep: str, names: list[str], types: dict):
    """The file parsed by pyarrow's multithreaded reader into ``types`` (cells as written:
    no quoting; texts never missing, other types missing only when empty); None on any error
    (encoding, ragged row, a cell not of its type) or no row."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8"),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=False, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types, null_values=[""], strings_can_be_null=False, check_utf8=True
            ),
        )
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.num_rows == 0 or table.column_names != names:
        return None
    return table


def _read_fast(path: Path) -> pd.DataFrame | None:
    """Read with pyarrow's multithreaded CSV parser into the same frame ``pd.read_csv(dtype=str,
    keep_default_na=False)`` gives — for plain files only (see :func:`_plain_header`), with at
    least one row. Anything else (and any error) returns None and the file is read by pandas'
    C parser, whose results and error messages stay the reference."""
    import pyarrow as pa

    plain = _plain_header(path)
    if plain is None:
        return None
    sep, names = plain
    table = _arrow_read(path, sep, names, {n: pa.string() for n in names})
    if table is None:
        return None
    frame = table.to_pandas(types_mapper={pa.string(): _STR}.get)
    return frame if all(isinstance(t, pd.StringDtype) for t in frame.dtypes) else None


#: pandas' default ``str`` dtype (text backed by pyarrow), what ``read_csv(dtype=str)`` gives
_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def _read_checked(path: Path, spec: TableSpec, file: str) -> pd.DataFrame | None:
    """The table read and checked in one pass, or None when the file is not plain or a check
    (types, required values, choices, minimum, duplicates) finds a problem: the reference path
    (:func:`_parse_table`) then reads it again and words the problems.

    pyarrow parses each column into the type that checks it cheapest (:func:`_column_types`):
    dates straight into days, texts handed over as texts as they are, and the columns converted
    or handed over as categories into dictionaries (the distinct texts, and an int32 code per
    row) whose checks and conversions of :func:`_convert` run on the distinct texts only — each
    row's result depends on its text alone — and are taken back to the rows by their codes.
    The uniqueness key is built from the codes, days and a hash of the texts
    (:func:`_any_duplicate`). The frame is the one :func:`_parse_table` gives."""
    plain = _plain_header(path, scan=False)
    if plain is None:
        return None
    sep, names = plain
    if any(c.name not in names for c in spec.columns) or any(n != n.strip() for n in names):
        return None
    table = _arrow_read(path, sep, names, _column_types(names, spec))
    if table is None:
        return None
    table = table.unify_dictionaries()
    declared = {c.name for c in spec.columns}
    if any(_has_quote(table.column(n)) for n in names if n not in declared):
        return None  # a quote character: quoted cells are the reference parser's business
    out: dict[str, pd.Series] = {}
    keys: dict[str, _KeyPart | None] = {}
    for col in spec.columns:
        column = _checked_column(table.column(col.name), col, file, col.name in spec.unique)
        if column is None:
            return None
        out[col.name], keys[col.name] = column
    del table
    out["_line"] = pd.Series(np.arange(2, len(out[spec.columns[0].name]) + 2, dtype=np.int64), copy=False)
    frame = pd.DataFrame(out, copy=False)
    frame.attrs["file"] = file
    if spec.unique and _any_duplicate(frame, [keys[c] for c in spec.unique], list(spec.unique)):
        return None
    return frame


def _column_types(names: list[str], spec: TableSpec) -> dict:
    """pyarrow type of each column: ``date32`` for a date (pyarrow accepts only valid
    ``AAAA-MM-JJ`` dates, which the reference path reads to the same days), text for a text
    handed over as text and for an undeclared column (only parsed), a dictionary for the others
    (converted on their distinct values). Any cell pyarrow cannot parse sends the file to the
    reference path."""
    import pyarrow as pa

    coded = pa.dictionary(pa.int32(), pa.string())
    kinds = {c.name: c for c in spec.columns}
    types = {}
    for n in names:
        col = kinds.get(n)
        if col is None or (col.type == "str" and col.choices is None and not _as_category(col)):
            types[n] = pa.string()
        else:
            types[n] = pa.date32() if col.type == "date" else coded
    return types


def _has_quote(column) -> bool:
    """Whether a parsed text column holds a quote character (in its distinct values when
    coded); a date column cannot (pyarrow would not have parsed it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        return bool(pc.any(pc.match_substring(column.chunk(0).dictionary, '"')).as_py())
    if not pa.types.is_string(column.type):
        return False
    return any(bool((_text_bytes(chunk)[1] == ord('"')).any()) for chunk in column.chunks)


class _KeyPart(NamedTuple):
    """A column's part of a uniqueness key: value codes (-1: missing) and their number, or
    (``distinct`` None) a 64-bit hash of each value."""

    values: np.ndarray
    distinct: int | None


def _checked_column(column, col, file: str, keyed: bool) -> tuple[pd.Series, _KeyPart | None] | None:
    """A parsed column (pyarrow: date32, text, or unified dictionary) converted as
    :func:`_parse_table` does, and when ``keyed`` its part of the uniqueness key; None on a
    problem."""
    import pyarrow as pa

    if pa.types.is_date32(column.type):
        return _checked_dates(column, col, keyed)
    if pa.types.is_string(column.type):
        return _checked_texts(column, col, keyed)
    found: list[Problem] = []
    chunks = column.chunks
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    values = chunks[0].dictionary.to_pandas(types_mapper={pa.string(): _STR}.get)
    if values.str.contains('"', regex=False).any():
        return None  # a quote character: quoted cells are the reference parser's business
    stripped = values.str.strip()
    if stripped.ne(values).any():  # padded texts: equal once stripped, as on the reference path
        distinct = stripped.drop_duplicates().reset_index(drop=True)
        codes = pd.Index(distinct).get_indexer(stripped)[codes]
        stripped = distinct
    converted = _convert(stripped, col, file, pd.RangeIndex(len(stripped)), found)
    if found:
        return None
    if _as_category(col):
        converted = converted.astype("category")  # as _parse_table: sorted categories
    if isinstance(converted.dtype, pd.CategoricalDtype):
        value_codes, distinct = converted.cat.codes.to_numpy(), len(converted.dtype.categories)
        rows = pd.Categorical.from_codes(value_codes[codes], dtype=converted.dtype, validate=False)
    else:  # int, money, bool: a masked array (values and missing flags) of the rows
        value_codes, uniques = pd.factorize(converted)
        distinct = len(uniques)
        missing = converted.isna().to_numpy()
        values = converted.to_numpy(dtype=converted.dtype.numpy_dtype, na_value=converted.dtype.type(0))
        rows = type(converted.array)(values[codes], missing[codes])
    key = _KeyPart(value_codes[codes], distinct) if keyed else None
    return pd.Series(rows, copy=False), key


#: The days pandas' datetime64[ns] holds (the reference path refuses the others)
_FIRST_DAY = (pd.Timestamp.min.ceil("D") - pd.Timestamp(0)).days
_LAST_DAY = (pd.Timestamp.max.floor("D") - pd.Timestamp(0)).days
_NS_PER_DAY = 86_400_000_000_000


def _checked_dates(column, col, keyed: bool) -> tuple[pd.Series, _KeyPart | None] | None:
    """A date32 column (empty cells: missing) as the reference path's dates; None when a
    required date is missing or a date is outside what datetime64[ns] holds. Its key part:
    the days from the first one (-1: missing)."""
    import pyarrow.compute as pc

    if col.required and column.null_count:
        return None
    bounds = pc.min_max(column)
    low, high = (_day(bounds["min"]), _day(bounds["max"])) if bounds["min"].is_valid else (0, 0)
    if low < _FIRST_DAY or high > _LAST_DAY:
        return None
    stamps = np.empty(len(column), np.int64)
    codes = np.empty(len(column), np.int64) if keyed else None
    at = 0
    for chunk in column.chunks:  # each chunk's days read in place, written into the outputs
        days = np.frombuffer(chunk.buffers()[1], np.int32, len(chunk), chunk.offset * 4)
        rows = slice(at, at + len(chunk))
        np.multiply(days, _NS_PER_DAY, out=stamps[rows], dtype=np.int64)
        if codes is not None:
            np.subtract(days, low, out=codes[rows], dtype=np.int64)
        if chunk.null_count:
            missing = chunk.is_null().to_numpy(zero_copy_only=False)
            stamps[rows][missing] = np.iinfo(np.int64).min  # NaT
            if codes is not None:
                codes[rows][missing] = -1
        at += len(chunk)
    key = _KeyPart(codes, high - low + 1) if codes is not None else None
    return pd.Series(stamps.view(DATE_DTYPE), copy=False), key


def _day(scalar) -> int:
    """Days since 1970-01-01 of a pyarrow date32 scalar."""
    import pyarrow as pa

    return scalar.cast(pa.int32()).as_py()


def _checked_texts(column, col, keyed: bool) -> tuple[pd.Series, _KeyPart | None] | None:
    """A text column handed over as text (stripped, as on the reference path); None on a quote
    character or a missing required value. Its key part is a hash of each text. Each chunk
    of the column is checked (and hashed) on its bytes in place."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks, texts = [], []
    for chunk in column.chunks:
        offsets, data = _text_bytes(chunk)
        quoted, empty, padded = _text_checks(offsets, data)
        if quoted:
            return None  # a quote character: quoted cells are the reference parser's business
        if padded:  # maybe a padded text: stripped as on the reference path
            chunk = pc.utf8_trim_whitespace(chunk)
            offsets, data = _text_bytes(chunk)
            empty = bool((offsets[1:] == offsets[:-1]).any())
        if col.required and empty:
            return None
        chunks.append(chunk)
        texts.append((offsets, data))
    series = pa.chunked_array(chunks, column.type).to_pandas(types_mapper=lambda _: _STR)
    if not keyed:
        return series, None
    # one way of hashing for the whole column: equal texts, equal hashes
    lengths = [np.diff(offsets) for offsets, _ in texts]
    width = max((int(n.max()) for n in lengths if n.size), default=0)
    fixed = width >= 8 and all((n == width).all() for n in lengths)
    hashes = np.empty(len(column), np.uint64)
    at = 0
    for (offsets, data), n in zip(texts, lengths, strict=True):
        hashes[at : at + len(n)] = _text_hashes(offsets, data, width, fixed)
        at += len(n)
    return series, _KeyPart(hashes, None)


def _text_bytes(texts) -> tuple[np.ndarray, np.ndarray]:
    """A pyarrow text array's value offsets (from 0) and the bytes they point into."""
    import pyarrow as pa

    width = np.dtype(np.int64 if pa.types.is_large_string(texts.type) else np.int32)
    offsets = np.frombuffer(texts.buffers()[1], width, len(texts) + 1, texts.offset * width.itemsize)
    buffer = texts.buffers()[2]
    data = np.frombuffer(buffer, np.uint8) if buffer is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    return (offsets - offsets[0] if offsets[0] else offsets), data


#: Rows per block of the passes over texts (their temporaries stay in the processor's cache)
_BLOCK_ROWS = 1 << 16


def _text_checks(offsets: np.ndarray, data: np.ndarray) -> tuple[bool, bool, bool]:
    """Whether the texts hold a quote character, an empty text, and a text that may be padded
    (its first or last byte other than a printable ASCII character: what ``str.strip`` could
    remove is among them)."""
    quoted = empty = padded = False
    for low in range(0, len(offsets) - 1, _BLOCK_ROWS):
        block = offsets[low : low + _BLOCK_ROWS + 1]
        texts = data[block[0] : block[-1]]
        quoted = quoted or bool((texts == ord('"')).any())
        filled = block[1:] > block[:-1]
        empty = empty or not filled.all()
        if texts.size:
            first = texts.take(block[:-1] - block[0], mode="clip") - np.uint8(0x21)
            last = texts.take(block[1:] - block[0] - 1, mode="clip") - np.uint8(0x21)
            padded = padded or bool((((first > 0x7E - 0x21) | (last > 0x7E - 0x21)) & filled).any())
    return quoted, empty, padded


_WORD_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(9)], dtype=np.uint64)


def _text_hashes(offsets: np.ndarray, data: np.ndarray, width: int, fixed: bool) -> np.ndarray:
    """A 64-bit hash of each text (its bytes ``data[offsets[i]:offsets[i + 1]]`` and length),
    read 8 bytes at a time up to ``width`` (the longest text of the column); ``fixed``: every
    text of the column is ``width`` (≥ 8) bytes long. Equal texts of a column have equal hashes
    (hashes are compared exactly only where they collide, see :func:`_any_duplicate`)."""
    lengths = np.diff(offsets)
    hashes = lengths.astype(np.uint64)
    if fixed:
        # texts of one length (pseudonymised ids): the words at the same places in each text,
        # the last one ending with the text (it may overlap the one before)
        for at in [*range(0, width - 7, 8), *([width - 8] if width % 8 else [])]:
            words = np.ndarray((len(lengths),), np.uint64, buffer=data, offset=at, strides=(width,))
            _mix_blocks(hashes, lambda low, high, words=words: words[low:high])
        return hashes
    padded = np.zeros(data.size + 8, np.uint8)
    padded[: data.size] = data
    # every 8 bytes from any place, as one (unaligned) little-endian word
    windows = np.ndarray((data.size + 1,), np.uint64, buffer=padded, strides=(1,))
    starts = offsets[:-1]
    for at in range(0, width, 8):

        def words(low, high, at=at):
            word = windows[np.minimum(starts[low:high] + at, data.size)]
            word &= _WORD_MASKS[np.clip(lengths[low:high] - at, 0, 8)]
            return word

        _mix_blocks(hashes, words)
    return hashes


def _mix_blocks(hashes: np.ndarray, values) -> None:
    """Fold ``values(low, high)`` (uint64 values of rows ``low:high``) into ``hashes`` in place,
    block by block."""
    for low in range(0, len(hashes), _BLOCK_ROWS):
        high = low + _BLOCK_ROWS
        block = hashes[low:high]
        block ^= values(low, high)
        block *= np.uint64(0x9E3779B97F4A7C15)
        block ^= block >> np.uint64(29)


def _any_duplicate(frame: pd.DataFrame, keys: list[_KeyPart], columns: list[str]) -> bool:
    """Whether two rows share the values of ``columns``, given each column's key part. The
    codes are packed into int64 keys (as many columns per key as 62 bits hold): one such key,
    sorted, answers exactly; else one 64-bit hash of the row's keys and hashes is sorted, and
    the rows of colliding hashes are compared exactly."""
    groups: list[list[_KeyPart]] = []
    span = 2**62
    for part in keys:
        if part.distinct is None:
            continue
        if span * (part.distinct + 1) >= 2**62:  # + the missing-value code (-1 -> 0)
            groups.append([])
            span = 1
        groups[-1].append(part)
        span *= part.distinct + 1
    hashed = [part.values for part in keys if part.distinct is None]
    if len(groups) == 1 and not hashed:
        key = _packed(groups[0], slice(None))
        key.sort()
        return bool((key[1:] == key[:-1]).any())
    ordered = _row_hashes(len(frame), groups, hashed)
    ordered.sort()
    collide = ordered[1:] == ordered[:-1]
    if not collide.any():
        return False
    rows = np.isin(_row_hashes(len(frame), groups, hashed), ordered[1:][collide])
    return bool(frame.loc[rows, columns].duplicated().any())


def _packed(group: list[_KeyPart], rows: slice) -> np.ndarray:
    """The codes of ``group`` packed into one int64 key for ``rows`` (missing codes -1 -> 0)."""
    key = group[0].values[rows].astype(np.int64)
    key += 1
    for codes, distinct in group[1:]:
        key *= distinct + 1
        key += codes[rows]
        key += 1
    return key


def _row_hashes(n: int, groups: list[list[_KeyPart]], hashed: list[np.ndarray]) -> np.ndarray:
    """One 64-bit hash of each row's packed codes (see :func:`_packed`) and text hashes."""
    hashes = np.zeros(n, dtype=np.uint64)
    for group in groups:
        _mix_blocks(hashes, lambda low, high, group=group: _packed(group, slice(low, high)).view(np.uint64))
    for values in hashed:
        _mix_blocks(hashes, lambda low, high, values=values: values[low:high])
    return hashes


def _as_category(col) -> bool:
    """Whether a str column without choices is handed over as a category (sorted categories):
    ``contract_id`` always, other columns when declared ``Column(category=True)``."""
    return col.type == "str" and col.choices is None and (col.name == "contract_id" or col.category)


def _find_bad_utf8_line(path: Path) -> int:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[: exc.start].count(b"\n") + 1
    return 1


def _dtype(kind: str) -> str:
    return {"str": "object", "int": "Int64", "money": "Int64", "date": DATE_DTYPE, "bool": "boolean"}[kind]


def _convert(values: pd.Series, col, file: str, lines, problems: list[Problem]) -> pd.Series:
    empty = values.eq("")
    if col.required and empty.any():
        _report_values(problems, file, lines, empty, col.name, values, lambda v: "valeur obligatoire manquante")
    if col.type == "str":
        if col.choices is not None:
            bad = ~values.isin(col.choices) & ~empty
            _report_values(
                problems,
                file,
                lines,
                bad,
                col.name,
                values,
                lambda v: f"valeur « {v} » inattendue ; attendu l'une de : {', '.join(col.choices)}",
            )
            if not bad.any():  # a closed set: one category per choice instead of a text per row
                return pd.Series(
                    pd.Categorical(values, categories=list(dict.fromkeys([*col.choices, ""]))), index=values.index
                )
        return values
    if col.type == "date":
        parsed = _parse_dates(values, empty)
        bad = parsed.isna() & ~empty
        _report_values(
            problems, file, lines, bad, col.name, values, lambda v: f"date attendue au format AAAA-MM-JJ, reçu « {v} »"
        )
        return parsed
    if col.type == "bool":
        low = values.str.lower()
        bad = ~low.isin(_TRUE | _FALSE) & ~empty
        _report_values(
            problems, file, lines, bad, col.name, values, lambda v: f"booléen attendu (oui/non, 1/0), reçu « {v} »"
        )
        return low.isin(_TRUE).astype("boolean").where(~empty, pd.NA)
    if col.type == "int":
        ok = values.str.fullmatch(r"[+-]?\d{1,15}")
        bad = ~ok & ~empty
        _report_values(problems, file, lines, bad, col.name, values, lambda v: f"nombre entier attendu, reçu « {v} »")
        parsed = pd.to_numeric(values.where(ok), errors="coerce").astype("Int64")
    else:  # money: euros with at most two decimals -> cents, without floats
        ok = values.str.fullmatch(r"[+-]?\d{1,13}(?:[.,]\d{1,2})?")
        bad = ~ok & ~empty
        _report_values(
            problems,
            file,
            lines,
            bad,
            col.name,
            values,
            lambda v: f"montant attendu en euros (au plus deux décimales), reçu « {v} »",
        )
        norm = values.where(ok, "0").str.replace(",", ".", regex=False)
        parts = norm.str.split(".", n=1, expand=True).reindex(columns=[0, 1], fill_value="").fillna("")
        sign = np.where(parts[0].str.startswith("-"), -1, 1)
        whole = pd.to_numeric(parts[0].str.lstrip("+-")).astype("int64")
        frac = pd.to_numeric(parts[1].str.ljust(2, "0").replace("", "00")).astype("int64")
        parsed = pd.Series(sign * (whole * 100 + frac), index=values.index).astype("Int64").where(ok, pd.NA)
    if col.min is not None:
        below = parsed.lt(col.min).fillna(False).astype(bool)
        _report_values(
            problems,
            file,
            lines,
            below,
            col.name,
            values,
            lambda v: f"valeur {v} inférieure au minimum autorisé ({col.min})",
        )
    return parsed


def _parse_dates(values: pd.Series, empty: pd.Series) -> pd.Series:
    """``AAAA-MM-JJ`` text -> dates (NaT when empty or invalid), parsing each distinct text once."""
    codes, uniques = pd.factorize(values.where(~empty))
    parsed = pd.to_datetime(pd.Series(uniques, dtype=object), format="%Y-%m-%d", errors="coerce").astype(DATE_DTYPE)
    days = np.append(parsed.to_numpy(), np.datetime64("NaT", "ns"))
    return pd.Series(days[codes], index=values.index, dtype=DATE_DTYPE)


def _duplicated(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """``frame.duplicated(columns)`` computed on one int64 key built from per-column codes."""
    key = np.zeros(len(frame), dtype=np.int64)
    span = 1
    for col in columns:
        codes, uniques = pd.factorize(frame[col])
        n = len(uniques) + 1  # + the missing-value code (-1 -> 0)
        if span * n >= 2**62:
            return frame.duplicated(columns, keep="first")
        key = key * n + (codes.astype(np.int64) + 1)
        span *= n
    dup = np.ones(len(key), dtype=bool)
    dup[np.unique(key, return_index=True)[1]] = False  # first occurrence of each key
    return pd.Series(dup, index=frame.index)


def _report_values(problems, file, lines, mask, field, values, message) -> None:
    if not mask.any():
        return
    idx = np.flatnonzero(mask.to_numpy())
    for i in idx[:MAX_PROBLEMS_PER_CHECK]:
        problems.append(Problem(file, message(values.iloc[i]), int(lines[i]), field))
    if len(idx) > MAX_PROBLEMS_PER_CHECK:
        problems.append(
            Problem(file, f"… {len(idx) - MAX_PROBLEMS_PER_CHECK} autre(s) ligne(s) dans ce cas", None, field)
        )


def assign_periods(frame: pd.DataFrame, date_column: str, periods: pd.DataFrame, module: str) -> pd.DataFrame:
    """Add ``period_id`` to each row: the module period of its contract containing its date.

    Rows dated outside every active period of the module for their contract are errors."""
    if frame.empty:
        frame = frame.copy()
        frame["period_id"] = pd.Series(dtype="object")
        return frame
    period_codes, period_names, inside = _period_of_rows(frame["contract_id"], frame[date_column], periods)
    result = frame.copy(deep=False)  # copy-on-write: adding a column leaves the input intact
    # A category per period (a few thousand at most) rather than a text per row: 5 M séances
    # keep 2-byte codes instead of 30 bytes of text each.
    period_codes[~inside] = -1
    result["period_id"] = pd.Categorical.from_codes(period_codes, categories=period_names, validate=False)
    bad = ~inside
    if bad.any():
        file = frame.attrs.get("file", "?")
        problems = []
        bad_rows = result[bad]
        for _, row in bad_rows.head(MAX_PROBLEMS_PER_CHECK).iterrows():
            problems.append(
                Problem(
                    file,
                    f"date {row[date_column]:%d/%m/%Y} hors de toute période du contrat {row['contract_id']} "
                    f"pour le module « {module} »",
                    int(row["_line"]),
                    date_column,
                )
            )
        if len(bad_rows) > MAX_PROBLEMS_PER_CHECK:
            problems.append(
                Problem(file, f"… {len(bad_rows) - MAX_PROBLEMS_PER_CHECK} autre(s) ligne(s)", None, date_column)
            )
        raise InputError(problems)
    result.attrs = dict(frame.attrs)
    return result


def _placed(frame, spec, path, periods, cut, module_code: str, store: TableStore | None) -> pd.DataFrame:
    """:func:`assign_periods`, through the ``period_id`` column the store keeps next to the table
    for the same periods and suspended spans (see :mod:`~nmr_engine.inputs.snapshots`)."""
    if store is None or path is None or len(frame) < store.min_rows:
        return assign_periods(frame, spec.event_date, periods, module_code)
    spans = cut if cut is not None else pd.DataFrame()
    placed_by = periods_digest(periods[["contract_id", "period_id", "active_start", "active_end"]], spans)
    kept = store.get_periods(path, spec, placed_by, len(frame))
    if kept is None:
        placed = assign_periods(frame, spec.event_date, periods, module_code)
        store.put_periods(path, spec, placed_by, placed["period_id"])
        return placed
    result = frame.copy(deep=False)  # copy-on-write: adding a column leaves the input intact
    result["period_id"] = kept
    result.attrs = dict(frame.attrs)
    return result


def set_aside(frame: pd.DataFrame, date_column: str, cut: pd.DataFrame | None, notes: list[str] | None) -> pd.DataFrame:
    """Drop the rows dated inside a span where their contract pays nothing (suspension, days after
    a termination): ``cut`` has contract_id, start, end, reason (and optionally ``note``: False to
    leave it out of ``notes``, e.g. a span outside the periods computed). Each group dropped is
    noted (French, with the file and lines) in ``notes`` and listed in ``attrs['set_aside']``
    (contract_id, reason, lines, dates)."""
    if cut is None or cut.empty or frame.empty:
        return frame
    drop = np.zeros(len(frame), dtype=bool)
    # only the rows of the contracts with a span are looked at, each span on its contract's rows
    candidates = np.flatnonzero(frame["contract_id"].isin(set(cut["contract_id"])).to_numpy(dtype=bool))
    contracts = frame["contract_id"].iloc[candidates].astype(object).to_numpy()
    by_contract = pd.Series(np.arange(len(candidates))).groupby(contracts, sort=False).indices
    dates = frame[date_column].iloc[candidates]
    lines = frame["_line"].to_numpy()
    days = frame[date_column].to_numpy()
    aside = []
    for row in cut.itertuples(index=False):  # one loop per contract event, not per record
        own = by_contract.get(row.contract_id, np.zeros(0, dtype=np.intp))
        at = dates.iloc[own]
        hit = candidates[own[((at >= row.start) & (at <= row.end)).fillna(False).to_numpy(dtype=bool)]]
        hit.sort()
        if hit.size:
            aside.append(
                {
                    "contract_id": row.contract_id,
                    "reason": row.reason,
                    "lines": lines[hit].tolist(),
                    "dates": days[hit].tolist(),
                }
            )
        if hit.size and notes is not None and getattr(row, "note", True):
            shown = ", ".join(str(x) for x in lines[hit][:20]) + ("…" if hit.size > 20 else "")
            notes.append(
                f"{frame.attrs.get('file', '?')} : {int(hit.size)} ligne(s) du contrat {row.contract_id} datée(s) "
                f"pendant une période sans paiement ({row.reason}) sont écartées (ligne(s) {shown})"
            )
        drop[hit] = True
    if not drop.any():
        return frame
    out = frame[~drop].reset_index(drop=True)
    # The core reads it back to say, in the explanation of each line built from this file in
    # that period, which rows were set aside and why.
    out.attrs = {**frame.attrs, "set_aside": aside}
    return out


#: A (contract, day) grid of periods is used when it has at most this many cells more than twice the rows.
_GRID_EXTRA_CELLS = 1_000_000


def _period_of_rows(
    contracts: pd.Series, dates: pd.Series, periods: pd.DataFrame
) -> tuple[np.ndarray, pd.Index, np.ndarray]:
    """For each row, the period of its contract whose active span starts last on or before its
    date (as ``merge_asof(direction="backward")`` by contract; a code into the period names
    returned, -1 where none), and whether the date is also before that span's end.

    The periods are laid out on a (contract, day) grid when it is small (a gather per row),
    else found by binary search on (contract code, day) keys; no sort of the rows."""
    right = periods[["contract_id", "period_id", "active_start", "active_end"]]
    categories = pd.Index(pd.unique(right["contract_id"]))
    r_code = categories.get_indexer(right["contract_id"]).astype(np.int64)
    if isinstance(contracts.dtype, pd.CategoricalDtype):  # the reader's: map the few categories
        codes, uniques = contracts.cat.codes.to_numpy(), contracts.cat.categories
    else:  # hash the long column once, map its few values
        codes, uniques = pd.factorize(contracts)
    contract_of_value = np.append(categories.get_indexer(uniques), -1).astype(np.int64)
    ns_per_day = 86_400_000_000_000
    r_start = right["active_start"].to_numpy().view(np.int64)
    r_end = right["active_end"].to_numpy().view(np.int64)
    l_ns = np.asarray(dates.to_numpy(), dtype="datetime64[ns]").view(np.int64)
    nat = l_ns == np.iinfo(np.int64).min  # NaT: a missing date is in no period
    dated = None if not nat.any() else ~nat
    l_day, r_day = l_ns // ns_per_day, r_start // ns_per_day
    spans = [a for a in (l_day if dated is None else l_day[dated], r_day) if a.size]
    low = min((int(a.min()) for a in spans), default=0)
    width = max((int(a.max()) for a in spans), default=0) - low + 1
    order = np.lexsort((r_start, r_code))
    r_key = r_code[order] * width + (r_day[order] - low)
    cells = len(categories) * width
    if cells <= 2 * len(l_ns) + _GRID_EXTRA_CELLS:
        # grid[cell]: the last period starting on or before each (contract, day) cell (-1: none
        # of that contract), what the binary search below finds; after the contracts' cells,
        # one contract's worth of -1 for the rows of no known contract and without a date
        lengths = np.diff(np.r_[0, r_key, cells])
        grid = np.repeat(np.arange(-1, len(r_key), dtype=np.int32), lengths)
        grid_contract = np.repeat(np.r_[-1, r_code[order]].astype(np.int32), lengths)
        grid[grid_contract != np.arange(cells, dtype=np.int32) // width] = -1
        grid = np.r_[grid, np.full(width, -1, np.int32)]
        # each row's cell: its contract's first cell (less the first day) plus its day
        first_cell = np.where(contract_of_value >= 0, contract_of_value * width, cells) - low
        l_key = first_cell[codes]
        l_key += l_day
        if dated is not None:
            l_key[nat] = cells
        pos = grid[l_key]
    else:
        l_code = contract_of_value[codes]
        if dated is not None:
            l_code[nat] = -1
            l_day[nat] = low
        l_key = l_code * width + (l_day - low)
        pos = np.searchsorted(r_key, l_key, side="right") - 1
        pos[(l_code < 0) | (pos >= 0) & (r_code[order][np.maximum(pos, 0)] != l_code)] = -1
    # pos -1 (no period) reads the last of each: an end before every date, no period
    ends = np.r_[r_end[order], np.iinfo(np.int64).min]
    inside = l_ns <= ends[pos]
    if dated is not None:
        inside &= dated
    period_codes, names = pd.factorize(right["period_id"])
    return np.r_[period_codes[order], -1][pos], pd.Index(names), inside


def read_module_tables(
    data_dir: Path,
    module_code: str,
    specs,
    known_contracts: set[str],
    periods: pd.DataFrame,
    *,
    view=None,
    cut: pd.DataFrame | None = None,
    notes: list[str] | None = None,
    cache: TableCache | None = None,
    store: TableStore | None = None,
) -> dict[str, pd.DataFrame]:
    """Read every table a module declares from ``<data_dir>/<module_code>/``.

    ``view`` (a :class:`~nmr_engine.inputs.submissions.DataView`) chooses which version of
    each file to read; ``cut`` lists spans where a contract pays nothing (rows dated there are
    set aside, see :func:`set_aside`); ``notes`` collects warnings; ``cache`` keeps parsed tables
    for the next workspaces of the process (see :class:`~nmr_engine.cache.TableCache`), ``store``
    on disk for the next processes (see :class:`~nmr_engine.inputs.snapshots.TableStore`)."""
    tables: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    for spec in specs:
        path = Path(data_dir) / module_code / f"{spec.name}.csv"
        label = None
        try:
            if view is not None:
                path, label, warnings = view.locate(f"{module_code}/{spec.name}.csv")
                if notes is not None:
                    notes.extend(warnings)
            frame = read_table(path, spec, known_contracts, label, cache, store)
            if spec.event_date:
                frame = set_aside(frame, spec.event_date, cut, notes)
                frame = _placed(frame, spec, path, periods, cut, module_code, store)
            tables[spec.name] = frame
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return tables
