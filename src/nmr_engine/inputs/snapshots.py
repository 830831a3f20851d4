"""Checked input tables kept on disk, so that a file is parsed and checked once, not at every run.

Payment staff calculate a period several times (a preview, the posting, a re-run after a late
file), and each time the large activity files (millions of séance rows) were parsed and checked
again, which cost more than the calculation itself. A :class:`TableStore` keeps each big table as
it came out of the checks of :func:`~nmr_engine.inputs.reader.read_table` in an Arrow file
(``<data>/.tables/<key>.arrow``, uncompressed, memory-mapped when read back): the next run reads
it in a fraction of the parse. What is kept is the table before the contract check, which
depends on the contracts and is always redone; a file with a problem is never kept.

**When a kept table is used.** Its name is a digest of everything the table depends on:

- the file's identity on disk: resolved path, device, inode, size, modification and change
  times in nanoseconds. A program can set a file's modification time, not its change time
  (``ctime``), which the kernel sets at every write; any rewrite of the file changes the key;
- the table's declaration (:class:`~nmr_engine.plugin.api.TableSpec`, every column);
- the reader's own source code, the engine's, pandas' and pyarrow's versions: a new reader
  never reuses what an older one checked.

A file is kept only when it did not change while it was read and its last change is more than
:data:`SETTLED_SECONDS` old: a file rewritten within the same clock tick as its last change (same
size, same times) cannot then be mistaken for the one kept — the precaution git takes with its
index ("racy git").

**What it never does.** It never decides an amount on its own: a kept table is exactly the frame
the checks gave. Writing goes through a temporary file renamed into place, so a run that stops
midway leaves no half-written table; a table that cannot be read back (disk full, damaged file) is
read again from the CSV. ``NMR_TABLE_STORE=off`` turns the store off; ``NMR_TABLE_STORE=DIR``
keeps the tables in ``DIR``. Auditors' replays (``nmr replay``, the audit bundle) do not use it:
they prove every amount from the files themselves.

**The periods of the rows.** Placing each dated row in its contract period (``period_id``, see
:func:`~nmr_engine.inputs.reader.assign_periods`) depends on the table and on the module's
contract periods and suspended spans, which the contracts decide. Next to a kept table, the store
keeps that column for the periods it was computed with (``<key>-periods-<digest>.arrow``, named
by the kept table's key and a digest of the periods' and spans' values): the next run with the
same contracts reads it back instead of placing millions of rows again; any other contracts name
another file, computed and kept anew.

**Row lookups between kept tables.** A plugin finds each row's row in another table by key
(:func:`~nmr_engine.plugin.helpers.row_positions`: each child consultation's patient among 3.4 M,
a third of a second at national scale). The answer depends on the two tables' key columns only:
when every key column is still the very column read from a kept table (the same Arrow array, or
the same category codes and categories, which pandas replaces when a row is removed or a value
set; :func:`kept_origin`), the answer is kept too (``rows-<digest>.npy``, named by the kept
tables' keys and columns) and read back by the next run. One side may instead be a small frame
that is not a kept table (the general practitioners selected from ``professionals.csv``): it is
then named by a digest of its values (:func:`values_digest`).

Kept tables are not removed when their file changes (the old one is simply no longer named);
``rm -r <data>/.tables`` is always safe.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
from pathlib import Path

import attrs
import numpy as np
import pandas as pd

from ..plugin.api import TableSpec

ENV = "NMR_TABLE_STORE"
FOLDER = ".tables"
#: Format of the kept files (raise it when what is kept changes shape). 2: one chunk per column.
FORMAT = 2
#: Only tables of at least this many rows are kept (small ones parse in milliseconds).
MIN_ROWS = 50_000
#: Rows of a table converted to Arrow and back before it is kept (see :func:`_round_trips`).
SAMPLE_ROWS = 1_000
#: A file is kept only when its last change is older than this (see the module doc).
SETTLED_SECONDS = 2.0
#: Format of the kept row lookups (``rows-<digest>.npy``).
POSITIONS_FORMAT = 1
_OFF = {"off", "0", "non", "no", "false"}


def _reader_versions() -> str:
    """What the checks depend on besides the file and the declaration."""
    import pyarrow

    from .. import __version__
    from . import reader

    source = hashlib.sha256(Path(reader.__file__).read_bytes()).hexdigest()
    return f"{FORMAT}|{__version__}|pandas {pd.__version__}|pyarrow {pyarrow.__version__}|{source}"


def file_identity(path: Path) -> tuple:
    """The identity of a file on disk that any write changes (see the module doc)."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@attrs.define
