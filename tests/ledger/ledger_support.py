"""Helpers of the ledger tests: a small workspace, and fresh ledgers per backend.

Every test taking ``ledger_url`` runs on SQLite and on PostgreSQL (the abstract-suite
pattern of eventsourcing's ``tests/persistence.py``). The PostgreSQL variant uses a
fresh schema per test (dropped afterwards) on ``NMR_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); it is skipped when no server answers,
unless ``NMR_REQUIRE_POSTGRES=1`` (CI), where it fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nmr_engine.engine import Workspace
from nmr_engine.plugin.manager import PluginRegistry

HERE = Path(__file__).parent
ESSAI_PLUGIN = HERE / "essai_plugin.py"
KEY = "clé-de-test-0123456789abcdef"
PG_URL = os.environ.get("NMR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SESSION_TAG = f"nmr_t{os.getpid()}_{uuid.uuid4().hex[:6]}"
_counter = itertools.count(1)

# Illustrative bank details (valid check digits, invented accounts): test fixtures only.
IBAN_A = "FR7630006000011234567890189"
BIC_A = "AGRIFRPP"
IBAN_C = "FR7630004000031234567890143"
BIC_C = "BNPAFRPP"
DEBTOR_IBAN = "FR7610107001011234567890129"

CONTRACT = """\
id: {id}
structure:
  finess: "{finess}"
  name: {name}
  kind: MSP
  territory: Essai
parties:
  ars: ARS Essai
  caisse: CPAM d'essai
signed_on: 2011-12-01
start: 2012-01-01
end: 2013-12-31
periods:
  anchor: "01-01"
modules:
  - {{code: {module}}}
