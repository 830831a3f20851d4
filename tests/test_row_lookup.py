"""Row lookups on keys for plugin authors: the fast path (hashes of exact 64-bit words, checked)
gives what the straightforward path (joint codes and a pandas index) gives, in every case."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nmr_engine.plugin import helpers
from nmr_engine.plugin.helpers import VersionsAt, joint_codes, row_positions


def _text(values, chunks: int = 1) -> pd.Series:
    """An Arrow-backed text column, cut in ``chunks`` Arrow chunks."""
    cut = np.array_split(np.arange(len(values)), chunks)
    arrays = [pa.array([values[i] for i in part], type=pa.large_string()) for part in cut]
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(arrays, type=pa.large_string())))


def _reference(table, columns, rows, keys) -> np.ndarray:
    """Each row's position by a dictionary of the table's key tuples (missing values equal)."""

    def norm(v):
        return None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else v

    at = {tuple(norm(table[c].iloc[i]) for c in columns): i for i in range(len(table))}
    return np.array([at.get(tuple(norm(rows[k].iloc[i]) for k in keys), -1) for i in range(len(rows))])


PATIENTS = ["PAT-0001", "PAT-0002", "PAT-0003", "PAT-0001", "PAT-0009"]
CONTRACTS = ["C1", "C1", "C1", "C2", "C2"]


def _tables(text=_text, patients=PATIENTS, wanted=("PAT-0002", "PAT-0001", "PAT-0001", "PAT-0404", "PAT-0009")):
    table = pd.DataFrame({"contract_id": pd.Categorical(CONTRACTS), "patient_id": text(patients)})
    rows = pd.DataFrame(
        {
            "contract_id": pd.Categorical(["C1", "C1", "C2", "C1", "C1"], categories=["C2", "C1", "C3"]),
            "patient_id": text(list(wanted)),
        }
    )
    return table, rows


@pytest.mark.parametrize("chunks", [1, 2])
def test_fast_path_finds_each_row_or_minus_one(chunks):
    table, rows = _tables(text=lambda v: _text(v, chunks))
    found = row_positions(table, ["contract_id", "patient_id"], rows, ["contract_id", "patient_id"])
    assert found.tolist() == [1, 0, 3, -1, -1]  # PAT-0009 is in C2, not C1
    assert (
        found.tolist() == _reference(table, ["contract_id", "patient_id"], rows, ["contract_id", "patient_id"]).tolist()
    )
    assert helpers._key_words(table, ["contract_id", "patient_id"], rows, ["contract_id", "patient_id"]) is not None


@pytest.mark.parametrize(
    "patients,wanted",
    [
        (["A", "B", "CC", "A", "D"], ["B", "A", "A", "ZZ", "D"]),  # widths differ: exact path
        (["ABC", "ABD", "ABE", "ABC", "XYZ"], ["ABD", "ABC", "ABC", "ABF", "XYZ"]),  # shorter than 8: byte words
        (["é" * 5, "e" * 10, "x" * 10, "é" * 5, "y" * 10], ["e" * 10, "é" * 5, "é" * 5, "é" * 4 + "e", "y" * 10]),
        ([f"{'P' * 13}{i}" for i in (1, 2, 3, 1, 9)], [f"{'P' * 13}{i}" for i in (2, 1, 1, 4, 9)]),  # 14 bytes
    ],
)
def test_fast_path_equals_the_straightforward_path(patients, wanted):
    table, rows = _tables(patients=patients, wanted=wanted)
    cols = ["contract_id", "patient_id"]
    fast = row_positions(table, cols, rows, cols)
    assert fast.tolist() == helpers._row_positions_exact(table, cols, rows, cols).tolist()
    assert fast.tolist() == _reference(table, cols, rows, cols).tolist()
    assert fast.tolist()[:3] == [1, 0, 3]


def test_missing_values_and_object_columns_take_the_exact_path():
    table = pd.DataFrame({"k": pd.array(["A", None, "C"], dtype="str")})
    rows = pd.DataFrame({"k": pd.array([None, "C", "B"], dtype="str")})
    assert helpers._text_words(table["k"]) is None
    assert row_positions(table, ["k"], rows, ["k"]).tolist() == [1, 2, -1]  # two missing values are equal
    objects = pd.DataFrame({"k": pd.Series(["A", "B"], dtype=object)})
    assert row_positions(objects, ["k"], objects.iloc[::-1], ["k"]).tolist() == [1, 0]


def test_a_hash_shared_by_two_rows_falls_back_to_the_exact_path(monkeypatch):
    table, rows = _tables()
    monkeypatch.setattr(helpers, "_hash64", lambda words, n: np.zeros(n, dtype=np.uint64))  # every hash collides
    cols = ["contract_id", "patient_id"]
    assert helpers._hash_match(*helpers._key_words(table, cols, rows, cols)) is None
    assert row_positions(table, cols, rows, cols).tolist() == [1, 0, 3, -1, -1]
    # the smaller side indexed (a table smaller than the rows looked up): same answer
    many = pd.concat([rows] * 3, ignore_index=True)
    assert row_positions(table, cols, many, cols).tolist() == [1, 0, 3, -1, -1] * 3


def test_a_table_that_is_not_unique_is_refused_as_before():
    table = pd.DataFrame({"k": _text(["AAAAAAAAA", "AAAAAAAAA"])})
    rows = pd.DataFrame({"k": _text(["AAAAAAAAA"] * 3)})
    with pytest.raises(pd.errors.InvalidIndexError):
        row_positions(table, ["k"], rows, ["k"])


def test_joint_codes_of_a_categorical_and_a_text_column():
    a = pd.Series(["x", "y", None, "x"], dtype="category")
    b = _text(["y", "z", "x", "z"])
    codes_a, codes_b, span = joint_codes(a, b)
    assert codes_a.tolist() == [1, 2, 0, 1]
    assert codes_b.tolist() == [2, 3, 1, 3]  # z, absent from the categories, coded after them
    assert span == 4
    swapped_b, swapped_a, _ = joint_codes(b, a)
    assert swapped_a.tolist() == codes_a.tolist() and swapped_b.tolist() == codes_b.tolist()


class _Params:
    def __init__(self):
        self.calls = 0

    def overrides(self):
        return {("C2", "m.x"): []}


class _Context:
    def __init__(self):
        self.parameters = _Params()

    def param(self, name):
        return f"m.{name}"

    def at(self, name, day, contract_id=None):
        self.parameters.calls += 1
        return (name, day, contract_id if contract_id == "C2" else "base")


def test_versions_at_asks_once_per_day_unless_the_contract_overrides():
    context = _Context()
    at = VersionsAt(context)
    day = dt.date(2013, 1, 1)
    assert [at("x", day, c) for c in ("C1", "C3", "C1", "C2", "C2")] == [
        ("x", day, "base"),
        ("x", day, "base"),
        ("x", day, "base"),
        ("x", day, "C2"),
        ("x", day, "C2"),
    ]
    assert context.parameters.calls == 2


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("collide", [False, True])
def test_key_codes_group_equal_keys_as_drop_duplicates_does(monkeypatch, collide):
    frame = pd.DataFrame(
        {
            "c": pd.Categorical(["C1", "C1", "C2", "C1", None, None]),
            "p": _text(["PAT-0001", "PAT-0002", "PAT-0001", "PAT-0001", "PAT-0003", "PAT-0003"]),
            "n": [1, 1, 1, 1, 2, 2],
            "o": pd.Series(["x", "x", "x", "x", None, None], dtype=object),
        }
    )
    if collide:  # every hash equal: the check finds different keys under one code, the exact path answers
        monkeypatch.setattr(helpers, "_hash64", lambda words, n: np.zeros(n, dtype=np.uint64))
    codes = helpers.key_codes(frame, ["c", "p", "n", "o"])
    expected = frame.groupby(["c", "p", "n", "o"], sort=False, dropna=False, observed=True).ngroup().to_numpy()
    assert _same_partition(codes, expected)
    assert sorted(set(codes.tolist())) == [0, 1, 2, 3]
    assert codes[0] == codes[3] and codes[4] == codes[5]  # missing values are equal
    kept = frame.iloc[np.unique(codes, return_index=True)[1]]
    assert len(kept) == len(frame.drop_duplicates())


def test_key_codes_and_row_positions_over_runs_of_equal_keys():
    keys = ["PAT-0001", "PAT-0002", "PAT-0001", "PAT-0003"]
    frame = pd.DataFrame({"c": pd.Categorical(np.repeat(["C1", "C1", "C2", "C2"], 4)), "p": _text(np.repeat(keys, 4))})
    assert helpers._runs(helpers._key_words(frame, ["c", "p"], frame, ["c", "p"])[1]) is not None  # 4 runs of 16
    codes = helpers.key_codes(frame, ["c", "p"])
    assert _same_partition(codes, np.repeat([0, 1, 2, 3], 4))
    table = pd.DataFrame({"c": pd.Categorical(["C2", "C1", "C1"]), "p": _text(["PAT-0001", "PAT-0002", "PAT-0001"])})
    assert row_positions(table, ["c", "p"], frame, ["c", "p"]).tolist() == np.repeat([2, 1, 0, -1], 4).tolist()


@pytest.mark.parametrize("categorical", [True, False])
def test_in_computed_periods_mask_keeps_what_in_computed_periods_keeps(categorical):
    from types import SimpleNamespace

    periods = pd.DataFrame({"contract_id": ["C1", "C2", "C9"], "period_id": ["P13", "P12", "P13"]})
    rows = pd.DataFrame(
        {
            "contract_id": ["C1", "C1", "C2", "C2", "C3", None],
            "period_id": ["P13", "P12", "P12", None, "P13", "P13"],
            "_line": range(2, 8),
        }
    )
    if categorical:
        rows = rows.astype({"contract_id": "category", "period_id": "category"})
    context = SimpleNamespace(periods=periods)
    mask = helpers.in_computed_periods_mask(context, rows)
    assert mask.tolist() == [True, False, True, False, False, False]
    assert rows[mask].reset_index(drop=True).equals(helpers.in_computed_periods(context, rows))


def _count_word_reads(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = helpers._key_words

    def counted(table, columns, rows, keys, copy=True):
        calls.append(len(columns))
        return real(table, columns, rows, keys, copy)

    monkeypatch.setattr(helpers, "_key_words", counted)
    return calls


def test_an_answer_is_given_again_while_the_arrow_texts_are_the_same(monkeypatch):
    cols = ["contract_id", "patient_id"]
    table, rows = _tables(wanted=("PAT-0002", "PAT-0001", "PAT-0001", "PAT-0003", "PAT-0002"))
    first = row_positions(table, cols, rows, cols)
    assert first.tolist() == [1, 0, 3, 2, 1]
    calls = _count_word_reads(monkeypatch)
    assert row_positions(table, cols, rows, cols).tolist() == first.tolist()
    # only the categorical column is read again (its codes can be set in place), not the texts
    assert calls == [1]

    # a row not found (-1) fails that check: the answer is looked up anew
    table, rows = _tables()
    first = row_positions(table, cols, rows, cols)
    assert first.tolist() == [1, 0, 3, -1, -1]
    calls.clear()
    assert row_positions(table, cols, rows, cols).tolist() == first.tolist()
    assert calls == [1, 2]

    # every key column an Arrow text: the same arrays, the same answer, nothing read
    t2 = pd.DataFrame({"patient_id": _text(PATIENTS[:3])})
    r2 = pd.DataFrame({"patient_id": _text(["PAT-0002", "PAT-0404", "PAT-0001"])})
    first = row_positions(t2, ["patient_id"], r2, ["patient_id"])
    calls.clear()
    assert row_positions(t2, ["patient_id"], r2, ["patient_id"]).tolist() == first.tolist() == [1, -1, 0]
    assert calls == []


def test_a_text_set_in_place_is_looked_up_anew():
    table = pd.DataFrame({"patient_id": _text([*PATIENTS[:3], "PAT-0004"])})
    rows = pd.DataFrame({"patient_id": _text(["PAT-0003", "PAT-0004"])})
    assert row_positions(table, ["patient_id"], rows, ["patient_id"]).tolist() == [2, 3]
    table.loc[3, "patient_id"] = "PAT-0005"  # the same frame, a value changed
    rows.loc[0, "patient_id"] = "PAT-0001"
    assert row_positions(table, ["patient_id"], rows, ["patient_id"]).tolist() == [0, -1]
    assert row_positions(table, ["patient_id"], rows, ["patient_id"]).tolist() == [0, -1]


def test_a_category_code_set_in_place_is_looked_up_anew():
    table, rows = _tables(wanted=("PAT-0002", "PAT-0001", "PAT-0001", "PAT-0003", "PAT-0009"))
    rows.loc[4, "contract_id"] = "C2"
    cols = ["contract_id", "patient_id"]
    assert row_positions(table, cols, rows, cols).tolist() == [1, 0, 3, 2, 4]
    assert row_positions(table, cols, rows, cols).tolist() == [1, 0, 3, 2, 4]  # given again
    rows.loc[4, "contract_id"] = "C1"  # in place: PAT-0009 is in C2 only
    assert row_positions(table, cols, rows, cols).tolist() == [1, 0, 3, 2, -1]


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_source_lines_of_every_group_read_as_each_groups_own(shuffle):
    from nmr_engine.plugin.helpers import _Groups, source_lines

    rng = np.random.default_rng(3)
    n = 400
    rows = pd.DataFrame(
        {
            "contract_id": rng.choice(["C2", "C1", "C3"], n),
            "period_id": rng.choice(["2012", "2013"], n),
            "_line": np.arange(2, n + 2) if not shuffle else rng.permutation(np.arange(2, n + 2)),
        }
    )
    rows.attrs["file"] = "sessions.csv"
    groups = _Groups(rows)
    expected = []
    for contract_id, period_id in groups.keys:
        own = rows[(rows["contract_id"] == contract_id) & (rows["period_id"] == period_id)]
        own.attrs = dict(rows.attrs)
        expected.append(source_lines(own))
    assert groups.source_texts("sessions.csv") == expected
    assert all(text.endswith("…") for text in expected)  # more than 8 lines per group: cut