class TableStore:
    """Checked tables kept as Arrow files in ``folder`` (see the module doc).

    ``min_rows``: smaller tables are not kept. ``hits``/``writes`` count what it did."""

    folder: Path = attrs.field(converter=Path)
    min_rows: int = MIN_ROWS
    hits: int = 0
    writes: int = 0
    _versions: str = attrs.field(factory=_reader_versions, init=False, repr=False)

    @classmethod
    def for_data(cls, data_dir: Path) -> TableStore | None:
        """The store of a data folder: ``<data_dir>/.tables``, or as ``NMR_TABLE_STORE`` says
        (``off``: none; a folder: that one)."""
        setting = os.environ.get(ENV, "").strip()
        if setting.lower() in _OFF:
            return None
        return cls(Path(setting) if setting else Path(data_dir) / FOLDER, min_rows=MIN_ROWS)

    def _name(self, identity: tuple, spec: TableSpec) -> Path:
        key = repr((self._versions, identity, spec)).encode("utf-8")
        return self.folder / f"{hashlib.sha256(key).hexdigest()[:40]}.arrow"

    def get_periods(self, path: Path, spec: TableSpec, placed_by: str, rows: int) -> pd.Series | None:
        """The ``period_id`` column kept for the table of ``path`` (as kept now) placed by the
        periods whose digest is ``placed_by`` (:func:`periods_digest`), when it has ``rows`` rows;
        None when none is kept."""
        try:
            kept = self._periods_name(self._name(file_identity(path), spec), placed_by)
            if not kept.exists():
                return None
            column = _read_arrow(kept)["period_id"]
        except Exception:  # unreadable: the rows are placed again
            return None
        if len(column) != rows or not isinstance(column.dtype, pd.CategoricalDtype):
            return None
        return column

    def put_periods(self, path: Path, spec: TableSpec, placed_by: str, column: pd.Series) -> bool:
        """Keep the ``period_id`` column of the table of ``path`` placed by the periods whose digest
        is ``placed_by``, when that table is kept as it is now (else False, nothing written)."""
        try:
            table = self._name(file_identity(path), spec)
            if not table.exists():
                return False
            _write_arrow(pd.DataFrame({"period_id": column}, copy=False), self._periods_name(table, placed_by))
        except Exception:  # keeping is a saving, never a condition
            return False
        return True

    @staticmethod
    def _periods_name(table: Path, placed_by: str) -> Path:
        return table.with_name(f"{table.stem}-periods-{placed_by}.arrow")

    def get(self, path: Path, spec: TableSpec, file: str) -> pd.DataFrame | None:
        """The table kept for the file as it is now on disk (``attrs['file']`` = ``file``), or None."""
        try:
            kept = self._name(file_identity(path), spec)
            if not kept.exists():
                return None
            frame = _read_arrow(kept)
        except Exception:  # unreadable or damaged: the CSV is read again (and the table kept anew)
            return None
        if list(frame.columns) != [c.name for c in spec.columns] + ["_line"]:
            return None
        frame.attrs = {"file": file}
        for name in frame.columns:
            _remember(frame[name], self.folder, f"{kept.stem}:{name}")
        self.hits += 1
        return frame

    def put(self, path: Path, spec: TableSpec, frame: pd.DataFrame, identity: tuple, began_ns: int) -> bool:
        """Keep ``frame``, the checked table of ``path`` whose identity was ``identity`` when its
        reading began (at ``began_ns``, ``time.time_ns()``). Not kept (False) when the table is
        small, when the file changed while it was read or too recently (see the module doc), or
        when the store cannot be written (the calculation goes on; nothing is left behind)."""
        if len(frame) < self.min_rows:
            return False
        try:
            settled = max(identity[4], identity[5]) <= began_ns - int(SETTLED_SECONDS * 1e9)
            if not settled or file_identity(path) != identity or not _round_trips(frame.iloc[:SAMPLE_ROWS]):
                return False
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_arrow(frame, self._name(identity, spec))
        except Exception:  # keeping is a saving, never a condition: the calculation goes on
            return False
        self.writes += 1
        return True


