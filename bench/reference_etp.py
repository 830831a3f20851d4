"""A straightforward per-row Python implementation of module 2 (ETP), as a benchmark reference.

It reads the CSV files with the ``csv`` module and loops over rows with dicts, the way one
would write the rules without pandas. It takes the contracts' periods and the dated
parameters from the engine (``Workspace``: loading them is not timed) and must give the
same amounts as the engine's vectorised plugin: ``check`` compares them per contract,
period and component family.

    python bench/reference_etp.py --contracts DIR --data DIR --period 2013
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from collections import defaultdict
from pathlib import Path

MODULE = "etp"


def _periods_by_contract(workspace) -> dict[str, list[tuple[dt.date, dt.date, str]]]:
    """contract -> [(active_start, active_end, period_id)] of the module, sorted."""
    out: dict[str, list] = defaultdict(list)
    for contract in workspace.contracts:
        for period in contract.periods():
            for enrolment in contract.enrolments:
                if enrolment.module != MODULE:
                    continue
                active = period.span.intersect(enrolment.span)
                if active is not None:
                    out[contract.id].append((active.start, active.end, period.id))
    for spans in out.values():
        spans.sort()
    return out


def _period_of(spans, day: dt.date, inclusive_end: bool = True) -> str | None:
    found = None
    for start, end, pid in spans:
        if start <= day:
            found = (end, pid)
        else:
            break
    if found is None or (inclusive_end and day > found[0]):
        return None
    return found[1]


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        head = fh.readline()
        fh.seek(0)
        sep = ";" if head.count(";") >= head.count(",") and ";" in head else ","
        rows = []
        for line_no, row in enumerate(csv.DictReader(fh, delimiter=sep), start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items()}
            row["_line"] = line_no
            rows.append(row)
        return rows


def calculate(workspace, data_dir: Path, selected: set[tuple[str, str]]) -> dict[tuple[str, str, str], int]:
    """Amount in cents per (contract, period, component family) for the selected periods.

    Families: ``formation``, ``structuration``, ``forfait_patient`` (paid lines only; the
    zero lines pay nothing)."""
    params = workspace.parameters
    spans = _periods_by_contract(workspace)
    totals: dict[tuple[str, str, str], int] = defaultdict(int)
    folder = Path(data_dir) / MODULE

    def at(name, day, contract_id):
        return params.at(f"{MODULE}.{name}", day, contract_id)

    # -- trainings: at most `cap` paid per professional, contract and period, in date order
    trainings = []
    for row in _read(folder / "trainings.csv"):
        day = dt.date.fromisoformat(row["training_date"])
        trainings.append((row["contract_id"], row["professional_id"], day, row["_line"]))
    trainings.sort()
    seen: dict[tuple, int] = defaultdict(int)
    for contract_id, prof, day, _line in trainings:
        pid = _period_of(spans[contract_id], day)
        seen[(contract_id, prof, pid)] += 1
        cap = at("training.max_per_professional_per_period", day, contract_id)
        cap_value = cap.value if cap is not None and cap.in_force else 0
        if seen[(contract_id, prof, pid)] <= cap_value and (contract_id, pid) in selected:
            price = at("training.amount", day, contract_id)
            totals[(contract_id, pid, "formation")] += price.value if price and price.in_force else 0

    # -- structuring: the first claim of each contract pays once
    claims = sorted(
        (row["contract_id"], dt.date.fromisoformat(row["claim_date"]), row["_line"])
        for row in _read(folder / "structuring.csv")
    )
    paid_once: set[str] = set()
    for contract_id, day, _line in claims:
        if contract_id in paid_once:
            continue
        paid_once.add(contract_id)
        pid = _period_of(spans[contract_id], day)
        if (contract_id, pid) in selected:
            price = at("structuring.amount", day, contract_id)
            totals[(contract_id, pid, "structuration")] += price.value if price and price.in_force else 0

    # -- patient forfaits
    programmes = {}
    for row in _read(folder / "programmes.csv"):
        programmes[(row["contract_id"], row["programme_id"])] = (
            dt.date.fromisoformat(row["authorised_from"]),
            dt.date.fromisoformat(row["authorised_to"]) if row["authorised_to"] else None,
        )
    by_patient: dict[tuple, list] = defaultdict(list)
    for row in _read(folder / "sessions.csv"):
        day = dt.date.fromisoformat(row["session_date"])
        key = (row["contract_id"], row["programme_id"], row["patient_id"])
        by_patient[key].append((day, 0 if row["kind"] == "diagnostic" else 1, row["_line"]))
    cycles = []  # (contract, programme, patient, completed_on, sessions)
    for key, rows in by_patient.items():
        contract_id, programme_id, _patient = key
        auth_from, auth_to = programmes[(contract_id, programme_id)]
        rows.sort()  # date, then the diagnostic first, then file order
        found: dict[int, list] = {}  # cycle number -> [séances, completed_on, has a diagnostic]
        cycle_no = 0
        for day, kind, _line in rows:
            if kind == 0:
                cycle_no += 1  # each diagnostic opens a cycle, authorised or not
            if not (auth_from <= day and (auth_to is None or day <= auth_to)):
                continue  # outside the ARS authorisation: counts for nothing
            if cycle_no == 0:
                required = at("patient.diagnostic_required", day, contract_id)
                if required is None or not required.in_force or required.value:
                    continue  # séance before any diagnostic: pays nothing
            cycle = found.setdefault(cycle_no, [0, day, False])
            if kind == 0:
                cycle[2] = True
            else:
                cycle[0] += 1
            cycle[1] = max(cycle[1], day)
        for cycle_no, (sessions, completed_on, has_diag) in found.items():
            if has_diag or cycle_no == 0:
                cycles.append((contract_id, programme_id, key[2], completed_on, sessions))
    cycles.sort(key=lambda c: (c[0], c[1], c[2], c[3]))
    paid_cycles: dict[tuple, int] = defaultdict(int)
    for contract_id, programme_id, patient, completed_on, sessions in cycles:
        pid = _period_of(spans[contract_id], completed_on, inclusive_end=False)
        tiers = at("patient.tiers", completed_on, contract_id)
        above = at("patient.above_top_tier", completed_on, contract_id)
        amount = None
        if tiers is not None and tiers.in_force:
            for tier in tiers.value:
                if tier["min_sessions"] <= sessions <= tier["max_sessions"]:
                    amount = tier["amount"]
            top = tiers.value[-1]
            policy = above.value if above is not None and above.in_force else "top_tier"
            if sessions > top["max_sessions"] and policy == "top_tier":
                amount = top["amount"]
        if amount is None:
            continue
        paid_cycles[(contract_id, programme_id, patient, pid)] += 1
        cap = at("patient.max_cycles_per_period", completed_on, contract_id)
        cap_value = cap.value if cap is not None and cap.in_force else 0
        if paid_cycles[(contract_id, programme_id, patient, pid)] <= cap_value and (contract_id, pid) in selected:
            totals[(contract_id, pid, "forfait_patient")] += amount
    return dict(totals)


def family(component: str) -> str:
    for name in ("formation", "structuration", "forfait_patient"):
        if component.startswith(name):
            return name
    return component


def engine_totals(lines) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = defaultdict(int)
    for contract_id, period_id, component, amount in zip(
        lines["contract_id"], lines["period_id"], lines["component"], lines["amount_cents"], strict=True
    ):
        if amount:
            out[(contract_id, period_id, family(component))] += int(amount)
    return dict(out)


def check(reference: dict, engine: dict) -> list[str]:
    """Differences between the reference's amounts and the engine's (empty: identical)."""
    diffs = []
    for key in sorted(set(reference) | set(engine)):
        if reference.get(key, 0) != engine.get(key, 0):
            diffs.append(f"{key}: reference {reference.get(key, 0)} != engine {engine.get(key, 0)}")
    return diffs


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from nmr_engine.engine import Workspace
    from nmr_engine.model import module_periods_frame

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", default="contracts")
    parser.add_argument("--data", default="data")
    parser.add_argument("--period", action="append", required=True)
    parser.add_argument("--check", action="store_true", help="compare with the engine")
    args = parser.parse_args(argv)
    workspace = Workspace(Path(args.contracts), Path(args.data))
    wanted = module_periods_frame(workspace.contracts, MODULE, args.period)
    selected = set(zip(wanted["contract_id"], wanted["period_id"], strict=True))
    began = time.perf_counter()
    ref = calculate(workspace, Path(args.data), selected)
    took = time.perf_counter() - began
    print(f"reference: {sum(ref.values()) / 100:.2f} EUR in {took:.2f} s")
    if args.check:
        result = workspace.calculate(args.period, [MODULE])
        diffs = check(ref, engine_totals(result.lines))
        print(f"engine: {result.total_cents / 100:.2f} EUR; differences: {len(diffs)}")
        for d in diffs[:20]:
            print("  " + d)
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
