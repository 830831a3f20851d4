"""Benchmark suite: calculate one period at several scales, against the floor and a reference.

    python bench/run.py --scales 1,10,100,national [--period 2013] [--work /tmp/nmr-bench]

For each scale (``N``: N × the bundled example, i.e. 8·N contracts of 10 patients per
programme and year over 2012–2013; ``national``: the ``nmr synth --scale national`` preset)
it generates the data set once (``nmr synth``, cached under ``--work``), then runs each
*stage* in a fresh subprocess so that its wall time and peak memory (``ru_maxrss``) are its
own:

- ``bare_read``: ``pandas.read_csv`` of every input CSV, nothing else (the floor); also the
  size of those frames in memory (``memory_usage(deep=True)``);
- ``first_calculate``: ``Workspace.calculate([period])`` on files never read before (the data
  folder's table store emptied first): every table parsed, checked and kept on disk
  (``inputs/snapshots.py``) — the first run after new files arrive;
- ``calculate``: ``Workspace(...)`` (contracts and parameters; timed apart) then
  ``Workspace.calculate([period])`` as staff run it again on the same files (a preview, then
  the posting): big tables read back from the store — reading, computing and explaining;
- ``reference``: ``bench/reference_etp.py``, the per-row Python implementation of module 2,
  whose amounts are checked against the engine's (per contract, period and component).

- ``post``: ``nmr post`` of the period (every module) into a fresh SQLite ledger:
  ``prepare`` (calculate, pseudonymise, fingerprints) and ``commit`` timed apart;
- ``verify``: ``nmr ledger verify`` on a ten-year ledger (``ten_year_ledger``: ten years of
  ``nmr synth`` posted year after year, built once; at most ``--verify-contracts`` contracts);
- ``replay``: ``nmr replay`` of the same ten-year ledger (entries per second).

A stage is a function of the data set folder and the period in ``STAGES``, with its cells in
``COLUMNS``/``table_row``.

Every stage runs with ordinary memory pages and with freed memory kept for the next arrays, as
``nmr`` does (``nmr_engine.memory``), and imports ``nmr_engine`` before NumPy (on AMD Zen 4,
NumPy's AVX-512 code is then off, see ``nmr_engine.simd``); the bare read is measured the same
way.

It prints a table per scale, the ratios (engine / bare read, reference / engine), the
growth between consecutive scales (time ratio for a data ratio), and writes everything to
``--json``. Timings on a shared machine are noisy: run ``--repeat 3`` to keep the best.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE_CONTRACTS = 8  # the bundled example's ETP contracts
EXAMPLE_PATIENTS = 10


# -- stages (each runs in its own subprocess) ------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_with_children() -> float:
    """CPU seconds of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def stage_bare_read(folder: Path, period: str) -> dict:
    import pandas as pd

    base = _rss_mb()
    began = time.perf_counter()
    frames = {p: pd.read_csv(p, sep=";") for p in sorted((folder / "data").glob("*/*.csv"))}
    took = time.perf_counter() - began
    size = sum(int(f.memory_usage(deep=True).sum()) for f in frames.values())
    return {
        "seconds": took,
        "rows": sum(len(f) for f in frames.values()),
        "inputs_mb": size / 2**20,
        "base_mb": base,
        "peak_mb": _rss_mb(),
        "pandas": pd.__version__,
    }


def _store(folder: Path):
    """The data folder's table store, as ``nmr calculate`` and ``nmr post`` use it."""
    from nmr_engine.inputs.snapshots import TableStore

    return TableStore.for_data(folder / "data")


def stage_first_calculate(folder: Path, period: str) -> dict:
    """``calculate`` on files never read before: the store is emptied first, so every table is
    parsed, checked and kept (what the first run after new files costs)."""
    import shutil

    from nmr_engine.engine import Workspace

    store = _store(folder)
    if store is not None:
        shutil.rmtree(store.folder, ignore_errors=True)
    base = _rss_mb()
    workspace = Workspace(folder / "contracts", folder / "data", store=store)
    began = time.perf_counter()
    result = workspace.calculate([period])
    took = time.perf_counter() - began
    return {
        "seconds": took,
        "total_cents": int(result.lines["amount_cents"].sum()),
        "kept": store.writes if store is not None else 0,
        "base_mb": base,
        "peak_mb": _rss_mb(),
    }