def arrow_data(values: pd.Series):
    """The Arrow array holding an Arrow-backed text column (immutable: the same array object
    means the same values), or None for any other column. ``_pa_array`` is pandas' attribute;
    without it no column is recognised."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        return getattr(values.array, "_pa_array", None)
    return None


#: The columns of kept tables read back in this process (see :func:`kept_origin`): id of the
#: column's data (its Arrow array, or its category codes) -> (weak references to that data and
#: to its categories or None, store folder, "<kept file>:<column>").
_KEPT: dict[int, tuple] = {}


def _column_data(values: pd.Series) -> tuple:
    """What holds a column's values, as objects that are replaced (never changed) when a value or a
    row changes: an Arrow-backed text column's Arrow array, a categorical's codes and categories;
    (None, None) for any other column. ``_codes`` is pandas' attribute."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return getattr(values.array, "_codes", None), values.dtype.categories
    return arrow_data(values), None


def frozen_data(values: pd.Series) -> tuple | None:
    """(data, categories or None) holding a column's values when they cannot change in place: an
    Arrow-backed text column's Arrow array, or a categorical's read-only codes and its categories
    (those of a kept table read back); None for any other column. The same objects later: the
    same values in the same order."""
    data, categories = _column_data(values)
    if data is None or (categories is not None and data.flags.writeable):
        return None  # codes that could be changed in place are not vouched for (read back, they cannot)
    return data, categories


def _remember(values: pd.Series, folder: Path, origin: str) -> None:
    frozen = frozen_data(values)
    if frozen is None:
        return
    data, categories = frozen
    key = id(data)
    refs = (
        weakref.ref(data, lambda _, key=key: _KEPT.pop(key, None)),
        weakref.ref(categories) if categories is not None else None,
    )
    _KEPT[key] = (*refs, folder, origin)


def kept_origin(values: pd.Series) -> tuple[Path, str] | None:
    """(store folder, "<kept file>:<column>") when ``values`` holds the very data read from a kept
    table's column (the same Arrow array, or the same codes and categories: the same values in the
    same order), else None."""
    data, categories = _column_data(values)
    found = _KEPT.get(id(data)) if data is not None else None
    if found is None or found[0]() is not data:
        return None
    if (found[1]() if found[1] is not None else None) is not categories:
        return None
    return found[2], found[3]


def values_digest(frame: pd.DataFrame, columns: list[str]) -> str | None:
    """The name ``values:<sha256>`` of a small frame that is not a kept table, in a kept row
    lookup: a digest of the values of ``columns`` in row order, with their dtypes (exact: the
    values' texts, not a hash per row); None when a column holds values other than text, numbers,
    dates or missing."""
    digest = hashlib.sha256(repr((len(frame), [str(frame[c].dtype) for c in columns])).encode("utf-8"))
    for column in columns:
        values = frame[column].astype(object).tolist()
        if not all(v is None or isinstance(v, (str, int, float, pd.Timestamp)) for v in values):
            return None
        digest.update(repr(values).encode("utf-8"))
    return "values:" + digest.hexdigest()


def positions_name(table_origins: list[str], rows_origins: list[str]) -> str:
    """The file name of a row lookup between kept columns (see the module doc; the kept tables'
    names already hold the reader's versions)."""
    key = repr((POSITIONS_FORMAT, table_origins, rows_origins)).encode("utf-8")
    return f"rows-{hashlib.sha256(key).hexdigest()[:40]}.npy"


