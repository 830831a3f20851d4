"""``synthesise``: contracts by the core, module tables by the plugins, and a manifest."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import attrs
import numpy as np
import yaml

from ..errors import ConfigurationError
from ..plugin.api import SynthScale
from ..plugin.manager import PluginRegistry
from .contracts import draw_contracts, module_contracts, write_contracts

#: Named sizes: (contracts, patients per structure, number of years). ``example`` is the size of
#: the bundled example; ``national`` the whole country (≈ 3,000 contracts, ≈ 1 million patient
#: cycles over two years, several million séance rows).
PRESETS: dict[str, tuple[int, int, int]] = {
    "example": (8, 10, 2),
    "national": (3000, 100, 2),
}
MANIFEST = "synth.yaml"


@attrs.frozen
class SynthReport:
    """What ``synthesise`` wrote."""

    out: Path
    contracts: int
    rows: dict[str, dict[str, int]]
    notes: dict[str, list[str]]
    skipped: tuple[str, ...]
    seconds: float  # wall-clock seconds (a duration, not money)


def derive_seed(seed: int, label: str) -> int:
    """A stable 63-bit seed for one part of the data set (independent of the other parts)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{label}".encode()).digest()[:8], "big") >> 1


def synthesise(
    out: Path,
    *,
    contracts: int,
    years: int,
    patients_per_structure: int,
    seed: int,
    first_year: int = 2012,
    scale_name: str = "custom",
    registry: PluginRegistry | None = None,
) -> SynthReport:
    """Write ``out/contracts/*.yaml``, ``out/data/<module>/*.csv`` (latest versions),
    ``out/data.v1/`` (the data as first submitted, before late corrections) and ``out/synth.yaml``."""
    began = time.perf_counter()
    registry = registry or PluginRegistry()
    out = Path(out)
    _prepare(out)
    if contracts < 1 or years < 1 or patients_per_structure < 0:
        raise ConfigurationError("nmr synth : au moins un contrat et une année sont attendus")
    modules = registry.synthesisers()
    skipped = tuple(m for m in registry.modules() if m not in modules)
    if not modules:
        raise ConfigurationError("aucun module installé ne sait générer de données synthétiques (nmr_synthesise)")
    scale = SynthScale(tuple(range(first_year, first_year + years)), patients_per_structure, scale_name)
    shares = {m: registry.modules()[m].spec.synth_enrolment for m in modules}
    frame = draw_contracts(
        np.random.default_rng(derive_seed(seed, "contracts")), contracts, scale.years, modules, shares
    )
    write_contracts(frame, modules, out / "contracts", seed)
    data = out / "data"
    rows: dict[str, dict[str, int]] = {}
    notes: dict[str, list[str]] = {}
    for code in modules:
        (data / code).mkdir(parents=True, exist_ok=True)
        result = registry.synthesise(code, module_contracts(frame, code), derive_seed(seed, code), scale, data) or {}
        rows[code] = {k: int(v) for k, v in (result.get("rows") or {}).items()}
        notes[code] = [str(n) for n in result.get("notes") or ()]
    _first_versions(data, out / "data.v1")
    report = SynthReport(out, contracts, rows, notes, skipped, time.perf_counter() - began)
    _manifest(report, seed, scale, modules)
    return report


def _prepare(out: Path) -> None:
    """Refuse to write into a non-empty folder that is not a previous synthetic data set."""
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).exists():
            raise ConfigurationError(f"{out} : dossier non vide (et pas un jeu synthétique) ; choisir un dossier vide")
        for name in ("contracts", "data", "data.v1", MANIFEST):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _first_versions(data: Path, v1: Path) -> None:
    """Build ``data.v1``: every table as first submitted (hard links to unchanged files)."""
    for path in sorted(data.glob("*/*.csv")):
        target = v1 / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".v1.csv"):
            path.replace(target.with_name(path.name[: -len(".v1.csv")] + ".csv"))
        elif not (path.parent / (path.stem + ".v1.csv")).exists():
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)


def _manifest(report: SynthReport, seed: int, scale: SynthScale, modules: list[str]) -> None:
    doc = {
        "generator": "nmr synth",
        "seed": seed,
        "scale": scale.name,
        "contracts": report.contracts,
        "years": list(scale.years),
        "patients_per_structure": scale.patients_per_structure,
        "modules": modules,
        "modules_without_generator": list(report.skipped),
        "rows": report.rows,
        "notes": report.notes,
        "folders": {
            "contracts": "one YAML file per contract",
            "data": "activity tables, latest versions (after late corrections)",
            "data.v1": "the same tables as first submitted (before late corrections)",
        },
    }
    (report.out / MANIFEST).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