payees:
  - id: structure
    name: {name}
{bank}"""

# Contract A (ETP), calendar periods. In 2012:
#   PAT-A1: diagnostic + 3 séances -> tier 3–4: 250,00 €
#   PAT-A2: diagnostic + 5 séances -> tier 5–6: 300,00 €
#   trainings of RPPS-1 and RPPS-2: 2 × 1 000,00 € = 2 000,00 €
#   structuring claim: 1 000,00 €
#   A total: 250 + 300 + 2 000 + 1 000 = 3 550,00 €
# Contract B (ETP, no bank details): structuring claim 1 000,00 €.
# Contract C (module essai): 100,00 + 33,33 = 133,33 € ; advance 60 % = 79,998 -> 80,00 € ;
#   balance 133,33 − 80,00 = 53,33 €.
# Everything due in 2012: 3 550 + 1 000 + 133,33 = 4 683,33 €.
SESSIONS = """\
contract_id;programme_id;patient_id;session_date;kind
ENMR-TEST-A;P1;PAT-A1;2012-02-01;diagnostic
ENMR-TEST-A;P1;PAT-A1;2012-03-01;seance
ENMR-TEST-A;P1;PAT-A1;2012-04-01;seance
ENMR-TEST-A;P1;PAT-A1;2012-05-01;seance
ENMR-TEST-A;P1;PAT-A2;2012-02-02;diagnostic
ENMR-TEST-A;P1;PAT-A2;2012-03-02;seance
ENMR-TEST-A;P1;PAT-A2;2012-04-02;seance
ENMR-TEST-A;P1;PAT-A2;2012-05-02;seance
ENMR-TEST-A;P1;PAT-A2;2012-06-02;seance
ENMR-TEST-A;P1;PAT-A2;2012-07-02;seance
"""
# The late correction: a third patient, diagnostic + 4 séances (tier 3–4): the 3–4 line
# goes from 1 × 250,00 to 2 × 250,00 €: one regularisation of +250,00 €.
LATE_PATIENT = """\
ENMR-TEST-A;P1;PAT-A3;2012-09-01;diagnostic
ENMR-TEST-A;P1;PAT-A3;2012-09-15;seance
ENMR-TEST-A;P1;PAT-A3;2012-10-01;seance
ENMR-TEST-A;P1;PAT-A3;2012-10-15;seance
ENMR-TEST-A;P1;PAT-A3;2012-11-01;seance
"""
FILES = {
    "etp/programmes.csv": "contract_id;programme_id;title;authorised_from;authorised_to\n"
    "ENMR-TEST-A;P1;Diabète de type 2;2011-01-01;\n",
    "etp/sessions.csv": SESSIONS,
    "etp/trainings.csv": "contract_id;professional_id;training_date;training_title\n"
    "ENMR-TEST-A;RPPS-1;2012-03-10;Formation ETP 40 h\n"
    "ENMR-TEST-A;RPPS-2;2012-06-10;Formation ETP 40 h\n",
    "etp/structuring.csv": "contract_id;claim_date;reference\n"
    "ENMR-TEST-A;2012-02-15;Note de structuration A\n"
    "ENMR-TEST-B;2012-03-01;Note de structuration B\n",
    "essai/forfaits.csv": "contract_id;patient_id;acte_date;montant\n"
    "ENMR-TEST-C;PAT-C1;2012-03-01;100.00\n"
    "ENMR-TEST-C;PAT-C2;2012-04-01;33,33\n",
}
PATIENTS = ("PAT-A1", "PAT-A2", "PAT-A3", "PAT-C1", "PAT-C2")


def make_workspace_files(root: Path) -> Path:
    """Write contracts/ and data/ of the small example under ``root``."""
    contracts = root / "contracts"
    contracts.mkdir(parents=True)
    for cid, finess, name, module, bank in (
        ("ENMR-TEST-A", "590000001", "Maison de santé A", "etp", f"    iban: {IBAN_A}\n    bic: {BIC_A}\n"),
        ("ENMR-TEST-B", "590000002", "Maison de santé B", "etp", ""),
        ("ENMR-TEST-C", "590000003", "Maison de santé C", "essai", f"    iban: {IBAN_C}\n    bic: {BIC_C}\n"),
    ):
        text = CONTRACT.format(id=cid, finess=finess, name=name, module=module, bank=bank)
        (contracts / f"{cid.lower()}.yaml").write_text(text, encoding="utf-8")
    for rel, text in FILES.items():
        path = root / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def add_late_patient(root: Path) -> None:
    with open(root / "data" / "etp" / "sessions.csv", "a", encoding="utf-8") as fh:
        fh.write(LATE_PATIENT)


def workspace(root: Path, run_date: dt.date) -> Workspace:
    return Workspace(root / "contracts", root / "data", PluginRegistry(paths=[ESSAI_PLUGIN]), run_date)


def drop_schemas(pattern: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (pattern,))]
        for name in names:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@contextlib.contextmanager
def raw_connection(url: str, create_schema: bool = False) -> Iterator[tuple[Any, str]]:
    """A plain DB-API connection to the ledger at ``url`` (SQLite file, or PostgreSQL with its
    schema as search path, created first when asked) and its parameter mark (``?`` or ``%s``);
    committed and closed on exit."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :])
        try:
            yield conn, "?"
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    from nmr_engine.ledger.postgres import split_url

    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if create_schema:
            conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        yield conn, "%s"


def create_format_1_tables(url: str) -> None:
    """Create the tables of a format-1 ledger at ``url`` (empty, no triggers yet)."""
    from nmr_engine.ledger.store import TABLES_DDL

    with raw_connection(url, create_schema=True) as (conn, _):
        for sql in TABLES_DDL:
            conn.execute(sql)


def _separator(url: str) -> str:
    return "&" if "?" in url else "?"


class LedgerFactory:
    """Fresh, empty ledgers of one backend."""

    def __init__(self, backend: str, tmp_path: Path, base: str | None):
        self.backend = backend
        self.tmp_path = tmp_path
        self.base = base
        self.schemas: list[str] = []

    def new(self, entry_format: int = 2) -> str:
        """A new ledger; ``entry_format=1``: with the tables ledgers had before format 2 (what
        opening it keeps: posting into it writes format-1 entries)."""
        n = next(_counter)
        if self.backend == "sqlite":
            url = f"sqlite:///{self.tmp_path / f'ledger-{n}.sqlite'}"
        else:
            schema = f"{SESSION_TAG}_{n}"
            self.schemas.append(schema)
            url = f"{self.base}{_separator(self.base)}schema={schema}"
        if entry_format == 1:
            create_format_1_tables(url)
        return url

    def cleanup(self) -> None:
        for schema in self.schemas:
            drop_schemas(schema)