def stage_calculate(folder: Path, period: str) -> dict:
    """``calculate`` as staff run it again on the same files: big tables read back from the
    store (filled first, untimed, when empty)."""
    sys.path.insert(0, str(HERE))
    from reference_etp import engine_totals

    from nmr_engine.engine import Workspace

    store = _store(folder)
    primed = store is not None and not any(store.folder.glob("*.arrow"))
    if primed:
        Workspace(folder / "contracts", folder / "data", store=store).calculate([period])
    base = _rss_mb()
    began = time.perf_counter()
    workspace = Workspace(folder / "contracts", folder / "data", store=store)
    loaded = time.perf_counter()
    result = workspace.calculate([period])
    done = time.perf_counter()
    per_module = result.lines.groupby("module")["amount_cents"].sum()
    lines_per_module = result.lines.groupby("module").size()
    del result
    # Module 2 alone (reads and checks only its own tables), for the ratio against the ETP reference.
    etp_began = time.perf_counter()
    result = workspace.calculate([period], modules=["etp"])
    etp_seconds = time.perf_counter() - etp_began
    totals = engine_totals(result.lines[result.lines["module"] == "etp"])
    (folder / f"engine-{period}.json").write_text(
        json.dumps({"|".join(k): v for k, v in totals.items()}), encoding="utf-8"
    )
    return {
        "load_seconds": loaded - began,
        "seconds": done - loaded,
        "etp_seconds": etp_seconds,
        "primed": primed,
        "children_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "store_hits": store.hits if store is not None else 0,
        "lines": int(lines_per_module.sum()),
        "total_cents": int(per_module.sum()),
        "module_cents": {k: int(v) for k, v in per_module.items()},
        "module_lines": {k: int(v) for k, v in lines_per_module.items()},
        "base_mb": base,
        "peak_mb": _rss_mb(),
    }


def stage_reference(folder: Path, period: str) -> dict:
    sys.path.insert(0, str(HERE))
    from reference_etp import MODULE, calculate, check

    from nmr_engine.engine import Workspace
    from nmr_engine.model import module_periods_frame

    workspace = Workspace(folder / "contracts", folder / "data")
    wanted = module_periods_frame(workspace.contracts, MODULE, [period])
    selected = set(zip(wanted["contract_id"], wanted["period_id"], strict=True))
    base = _rss_mb()
    began = time.perf_counter()
    totals = calculate(workspace, folder / "data", selected)
    took = time.perf_counter() - began
    out = {"seconds": took, "total_cents": sum(totals.values()), "base_mb": base, "peak_mb": _rss_mb()}
    engine_file = folder / f"engine-{period}.json"
    if engine_file.exists():
        engine = {tuple(k.split("|")): v for k, v in json.loads(engine_file.read_text(encoding="utf-8")).items()}
        diffs = check(totals, engine)
        out["differences"] = len(diffs)
        out["first_differences"] = diffs[:5]
    return out


BENCH_KEY = b"nmr-bench: a fixed pseudonymisation key for synthetic data only"
TEN_YEARS = 10


def stage_post(folder: Path, period: str) -> dict:
    """Calculate and post ``period`` (every module) into a fresh SQLite ledger, as ``nmr post`` does."""
    from nmr_engine.engine import Workspace
    from nmr_engine.ledger import open_store
    from nmr_engine.ledger.posting import commit, prepare
    from nmr_engine.pseudonym import Pseudonymiser

    ledger = folder / f"bench-post-{period}.sqlite"
    for stale in folder.glob(f"bench-post-{period}.sqlite*"):
        stale.unlink()
    base = _rss_mb()
    began = time.perf_counter()
    workspace = Workspace(folder / "contracts", folder / "data", store=_store(folder))
    loaded = time.perf_counter()
    with open_store(f"sqlite:///{ledger}") as store:
        proposal = prepare(workspace, [period], Pseudonymiser(BENCH_KEY))
        prepared = time.perf_counter()
        result = commit(store, proposal)
    done = time.perf_counter()
    return {
        "load_seconds": loaded - began,
        "prepare_seconds": prepared - loaded,
        "commit_seconds": done - prepared,
        "seconds": done - loaded,
        "entries": len(result.entries),
        "total_cents": result.total_cents,
        "ledger_mb": ledger.stat().st_size / 2**20,
        "base_mb": base,
        "peak_mb": _rss_mb(),
    }


