"""Verify throughput of one ledger, and its copy into PostgreSQL.

    python bench/verify.py sqlite:///path/bench-ten-years.sqlite            # best of 3 passes
    python bench/verify.py sqlite:///path/x.sqlite --copy-to 'postgresql://postgres@127.0.0.1:5432/test?schema=verify_bench'

``--copy-to`` first loads the SQLite ledger's rows, as stored, into that schema (dropped and
created anew with the tables of the ledger's entry format), then verifies the copy instead.
Prints entries, best wall and best CPU seconds (worker processes included) and entries per
second (``verify_store``, the path of ``nmr ledger verify``; ``--workers 1``: one process).
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import time

from nmr_engine.ledger import open_store
from nmr_engine.ledger.hashchain import verify_store


def copy_to_postgres(sqlite_url: str, url: str) -> None:
    import psycopg

    from nmr_engine.ledger.postgres import split_url
    from nmr_engine.ledger.store import TABLES_DDL

    src = sqlite3.connect(sqlite_url[len("sqlite:///") :])
    entry_columns = [r[1] for r in src.execute("PRAGMA table_info(entries)")]
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if "record" not in entry_columns:  # format 1: its tables first (opening keeps them)
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(f"SET search_path TO {schema}")
            for sql in TABLES_DDL:
                conn.execute(sql)
    open_store(url).close()
    with psycopg.connect(conninfo) as conn:
        conn.execute(f"SET search_path TO {schema}")
        for table in ("runs", "entries"):
            columns = ", ".join(r[1] for r in src.execute(f"PRAGMA table_info({table})"))
            with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in src.execute(f"SELECT {columns} FROM {table} ORDER BY seq"):
                    copy.write_row(row)
        conn.commit()
        conn.execute("ANALYZE")


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (verify's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--copy-to", help="a PostgreSQL URL with ?schema=: verify a copy there")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, help="processes (default: as nmr ledger verify, one per CPU)")
    args = parser.parse_args(argv)
    url = args.url
    if args.copy_to:
        copy_to_postgres(url, args.copy_to)
        url = args.copy_to
    passes = []
    for _ in range(args.repeat):
        began, cpu = time.perf_counter(), _cpu()
        with open_store(url) as store:
            report = verify_store(store, workers=args.workers)
            fmt = store.entry_format
        passes.append((time.perf_counter() - began, _cpu() - cpu))
        if report.problems:
            raise SystemExit(f"{url}: {report.problems[:3]}")
    wall, cpu = min(p[0] for p in passes), min(p[1] for p in passes)
    n = report.entries
    rounded = [(round(w, 3), round(c, 3)) for w, c in passes]
    print(
        f"{url}: format {fmt}, {n:,} entries; best wall {wall:.3f} s = {n / wall:,.0f}/s, "
        f"best CPU {cpu:.3f} s = {n / cpu:,.0f}/s; passes {rounded}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
