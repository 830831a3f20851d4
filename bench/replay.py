"""Replay throughput: post the 2012 and 2013 periods of a data set, then time ``replay``.

    python bench/replay.py                      # the bundled example (contracts/, data/)
    python bench/replay.py --scale 10           # nmr synth --contracts 80 --patients-per-structure 10 --years 2

Prints runs, entries, the replay's seconds (best of ``--repeat``, in-process, plugins and
Python already loaded, the code paths already run by the posts), its CPU seconds, entries per
second, and what ``nmr replay`` itself reports (``cli_replay_seconds``: the same replay in a
fresh process, the first calculation of that process, best of ``--repeat``; ``cli_wall_seconds``:
the whole command, Python start and imports included); ``--json FILE`` writes them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nmr_engine.engine import Workspace
from nmr_engine.ledger import open_store, post
from nmr_engine.ledger.replay import replay
from nmr_engine.plugin.manager import PluginRegistry
from nmr_engine.pseudonym import Pseudonymiser

ROOT = Path(__file__).resolve().parent.parent
RUNS = [(["2012"], dt.date(2013, 12, 31)), (["2012", "2013"], dt.date(2014, 12, 31))]
KEY = "bench-replay-key-0123456789"


def dataset(scale: int | None, work: Path) -> Path:
    if scale is None:
        return ROOT
    folder = work / f"replay-x{scale}"
    if not (folder / "contracts").is_dir():
        from nmr_engine.synth import synthesise

        synthesise(folder, contracts=8 * scale, patients_per_structure=10, years=2, seed=1, first_year=2012)
    return folder


def _cli_replay(url: str, contracts: Path, data: Path) -> tuple[float, float]:
    """(seconds ``nmr replay`` reports, wall seconds of the whole command) in a fresh process."""
    env = {**os.environ, "NMR_PSEUDONYM_KEY": KEY}
    nmr = Path(sys.executable).with_name("nmr")  # the command as installed beside this Python
    command = [str(nmr) if nmr.exists() else "nmr", "replay", "--ledger", url]
    command += ["--contracts", str(contracts), "--data", str(data)]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - began
    found = re.search(r"Rejeu identique : .*\((\d+\.\d+) s", done.stdout.replace("\n", " "))
    if done.returncode != 0 or found is None:
        raise SystemExit(f"nmr replay failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    return float(found.group(1)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, help="N × the bundled example (synthetic); default: the example itself")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("NMR_BENCH_DIR", "/tmp/nmr-bench")))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folder = dataset(args.scale, args.work)
    contracts, data = folder / "contracts", folder / "data"
    registry = PluginRegistry()
    pseudonymiser = Pseudonymiser(KEY.encode())
    tmp = Path(tempfile.mkdtemp(prefix="nmr-replay-bench-"))
    try:
        url = f"sqlite:///{tmp / 'ledger.sqlite'}"
        start = time.perf_counter()
        with open_store(url) as store:
            for period, day in RUNS:
                post(store, Workspace(contracts, data, registry, day, day), period, pseudonymiser)
            runs, entries = store.snapshot()
        posting = time.perf_counter() - start
        best, cpu = None, None
        for _ in range(args.repeat):
            began = time.process_time()
            report = replay(runs, entries, contracts, data, registry, pseudonymiser)
            used = time.process_time() - began
            assert report.ok, [d.text() for d in report.differences[:5]]
            best = report if best is None or report.seconds < best.seconds else best
            cpu = used if cpu is None else min(cpu, used)
        cli = [_cli_replay(url, contracts, data) for _ in range(args.repeat)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "scale": args.scale or "example",
        "contracts": len(list(contracts.glob("*.yaml"))),
        "runs": len(best.runs),
        "entries": len(best.entries),
        "post_seconds": round(posting, 3),
        "replay_seconds": round(best.seconds, 3),
        "replay_cpu_seconds": round(cpu, 3),
        "entries_per_second": round(best.throughput),
        "cli_replay_seconds": min(c[0] for c in cli),
        "cli_wall_seconds": round(min(c[1] for c in cli), 3),
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