def ten_year_ledger(folder: Path) -> tuple[Path, dict]:
    """A ledger of ten yearly campaigns on the ten-year set beside ``folder`` (built once, cached).

    The number of ledger entries depends on contracts × periods × components, not on the number
    of patients: the ten-year set has the contracts of ``folder`` (at most ``--verify-contracts``,
    default 800: posting ten national years does not fit a benchmark run on a 2-core machine) with
    5 patient cycles per programme and year (``nmr synth --contracts N --patients-per-structure 5
    --years 10``)."""
    import yaml

    manifest = yaml.safe_load((folder / "synth.yaml").read_text(encoding="utf-8"))
    contracts = min(int(manifest["contracts"]), int(os.environ.get("NMR_BENCH_VERIFY_CONTRACTS", "800")))
    ten = folder.parent / f"ten-years-{contracts}-seed-{manifest['seed']}"
    ledger = ten / "bench-ten-years.sqlite"
    info_file = ten / "bench-ten-years.json"
    for _ in range(1800):  # another run building the same ledger: wait for it (up to 30 min)
        if info_file.exists() or not ledger.exists():
            break
        time.sleep(1)
    if info_file.exists():
        return ledger, json.loads(info_file.read_text(encoding="utf-8"))
    nmr = Path(sys.executable).with_name("nmr")
    began = time.perf_counter()
    args = ["--contracts", str(contracts), "--patients-per-structure", "5", "--years", str(TEN_YEARS)]
    subprocess.run([str(nmr), "synth", "--out", str(ten), "--seed", str(manifest["seed"]), *args], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    synth_seconds = time.perf_counter() - began
    from nmr_engine.engine import Workspace
    from nmr_engine.ledger import open_store, post
    from nmr_engine.pseudonym import Pseudonymiser

    first = int(yaml.safe_load((ten / "synth.yaml").read_text(encoding="utf-8"))["years"][0])
    years = [str(y) for y in range(first - 1, first + TEN_YEARS)]  # July-anchored contracts start a year early
    workspace = Workspace(ten / "contracts", ten / "data")
    posts = []
    with open_store(f"sqlite:///{ledger}") as store:
        for year in years:
            t = time.perf_counter()
            result = post(store, workspace, [year], Pseudonymiser(BENCH_KEY))
            posts.append({"period": year, "entries": len(result.entries), "seconds": time.perf_counter() - t})
    info = {"contracts": contracts, "synth_seconds": synth_seconds, "posts": posts}
    info_file.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return ledger, info


def stage_verify(folder: Path, period: str) -> dict:
    """``nmr ledger verify`` on a ten-year ledger: stream every entry row (no objects built) and
    recompute the chain (``verify_store``, the CLI's path). Best of ``NMR_BENCH_VERIFY_REPEAT``
    (default 3) passes in this process, the first one on a cold cache; CPU time is reported too,
    being less sensitive than wall time to the other jobs of a shared machine (the worker
    processes' included when verify splits the ledger)."""
    ledger, info = ten_year_ledger(folder)
    from nmr_engine.ledger import open_store
    from nmr_engine.ledger.hashchain import verify_store
    from nmr_engine.ledger.verify_split import worker_count

    base = _rss_mb()
    passes = []
    for _ in range(int(os.environ.get("NMR_BENCH_VERIFY_REPEAT", "3"))):
        began, cpu = time.perf_counter(), _cpu_with_children()
        with open_store(f"sqlite:///{ledger}") as store:
            report = verify_store(store)
        passes.append((time.perf_counter() - began, _cpu_with_children() - cpu))
        if report.problems:
            raise SystemExit(f"ten-year ledger: {report.problems[:3]}")
    seconds, cpu_seconds = min(p[0] for p in passes), min(p[1] for p in passes)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "passes": passes,
        "runs": report.runs,
        "entries": report.entries,
        "entries_per_second": report.entries / seconds,
        "entries_per_cpu_second": report.entries / cpu_seconds if cpu_seconds else None,
        "workers": worker_count(None, report.entries),
        "entry_format": store.entry_format,
        "ledger_mb": ledger.stat().st_size / 2**20,
        "build": info,
        "base_mb": base,
        "peak_mb": _rss_mb(),
    }