def read_positions(folder: Path, name: str, rows: int, table_rows: int) -> np.ndarray | None:
    """The row lookup kept as ``name`` in ``folder``: ``rows`` positions, each -1 or a row of a
    table of ``table_rows`` rows; None when none is kept or it is not of that shape."""
    try:
        found = np.load(Path(folder) / name, allow_pickle=False)
    except Exception:  # none, or unreadable: looked up again
        return None
    if found.shape != (rows,) or found.dtype.kind != "i":
        return None
    if rows and (int(found.min()) < -1 or int(found.max()) >= table_rows):
        return None
    return found.astype(np.int64, copy=False)


def keep_positions(folder: Path, name: str, positions: np.ndarray) -> bool:
    """Keep a row lookup as ``name`` in ``folder`` (through a temporary file renamed into place);
    False when it cannot be written (nothing is left behind)."""
    folder = Path(folder)
    small = positions.astype(np.int32) if positions.size and int(positions.max()) < 2**31 - 1 else positions
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    except OSError:
        return False
    try:
        with os.fdopen(handle, "wb") as out:
            np.save(out, small, allow_pickle=False)
        os.replace(temporary, folder / name)
    except Exception:
        Path(temporary).unlink(missing_ok=True)
        return False
    return True


def periods_digest(*frames: pd.DataFrame) -> str:
    """A digest of the columns, dtypes and values of small frames, in order (the module periods and
    suspended spans that place a table's rows)."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(repr((list(frame.columns), [str(t) for t in frame.dtypes], len(frame))).encode("utf-8"))
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:24]


def _round_trips(sample: pd.DataFrame) -> bool:
    """Whether ``sample`` comes back from Arrow with the same values and dtypes (a column of a
    type Arrow would give back otherwise, e.g. Python objects, keeps the table off the store)."""
    import pyarrow as pa

    back = _frame_of(pa.Table.from_pandas(sample, preserve_index=False))
    try:
        pd.testing.assert_frame_equal(back, sample.reset_index(drop=True), check_exact=True, check_flags=False)
    except AssertionError:
        return False
    return list(back.dtypes) == list(sample.dtypes)


def _read_arrow(path: Path) -> pd.DataFrame:
    """The frame kept in ``path`` (memory-mapped)."""
    import pyarrow.feather as feather

    return _frame_of(feather.read_table(path, memory_map=True))


def _frame_of(table) -> pd.DataFrame:
    """A pandas frame of an Arrow table as kept. Categories are rebuilt from the kept dictionaries
    without checking again that they are distinct (they were, when kept; the check hashes every
    category: a third of a second for a million patients); the other columns by pyarrow."""
    import pyarrow as pa

    coded = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    rest = table.drop_columns(coded).to_pandas(split_blocks=True)  # no copy into 2-D blocks
    columns = {}
    for name in table.column_names:
        if name not in coded:
            columns[name] = rest[name]
            continue
        array = table.column(name).combine_chunks()
        columns[name] = pd.Series(_categorical(array), copy=False)
    return pd.DataFrame(columns, copy=False)


def _categorical(array) -> pd.Categorical:
    categories = pd.Index(array.dictionary.to_pandas())
    ordered = bool(array.type.ordered)
    fast = getattr(pd.CategoricalDtype, "_from_fastpath", None)  # pandas' own, unchecked
    dtype = fast(categories, ordered) if fast else pd.CategoricalDtype(categories, ordered)
    indices = array.indices
    codes = (indices.fill_null(-1) if indices.null_count else indices).to_numpy(zero_copy_only=False)
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _write_arrow(frame: pd.DataFrame, target: Path) -> None:
    """Write ``frame`` to ``target`` through a temporary file renamed into place, each column in
    one chunk (the parser's blocks joined): read back, a column is then one contiguous array that
    pandas and NumPy take without copying or joining (a national patients table came in 219 chunks)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    table = pa.Table.from_pandas(frame, preserve_index=False).combine_chunks()
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            feather.write_feather(table, out, compression="uncompressed", chunksize=max(len(frame), 1))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
