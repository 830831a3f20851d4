"""What the calculations of one process may share: parsed input tables and parameter files.

An auditor's replay rebuilds every posted run, and most runs read the same file versions
(a recorded version never changes; a working file rarely does between two runs). Parsing and
checking a table costs more than computing on it for small data, so :class:`TableCache`
keeps each table as parsed, keyed by the file's identity on disk (resolved path, size,
modification time, inode) and the table's declaration. A changed file has a new key and is
read again; nothing is ever written to disk.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd

from .parameters.model import Parameter
from .plugin.api import TableSpec

CacheKey = tuple[Any, ...]


class TableCache:
    """Least-recently-used tables up to ``max_rows`` rows in all (frames are shared, copy-on-write)."""

    def __init__(self, max_rows: int = 20_000_000):
        self.max_rows = max_rows
        self._frames: OrderedDict[CacheKey, pd.DataFrame] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(path: Path, spec: TableSpec) -> CacheKey:
        st = os.stat(path)
        return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, spec)

    def get(self, key: CacheKey, file: str) -> pd.DataFrame | None:
        """The table read under ``key`` (a shallow copy naming ``file``), or None."""
        frame = self._frames.get(key)
        if frame is None:
            self.misses += 1
            return None
        self.hits += 1
        self._frames.move_to_end(key)
        out = frame.copy(deep=False)
        out.attrs = {"file": file}
        return out

    def put(self, key: CacheKey, frame: pd.DataFrame) -> None:
        if key in self._frames or len(frame) > self.max_rows:
            return
        kept = frame.copy(deep=False)
        kept.attrs = {}
        self._frames[key] = kept
        while sum(len(f) for f in self._frames.values()) > self.max_rows:
            self._frames.popitem(last=False)

    def __len__(self) -> int:
        return len(self._frames)


class ReadCache:
    """Shared by the workspaces of one process that read the same files (the runs of a replay).

    ``tables``: the parsed input tables; ``parameters``: each parameter folder's parameters, keyed
    by the folder and its files' sizes and modification times (parameters are frozen values)."""

    def __init__(self, max_rows: int = 20_000_000):
        self.tables = TableCache(max_rows)
        self._parameters: dict[CacheKey, list[Parameter]] = {}

    def parameters(self, folder: Path, code: str, load) -> list[Parameter]:
        """``load(folder, code)``'s parameters, loaded once while the folder's files are unchanged."""
        files = sorted(Path(folder).rglob("*.yaml"))
        key = (os.path.realpath(folder), code, tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
        if key not in self._parameters:
            self._parameters[key] = list(load(folder, code))
        return self._parameters[key]