def stage_replay(folder: Path, period: str) -> dict:
    """``nmr replay`` of the ten-year ledger: rebuild every run from the recorded inputs and
    compare it entry by entry with the stored ledger (a full recalculation per run)."""
    ledger, info = ten_year_ledger(folder)
    from nmr_engine.ledger import open_store
    from nmr_engine.ledger.replay import replay
    from nmr_engine.plugin.manager import PluginRegistry
    from nmr_engine.pseudonym import Pseudonymiser

    ten = ledger.parent
    base = _rss_mb()
    began = time.perf_counter()
    with open_store(f"sqlite:///{ledger}") as store:
        runs, entries = store.snapshot()
    report = replay(runs, entries, ten / "contracts", ten / "data", PluginRegistry(), Pseudonymiser(BENCH_KEY))
    done = time.perf_counter()
    if not report.ok:
        raise SystemExit(f"ten-year ledger replay differs: {[d.text() for d in report.differences[:3]]}")
    return {
        "seconds": done - began,
        "runs": len(runs),
        "entries": len(entries),
        "entries_per_second": len(entries) / (done - began),
        "build": info,
        "base_mb": base,
        "peak_mb": _rss_mb(),
    }


#: name -> function(folder, period) -> dict with at least "seconds" and "peak_mb"
#: (a stage that cannot run returns "skipped": reason).
STAGES = {
    "bare_read": stage_bare_read,
    "first_calculate": stage_first_calculate,
    "calculate": stage_calculate,
    "reference": stage_reference,
    "post": stage_post,
    "verify": stage_verify,
    "replay": stage_replay,
}


# -- orchestration ---------------------------------------------------------------------
def synth_args(scale: str) -> list[str]:
    if scale == "national":
        return ["--scale", "national"]
    n = int(scale)
    return [
        "--contracts",
        str(EXAMPLE_CONTRACTS * n),
        "--patients-per-structure",
        str(EXAMPLE_PATIENTS),
        "--years",
        "2",
    ]


def ensure_data(work: Path, scale: str, seed: int) -> Path:
    folder = work / f"scale-{scale}-seed-{seed}"
    if (folder / "synth.yaml").exists():
        return folder
    nmr = Path(sys.executable).with_name("nmr")
    cmd = [str(nmr), "synth", "--out", str(folder), "--seed", str(seed), *synth_args(scale)]
    began = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"  data set {scale} generated in {time.perf_counter() - began:.1f} s ({folder})", flush=True)
    return folder


def run_stage(stage: str, folder: Path, period: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--folder", str(folder), "--period", period]
    began = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = time.perf_counter() - began
    return out


def best_of(results: list[dict]) -> dict:
    return min(results, key=lambda r: r["seconds"])


def machine() -> dict:
    import numpy
    import pandas

    try:
        import pyarrow

        arrow = pyarrow.__version__
    except ImportError:
        arrow = None
    mem = ""
    try:
        mem = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "pyarrow": arrow,
        "platform": platform.platform(),
    }


COLUMNS = (
    "scale",
    "contracts",
    "input rows (all modules)",
    "ETP séances",
    "inputs in memory (MB)",
    "bare read (s)",
    "first calculate: files parsed and kept (s)",
    "first / bare read",
    "calculate (s)",
    "engine / bare read",
    "load contracts (s)",
    "reference ETP (s)",
    "reference / engine (ETP)",
    "peak RSS calculate (MB)",
    "calculate working memory / inputs",
    "post: calculate + ledger (s)",
    "post entries",
    "peak RSS post (MB)",
    "verify 10-year ledger (entries/s)",
    "amounts equal",
)


def _ok(r: dict | None) -> bool:
    return bool(r) and not r.get("skipped")


