"""Shared fixtures: small contract + data folders written in the test's tmp_path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def write_contract(
    folder: Path,
    cid: str = "C1",
    *,
    start="2012-07-01",
    end="2014-06-30",
    anchor="07-01",
    modules: str = "  - {code: etp}",
    extra: str = "",
    name: str | None = None,
) -> Path:
    """Write a minimal valid contract file and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or cid.lower()}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        id: {cid}
        structure:
          finess: "590000017"
          name: MSP de test {cid}
          kind: MSP
          territory: Test
        parties:
          ars: ARS Test
          caisse: CPAM Test
        signed_on: {start}
        start: {start}
        end: {end}
        periods:
          anchor: "{anchor}"
        modules:
        """)
        + modules
        + "\n"
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    return path


def write_table(folder: Path, module: str, table: str, text: str) -> Path:
    """Write ``<folder>/<module>/<table>.csv`` from a dedented CSV text."""
    path = folder / module / f"{table}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def workspace_dirs(tmp_path):
    """(contracts_dir, data_dir) under tmp_path."""
    contracts, data = tmp_path / "contracts", tmp_path / "data"
    contracts.mkdir()
    data.mkdir()
    return contracts, data
