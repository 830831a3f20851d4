"""Where the time of ``Workspace.calculate`` goes, phase by phase, without a profiler's overhead.

    python bench/phases.py DATASET_FOLDER [--period 2013] [--modules etp,asalee] [--repeat N] [--store]

Replays the steps of ``Workspace.calculate`` for each module (periods, reading and validating
each table, the plugin's cross-table checks, the plugin's calculation, the core's check of the
lines) and prints their wall and CPU times. For a call-level view use
``pyinstrument bench/phases.py DATASET_FOLDER``.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timer:
    def __init__(self):
        self.rows: list[tuple[str, float, float]] = []

    def __call__(self, label: str, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), _cpu()
        out = fn(*args, **kwargs)
        self.rows.append((label, time.perf_counter() - wall, _cpu() - cpu))
        return out


def main(argv=None) -> int:
    from nmr_engine.engine import Workspace, validate_lines
    from nmr_engine.inputs.reader import assign_periods, read_table
    from nmr_engine.inputs.snapshots import TableStore
    from nmr_engine.model import module_periods_frame
    from nmr_engine.plugin.api import CalculationContext

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--period", default="2013")
    parser.add_argument("--modules", default="", help="comma-separated module codes to replay (default: all)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the cross-table checks and the calculation N times (to average)"
    )
    parser.add_argument("--store", action="store_true", help="read through the data folder's table store, as the CLI")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    t = Timer()
    ws = t("load contracts and parameters", Workspace, folder / "contracts", folder / "data")
    known = {c.id for c in ws.contracts}
    store = TableStore.for_data(folder / "data") if args.store else None
    only = {m for m in args.modules.split(",") if m}
    for code, registered in ws.registry.modules().items():
        if only and code not in only:
            continue
        history = t(f"{code}: periods (history)", module_periods_frame, ws.contracts, code)
        selected = t(f"{code}: periods (selected)", module_periods_frame, ws.contracts, code, [args.period])
        if history.empty:
            continue
        tables = {}
        for spec in registered.spec.tables:
            path = folder / "data" / code / f"{spec.name}.csv"
            frame = t(f"{code}: read and check {spec.name}.csv", read_table, path, spec, known, None, None, store)
            if spec.event_date:
                frame = t(f"{code}: periods of {spec.name} rows", assign_periods, frame, spec.event_date, history, code)
            tables[spec.name] = frame
        context = CalculationContext(registered.spec, selected, history, tables, ws.parameters, ws.run_date)
        for _ in range(args.repeat):
            problems = t(f"{code}: plugin cross-table checks", ws.registry.validate_inputs, code, tables, context)
            assert not problems, problems[:3]
            lines = t(f"{code}: plugin calculation", ws.registry.calculate, code, context)
        t(f"{code}: core check of the lines", validate_lines, lines, code, context, registered.plugin_name)
    total_wall = sum(w for label, w, _ in t.rows if not label.startswith("load"))
    print(f"{'phase':55} {'wall s':>8} {'cpu s':>8} {'share':>6}")
    for label, wall, cpu in t.rows:
        share = "" if label.startswith("load") else f"{100 * wall / total_wall:5.1f}%"
        print(f"{label:55} {wall:8.2f} {cpu:8.2f} {share:>6}")
    print(f"{'calculate (all phases but loading)':55} {total_wall:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