def table_row(r: dict) -> list[str]:
    read, calc, ref = r.get("bare_read"), r.get("calculate"), r.get("reference")
    first = r.get("first_calculate")
    post, ver = r.get("post"), r.get("verify")
    cells = [r["scale"], f"{r['contracts']:,}", f"{r['rows']:,}", f"{r['session_rows']:,}"]
    cells += [f"{read['inputs_mb']:.1f}", f"{read['seconds']:.2f}"] if read else ["–", "–"]
    cells += [f"{first['seconds']:.2f}"] if first else ["–"]
    cells += [f"{first['seconds'] / read['seconds']:.1f}×"] if first and read else ["–"]
    cells += [f"{calc['seconds']:.2f}"] if calc else ["–"]
    cells += [f"{calc['seconds'] / read['seconds']:.1f}×"] if calc and read else ["–"]
    cells += [f"{calc['load_seconds']:.2f}"] if calc else ["–"]
    cells += [f"{ref['seconds']:.2f}"] if ref else ["–"]
    cells += [f"{ref['seconds'] / calc['etp_seconds']:.1f}×"] if ref and calc and calc.get("etp_seconds") else ["–"]
    cells += [f"{calc['peak_mb']:.0f}"] if calc else ["–"]
    working = calc["peak_mb"] - calc["base_mb"] if calc else None
    cells += [f"{working / read['inputs_mb']:.1f}×"] if calc and read and read["inputs_mb"] else ["–"]
    cells += (
        [f"{post['seconds']:.2f} ({post['prepare_seconds']:.2f} + {post['commit_seconds']:.2f})"]
        if _ok(post)
        else ["–"]
    )
    cells += [f"{post['entries']:,}", f"{post['peak_mb']:.0f}"] if _ok(post) else ["–", "–"]
    cells += (
        [f"{ver['entries_per_second']:,.0f} ({ver['entries']:,} entries, {ver.get('workers', 1)} process(es))"]
        if _ok(ver)
        else ["–"]
    )
    cells += ["yes" if ref.get("differences") == 0 else "NO"] if ref and "differences" in ref else ["–"]
    return cells


def fmt_table(rows: list[dict]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(table_row(r)) + " |" for r in rows]
    return "\n".join(out)


def growth(rows: list[dict]) -> list[str]:
    out = []
    for a, b in itertools.pairwise(rows):
        if not (a.get("calculate") and b.get("calculate")):
            continue
        data = b["rows"] / a["rows"]
        t = b["calculate"]["seconds"] / a["calculate"]["seconds"]
        line = (
            f"{a['scale']} → {b['scale']}: input rows × {data:.1f}, calculate time × {t:.1f} "
            f"(time ratio / data ratio = {t / data:.2f}; target ≤ 1.1)"
        )
        if a.get("first_calculate") and b.get("first_calculate"):
            first = b["first_calculate"]["seconds"] / a["first_calculate"]["seconds"]
            line += f"; first calculate time × {first:.1f} (ratio / data ratio = {first / data:.2f})"
        if _ok(a.get("post")) and _ok(b.get("post")):
            line += f"; post time × {b['post']['seconds'] / a['post']['seconds']:.1f}"
        out.append(line)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="nmr-engine benchmark suite")
    parser.add_argument("--scales", default="1,10,100")
    parser.add_argument("--period", default="2013")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default=os.environ.get("NMR_BENCH_DIR", "/tmp/nmr-bench"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per stage; the fastest is kept")
    parser.add_argument("--skip", default="", help="stages to skip, e.g. reference")
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument(
        "--verify-contracts",
        type=int,
        default=800,
        help="most contracts of the ten-year ledger of the verify stage (default 800, the 100× scale)",
    )
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:  # child process: one measurement, JSON on the last line
        from nmr_engine.memory import avoid_huge_pages, keep_freed_memory

        avoid_huge_pages()  # as the command line does; every stage alike, the bare read included
        keep_freed_memory()
        print(json.dumps(STAGES[args.stage](Path(args.folder), args.period)))
        return 0

    import yaml

    os.environ["NMR_BENCH_VERIFY_CONTRACTS"] = str(args.verify_contracts)  # read by the verify stage
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    skip = {s for s in args.skip.split(",") if s}
    rows = []
    for scale in args.scales.split(","):
        print(f"scale {scale}:", flush=True)
        folder = ensure_data(work, scale, args.seed)
        manifest = yaml.safe_load((folder / "synth.yaml").read_text(encoding="utf-8"))
        row = {
            "scale": scale,
            "contracts": manifest["contracts"],
            "session_rows": manifest["rows"]["etp"]["sessions"],
            "rows": sum(sum(t.values()) for t in manifest["rows"].values()),
            "folder": str(folder),
        }
        for stage in STAGES:
            if stage in skip:
                continue
            row[stage] = best_of([run_stage(stage, folder, args.period) for _ in range(args.repeat)])
            if row[stage].get("skipped"):
                print(f"  {stage}: skipped ({row[stage]['skipped']})", flush=True)
                continue
            print(f"  {stage}: {row[stage]['seconds']:.2f} s, peak {row[stage]['peak_mb']:.0f} MB", flush=True)
        rows.append(row)
    print()
    print(fmt_table(rows))
    print()
    for line in growth(rows):
        print(line)
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"machine": machine(), "period": args.period, "results": rows}, indent=2, ensure_ascii=False),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
