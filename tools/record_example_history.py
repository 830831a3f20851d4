"""Give the bundled example a small recorded history of data submissions (data/submissions.yaml
and data/.history/), so that ``nmr post`` / ``nmr replay`` / ``nmr audit`` have something to prove.

Deterministic; run after ``tools/make_example.py``. Every activity file is recorded as received
on 01/07/2013 (illustrative: before the run of the README's walkthrough, 15/07/2013), and
``etp/trainings.csv`` has an earlier first version without its last training, received on
31/03/2013, that the 01/07/2013 version corrects. The working
files end up exactly as make_example.py wrote them, so every amount of
``nmr calculate --period 2012 --period 2013`` is unchanged.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from nmr_engine.inputs.submissions import HISTORY_DIR, REGISTER, record_submission  # noqa: E402

FIRST = dt.date(2013, 3, 31)
RECEIVED = dt.date(2013, 7, 1)
CORRECTED = "etp/trainings.csv"


def record(data: Path) -> None:
    (data / REGISTER).unlink(missing_ok=True)
    shutil.rmtree(data / HISTORY_DIR, ignore_errors=True)
    target = data / CORRECTED
    full = target.read_bytes()
    lines = full.splitlines(keepends=True)
    target.write_bytes(b"".join(lines[:-1]))
    try:
        record_submission(data, target, FIRST, "Première transmission de l'année")
    finally:
        target.write_bytes(full)
    for path in sorted(data.glob("*/*.csv")):
        rel = path.relative_to(data).as_posix()
        note = "Formation oubliée ajoutée (correction tardive)" if rel == CORRECTED else ""
        record_submission(data, path, RECEIVED, note)


if __name__ == "__main__":
    record(ROOT / "data")
