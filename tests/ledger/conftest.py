"""Fixtures of the ledger tests (helpers in ``ledger_support``).

Every test taking ``ledger_url`` or ``ledgers`` runs on SQLite and on PostgreSQL; the
PostgreSQL variant is skipped when no server answers, unless ``NMR_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from ledger_support import (
    KEY,
    PG_URL,
    SESSION_TAG,
    LedgerFactory,
    add_late_patient,
    drop_schemas,
    make_workspace_files,
    workspace,
)

from nmr_engine.ledger import prepare
from nmr_engine.pseudonym import Pseudonymiser


@pytest.fixture(autouse=True)
def _pseudonym_key(monkeypatch):
    monkeypatch.setenv("NMR_PSEUDONYM_KEY", KEY)


@pytest.fixture
def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser(KEY.encode())


@pytest.fixture
def example(tmp_path) -> Path:
    return make_workspace_files(tmp_path / "ws")


@pytest.fixture(scope="session")
def postgres_base():
    """The PostgreSQL URL when a server answers; skip (or fail in CI) otherwise."""
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        if os.environ.get("NMR_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (NMR_REQUIRE_POSTGRES=1) but {PG_URL} does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server at {PG_URL}")
    yield PG_URL
    drop_schemas(f"{SESSION_TAG}%")


@pytest.fixture(params=["sqlite", "postgres"])
def ledgers(request, tmp_path):
    base = request.getfixturevalue("postgres_base") if request.param == "postgres" else None
    factory = LedgerFactory(request.param, tmp_path, base)
    yield factory
    factory.cleanup()


@pytest.fixture
def ledger_url(ledgers) -> str:
    return ledgers.new()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """For tests of what is built from the ledger, not of the storage (one backend is enough)."""
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture(scope="module")
def two_proposals(tmp_path_factory):
    """What is due for 2012 before and after the late patient (computed once for the module)."""
    root = make_workspace_files(tmp_path_factory.mktemp("tamper") / "ws")
    first = prepare(workspace(root, dt.date(2013, 1, 15)), ["2012"], Pseudonymiser(KEY.encode()))
    add_late_patient(root)
    return first, prepare(workspace(root, dt.date(2013, 1, 15)), ["2012"], Pseudonymiser(KEY.encode()))
