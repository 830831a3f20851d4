"""Synthetic contracts: identities that look real, drawn with numpy, written as contract YAML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .communes import ARS, CAISSES, COMMUNES

KINDS = np.array(["MSP", "pole", "centre"])
KIND_WEIGHTS = np.array([0.72, 0.2, 0.08])
KIND_NAMES = {
    "MSP": "Maison de santé pluriprofessionnelle",
    "pole": "Pôle de santé",
    "centre": "Centre de santé",
}


def luhn_key(body: np.ndarray) -> np.ndarray:
    """Luhn check digit of each row of a (n, k) array of digits (as for SIREN/FINESS-like keys)."""
    digits = body[:, ::-1].astype(np.int64)
    doubled = digits.copy()
    doubled[:, 0::2] *= 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    return (10 - doubled.sum(axis=1) % 10) % 10


def luhn_valid(number: str) -> bool:
    """True when the last digit of ``number`` is its Luhn key."""
    digits = np.array([[int(c) for c in number[:-1]]])
    return int(luhn_key(digits)[0]) == int(number[-1])


def _of_commune(commune: str) -> str:
    if commune.startswith("Le "):
        return "du " + commune[3:]
    if commune[0] in "AEIOUÉÈÂÎaeiou":
        return "d'" + commune
    return "de " + commune


def draw_contracts(
    rng: np.random.Generator,
    n: int,
    years: tuple[int, ...],
    modules: list[str],
    shares: dict[str, float | None] | None = None,
) -> pd.DataFrame:
    """One row per contract, plus ``modules``: the enrolled codes with their start dates.

    ``shares``: module code -> share of the contracts enrolled (``ModuleSpec.synth_enrolment``);
    a module without one enrols 85 % of the contracts (all of them when it is the only module)."""
    communes = np.array(COMMUNES, dtype=object)
    pick = rng.integers(0, len(communes), size=n)
    depts, names, territories = communes[pick, 0], communes[pick, 1], communes[pick, 2]
    # FINESS-like: department (2) + category digit 0 + 5-digit serial unique per department + Luhn key.
    serial = np.zeros(n, dtype=np.int64)
    for dept in np.unique(depts):
        rows = np.flatnonzero(depts == dept)
        serial[rows] = rng.choice(100_000, size=rows.size, replace=False)
    body_text = np.char.add(np.char.add(depts.astype(str), "0"), np.char.zfill(serial.astype(str), 5))
    body = np.array([list(map(int, b)) for b in body_text], dtype=np.int64)
    finess = np.char.add(body_text, luhn_key(body).astype(str))
    kinds = KINDS[rng.choice(len(KINDS), size=n, p=KIND_WEIGHTS)]
    anchor_july = rng.random(n) < 0.5
    first, last = min(years), max(years)
    start = np.where(anchor_july, np.datetime64(f"{first - 1}-07-01"), np.datetime64(f"{first}-01-01")).astype(
        "datetime64[D]"
    )
    end = np.full(n, np.datetime64(f"{last}-12-31"), dtype="datetime64[D]")
    signed = start - rng.integers(10, 90, size=n).astype("timedelta64[D]")
    # Enrolments: each module with probability 0.85 (all when there is one); 10 % join a year late.
    default = 0.85 if len(modules) > 1 else 1.0
    given = shares or {}
    share = np.asarray([default if given.get(m) is None else given[m] for m in modules])
    enrol = rng.random((n, len(modules))) < share
    if len(modules):
        none = ~enrol.any(axis=1)
        enrol[none, rng.integers(0, len(modules), size=int(none.sum()))] = True
    late = rng.random((n, len(modules))) < 0.10
    frame = pd.DataFrame(
        {
            "contract_id": np.char.add("ENMR-HDF-", finess),
            "finess": finess,
            "kind": kinds,
            "name": [f"{KIND_NAMES[k]} {_of_commune(c)}" for k, c in zip(kinds, names, strict=True)],
            "commune": names,
            "dept": depts,
            "territory": territories,
            "anchor": np.where(anchor_july, "07-01", "01-01"),
            "start": pd.to_datetime(start),
            "end": pd.to_datetime(end),
            "signed_on": pd.to_datetime(signed),
            "association": rng.random(n) < 0.1,
        }
    )
    for j, code in enumerate(modules):
        late_start = (frame["start"] + pd.DateOffset(years=1)).where(late[:, j], frame["start"])
        frame[f"enrol:{code}"] = enrol[:, j]
        frame[f"start:{code}"] = late_start.where(late_start <= frame["end"], frame["start"])
    return frame


def module_contracts(frame: pd.DataFrame, code: str) -> pd.DataFrame:
    """The contracts enrolled in ``code``, in the shape the ``nmr_synthesise`` hook documents."""
    rows = frame[frame[f"enrol:{code}"]]
    return pd.DataFrame(
        {
            "contract_id": rows["contract_id"].to_numpy(dtype=object),
            "finess": rows["finess"].to_numpy(dtype=object),
            "commune": rows["commune"].to_numpy(dtype=object),
            "kind": rows["kind"].to_numpy(dtype=object),
            "start": rows["start"].to_numpy(),
            "end": rows["end"].to_numpy(),
            "module_start": rows[f"start:{code}"].to_numpy(),
            "module_end": rows["end"].to_numpy(),
            "anchor": rows["anchor"].to_numpy(dtype=object),
        }
    )


def write_contracts(frame: pd.DataFrame, modules: list[str], out: Path, seed: int) -> None:
    """One YAML file per contract, in the format of ``contracts/loader.py``."""
    out.mkdir(parents=True, exist_ok=True)
    q = json.dumps  # a JSON string is a valid YAML scalar, whatever the commune's spelling
    for d in frame.to_dict("records"):
        lines = [
            f"# Contrat synthétique généré par « nmr synth » (graine {seed}) : aucune structure réelle.",
            f"id: {d['contract_id']}",
            "illustrative: [structure, parties, signed_on, start, end, periods.anchor, modules, payees]",
            "structure:",
            f'  finess: "{d["finess"]}"',
            f"  name: {q(d['name'], ensure_ascii=False)}",
            f"  kind: {d['kind']}",
            f"  territory: {q(d['territory'], ensure_ascii=False)}",
            f"  commune: {q(d['commune'], ensure_ascii=False)}",
            "parties:",
            f"  ars: {ARS}",
            f"  caisse: {q(CAISSES[d['dept']], ensure_ascii=False)}",
            f"signed_on: {_day(d['signed_on'])}",
            f"start: {_day(d['start'])}",
            f"end: {_day(d['end'])}",
            "periods:",
            f'  anchor: "{d["anchor"]}"',
            "modules:",
        ]
        enrolled = [m for m in modules if d[f"enrol:{m}"]]
        for i, m in enumerate(enrolled):
            payee = "association" if d["association"] and i == len(enrolled) - 1 else "structure"
            lines.append(f"  - {{code: {m}, start: {_day(d[f'start:{m}'])}, payee: {payee}}}")
        lines += ["payees:", "  - id: structure", f"    name: {q(d['name'], ensure_ascii=False)}"]
        if d["association"]:
            association = f"Association des professionnels de santé {_of_commune(d['commune'])}"
            lines += [
                "  - id: association",
                f"    name: {q(association, ensure_ascii=False)}",
            ]
        (out / f"{d['contract_id'].lower()}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _day(value) -> str:
    return pd.Timestamp(value).date().isoformat()
