"""A row lookup between tables read back from the table store is kept next to them and read
back by the next runs; a table changed after it was read, or read from its file, is looked up
as before, and a damaged kept lookup is looked up again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nmr_engine.inputs import snapshots
from nmr_engine.inputs.reader import read_table
from nmr_engine.inputs.snapshots import TableStore, kept_origin
from nmr_engine.plugin import Column, TableSpec, helpers
from nmr_engine.plugin.helpers import row_positions

PATIENTS = TableSpec(
    name="patients",
    description="",
    columns=(Column("contract_id", "str"), Column("patient_id", "str"), Column("declared_on", "date")),
    unique=("contract_id", "patient_id"),
)
VISITS = TableSpec(
    name="visits",
    description="",
    columns=(Column("contract_id", "str"), Column("patient_id", "str"), Column("visit_date", "date")),
)
PATIENT_ROWS = "contract_id;patient_id;declared_on\nC1;PAT01;2012-01-01\nC1;PAT02;2012-01-01\nC2;PAT01;2012-02-01\n"
VISIT_ROWS = (
    "contract_id;patient_id;visit_date\n"
    "C2;PAT01;2012-03-01\n"  # row 2 of patients
    "C1;PAT02;2012-03-02\n"  # row 1
    "C2;PAT02;2012-03-03\n"  # none: PAT02 is declared in C1 only
    "C1;PAT01;2012-03-04\n"  # row 0
)
EXPECTED = [2, 1, -1, 0]
KEY = ["contract_id", "patient_id"]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshots, "SETTLED_SECONDS", 0.0)  # files written here count as settled
    (tmp_path / "patients.csv").write_text(PATIENT_ROWS, encoding="utf-8")
    (tmp_path / "visits.csv").write_text(VISIT_ROWS, encoding="utf-8")
    store = TableStore(tmp_path / "store", min_rows=0)
    return tmp_path, store


def _read(folder, store):
    return read_table(folder / "patients.csv", PATIENTS, store=store), read_table(
        folder / "visits.csv", VISITS, store=store
    )


def _lookups(store) -> list:
    return sorted(store.folder.glob("rows-*.npy"))


def _refuse(*args, **kwargs):
    raise AssertionError("looked up again")


def test_a_lookup_between_kept_tables_is_kept_and_read_back(files, monkeypatch):
    folder, store = files
    patients, visits = _read(folder, store)  # parsed, then kept: not yet read from the store
    assert kept_origin(patients["patient_id"]) is None
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED
    assert _lookups(store) == []
    patients, visits = _read(folder, store)  # read back from the store
    assert store.hits == 2
    assert kept_origin(visits["contract_id"]) is not None  # a categorical column too
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED
    assert len(_lookups(store)) == 1
    monkeypatch.setattr(helpers, "_hash_match", _refuse)
    monkeypatch.setattr(helpers, "_row_positions_exact", _refuse)
    patients, visits = _read(folder, store)  # the next run: the kept answer
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED


def test_asked_again_in_the_same_run_the_answer_is_given_again_without_reading_or_comparing(files, monkeypatch):
    folder, store = files
    _read(folder, store)
    patients, visits = _read(folder, store)  # read back: Arrow texts and read-only category codes
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED
    for name in ("read_positions", "_key_words", "_hash_match", "_row_positions_exact"):
        monkeypatch.setattr(helpers, name, _refuse)
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED  # e.g. checks, then calculation
    monkeypatch.undo()
    visits["contract_id"] = visits["contract_id"].cat.rename_categories({"C1": "C3"})  # other categories
    assert row_positions(patients, KEY, visits, KEY).tolist() == [2, -1, -1, -1]


def test_a_table_changed_after_it_was_read_is_looked_up_anew(files):
    folder, store = files
    _read(folder, store)
    patients, visits = _read(folder, store)
    row_positions(patients, KEY, visits, KEY)
    assert len(_lookups(store)) == 1
    fewer = patients.iloc[1:]  # a row removed: other positions
    assert kept_origin(fewer["patient_id"]) is None and kept_origin(fewer["contract_id"]) is None
    assert row_positions(fewer, KEY, visits, KEY).tolist() == [1, 0, -1, -1]
    renamed = visits.assign(patient_id=visits["patient_id"].str.replace("PAT02", "PAT01"))  # a value changed
    assert kept_origin(renamed["patient_id"]) is None
    assert row_positions(patients, KEY, renamed, KEY).tolist() == [2, 0, 2, 0]
    # small changed frames are named by their values: each answer kept apart, none mistaken
    assert len(_lookups(store)) == 3
    patients, visits = _read(folder, store)
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED
    assert row_positions(patients.iloc[1:], KEY, visits, KEY).tolist() == [1, 0, -1, -1]


def test_a_small_frame_is_named_by_its_values(files, monkeypatch):
    folder, store = files
    _read(folder, store)
    _, visits = _read(folder, store)
    doctors = pd.DataFrame({"contract_id": ["C1", "C2"], "patient_id": ["PAT02", "PAT01"]})
    assert row_positions(doctors, KEY, visits, KEY).tolist() == [1, 0, -1, -1]
    assert len(_lookups(store)) == 1
    monkeypatch.setattr(helpers, "_hash_match", _refuse)
    monkeypatch.setattr(helpers, "_row_positions_exact", _refuse)
    _, visits = _read(folder, store)
    same = pd.DataFrame({"contract_id": ["C1", "C2"], "patient_id": ["PAT02", "PAT01"]})  # equal values
    assert row_positions(same, KEY, visits, KEY).tolist() == [1, 0, -1, -1]
    monkeypatch.undo()
    other = pd.DataFrame({"contract_id": ["C1", "C2"], "patient_id": ["PAT02", "PAT02"]})  # one value differs
    assert row_positions(other, KEY, visits, KEY).tolist() == [-1, 0, 1, -1]
    monkeypatch.setattr(helpers, "DIGESTED_ROWS", 1)  # too big to be named by its values: not kept
    row_positions(pd.DataFrame({"contract_id": ["C1", "C1"], "patient_id": ["PAT01", "PAT02"]}), KEY, visits, KEY)
    assert len(_lookups(store)) == 2


def test_frames_that_are_not_kept_tables_keep_nothing(files):
    folder, store = files
    store.folder.mkdir(parents=True, exist_ok=True)
    patients = pd.read_csv(folder / "patients.csv", sep=";")
    visits = pd.read_csv(folder / "visits.csv", sep=";")
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED
    assert _lookups(store) == []  # no side read from the store: no store to keep it in


def test_codes_that_could_change_in_place_are_not_vouched_for(files):
    folder, store = files
    _read(folder, store)
    patients, _ = _read(folder, store)
    assert kept_origin(patients["contract_id"]) is not None
    copied = patients["contract_id"].copy(deep=True)  # writable codes
    assert copied.array._codes.flags.writeable and kept_origin(copied) is None


def test_a_damaged_kept_lookup_is_looked_up_again(files):
    folder, store = files
    _read(folder, store)
    patients, visits = _read(folder, store)
    row_positions(patients, KEY, visits, KEY)
    (kept,) = _lookups(store)
    np.save(kept, np.array([5, 5], dtype=np.int64))  # another shape
    patients, visits = _read(folder, store)
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED
    assert np.load(kept).tolist() == EXPECTED  # kept again
    kept.write_bytes(b"not an array")
    patients, visits = _read(folder, store)
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED


def test_a_lookup_that_cannot_be_kept_is_still_answered(files, monkeypatch):
    folder, store = files
    _read(folder, store)
    patients, visits = _read(folder, store)
    monkeypatch.setattr(snapshots.tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(OSError("disque plein")))
    assert row_positions(patients, KEY, visits, KEY).tolist() == EXPECTED
    assert _lookups(store) == [] and list(store.folder.glob(".*.part")) == []


def test_kept_tables_give_the_same_answer_as_parsed_ones_on_bigger_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshots, "SETTLED_SECONDS", 0.0)
    rng = np.random.default_rng(7)
    n = 3_000
    contract = rng.integers(0, 30, n)
    patient = rng.permutation(n)
    lines = [f"C{c:02d};PAT{p:05d};2012-01-01" for c, p in zip(contract, patient, strict=True)]
    (tmp_path / "patients.csv").write_text(
        "contract_id;patient_id;declared_on\n" + "\n".join(lines) + "\n", encoding="utf-8"
    )
    picks = rng.integers(0, n, 5_000)
    visits = [f"C{contract[i]:02d};PAT{patient[i]:05d};2012-03-01" for i in picks] + ["C99;PAT00001;2012-03-01"]
    (tmp_path / "visits.csv").write_text(
        "contract_id;patient_id;visit_date\n" + "\n".join(visits) + "\n", encoding="utf-8"
    )
    store = TableStore(tmp_path / "store", min_rows=0)
    parsed = _read(tmp_path, store)
    expected = row_positions(parsed[0], KEY, parsed[1], KEY)
    assert expected.tolist() == [*picks.tolist(), -1]
    for _ in range(2):  # kept, then read back
        patients, visits = _read(tmp_path, store)
        assert row_positions(patients, KEY, visits, KEY).tolist() == expected.tolist()
    assert len(_lookups(store)) == 1
