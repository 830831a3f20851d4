"""What the calculations of one process may share: parsed input tables and parameter files.

An auditor's replay rebuilds every posted run, and most runs read the same file versions
(a recorded version never changes; a working file rarely does between two runs). Parsing and
checking a table costs more than computing on it for small data, so :class:`TableCache`
keeps each table as parsed, keyed by the file's identity on disk (resolved path, size,
modification time, inode) and the table's declaration. A changed file has a new key and is
read again; nothing is ever written to disk.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd

from .parameters.model import Parameter
from .plugin.api import TableSpec

CacheKey = tuple[Any, ...]


class _RowsLRU:
    """Least-recently-used values, each of a number of rows, up to ``max_rows`` rows in all;
    counts its hits and misses. Safe to share between threads."""

    def __init__(self, max_rows: int = 20_000_000):
        self.max_rows = max_rows
        self._kept: OrderedDict[CacheKey, tuple[Any, int]] = OrderedDict()
        self._rows = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # modules' tables are read in threads (Workspace.calculate)

    def _find(self, key: CacheKey) -> Any | None:
        with self._lock:
            found = self._kept.get(key)
            if found is None:
                self.misses += 1
                return None
            self.hits += 1
            self._kept.move_to_end(key)
            return found[0]

    def _keep(self, key: CacheKey, value: Any, rows: int) -> None:
        with self._lock:
            if key in self._kept or rows > self.max_rows:
                return
            self._kept[key] = (value, rows)
            self._rows += rows
            while self._rows > self.max_rows:
                self._rows -= self._kept.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._kept)


class TableCache(_RowsLRU):
    """Parsed tables, least-recently-used first out, up to ``max_rows`` rows in all (frames are
    shared, copy-on-write)."""

    @staticmethod
    def key(path: Path, spec: TableSpec) -> CacheKey:
        return (*file_key(path), spec)

    def get(self, key: CacheKey, file: str) -> pd.DataFrame | None:
        """The table read under ``key`` (a shallow copy naming ``file``), or None."""
        frame = self._find(key)
        if frame is None:
            return None
        out = frame.copy(deep=False)
        out.attrs = {"file": file}
        return out

    def put(self, key: CacheKey, frame: pd.DataFrame) -> None:
        kept = frame.copy(deep=False)
        kept.attrs = {}
        self._keep(key, kept, len(frame))


class ReadCache:
    """Shared by the workspaces of one process that read the same files (the runs of a replay).

    ``tables``: the parsed input tables; ``parameters``: each parameter folder's parameters, keyed
    by the folder and its files' sizes and modification times (parameters are frozen values);
    ``modules``: each module's tables as checked and placed in periods (see :class:`ModuleTables`)."""

    def __init__(self, max_rows: int = 20_000_000):
        self.tables = TableCache(max_rows)
        self.modules = ModuleTables(max_rows)
        self._parameters: dict[CacheKey, list[Parameter]] = {}
        self._digests: dict[CacheKey, str] = {}

    def digest(self, path: Path) -> str:
        """sha256 of a file's content, computed once while the file is unchanged on disk."""
        key = file_key(path)
        if key not in self._digests:
            self._digests[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return self._digests[key]

    def parameters(self, folder: Path, code: str, load) -> list[Parameter]:
        """``load(folder, code)``'s parameters, loaded once while the folder's files are unchanged."""
        files = sorted(Path(folder).rglob("*.yaml"))
        key = (os.path.realpath(folder), code, tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
        if key not in self._parameters:
            self._parameters[key] = list(load(folder, code))
        return self._parameters[key]


class ModuleTables(_RowsLRU):
    """A module's input tables as :func:`~nmr_engine.inputs.read_module_tables` returns them
    (contract check, rows set aside, periods assigned), with the notes it wrote, keyed by
    everything they depend on: the module and its table declarations, each file read (its
    identity on disk, as :class:`TableCache`, and the version's label and warnings), the known
    contracts, the module's periods and the spans where contracts pay nothing (their values).
    A run of a replay whose contracts and files are those of an earlier run skips the checks;
    any difference is a new key, read and checked again. Only successful reads are kept."""

    def get(self, key: CacheKey, notes: list[str] | None) -> dict[str, pd.DataFrame] | None:
        found = self._find(key)
        if found is None:
            return None
        tables, written = found
        if notes is not None:
            notes.extend(written)
        return {name: _shared(frame) for name, frame in tables.items()}

    def put(self, key: CacheKey, tables: dict[str, pd.DataFrame], notes: tuple[str, ...]) -> None:
        kept = {name: _shared(frame) for name, frame in tables.items()}
        self._keep(key, (kept, notes), sum(len(t) for t in tables.values()))


def _shared(frame: pd.DataFrame) -> pd.DataFrame:
    """A shallow (copy-on-write) copy; pandas gives it a deep copy of ``attrs``."""
    return frame.copy(deep=False)


def frame_key(frame: pd.DataFrame | None) -> CacheKey:
    """The values of a (small) frame, hashable: its columns, dtypes and every value."""
    if frame is None:
        return (None,)
    return (
        tuple(frame.columns),
        tuple(str(t) for t in frame.dtypes),
        tuple(tuple(frame[c].tolist()) for c in frame.columns),
    )


def file_key(path: Path | None) -> CacheKey:
    """A file's identity on disk (resolved path, size, modification time, inode), None when absent."""
    if path is None or not Path(path).exists():
        return (str(path), None)
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)
