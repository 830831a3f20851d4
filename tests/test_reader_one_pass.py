"""The one-pass reader (typed Arrow read, checks on distinct values) gives the reference path's
frame on good files and hands every file with a problem to the reference path (its messages)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nmr_engine.errors import InputError
from nmr_engine.inputs.reader import (
    _duplicate_problems,
    _parse_table,
    _period_of_rows,
    _read_checked,
    assign_periods,
    read_table,
)
from nmr_engine.plugin import Column, TableSpec

SPEC = TableSpec(
    name="t",
    columns=(
        Column("contract_id", "str"),
        Column("programme_id", "str", category=True),
        Column("patient_id", "str"),
        Column("kind", "str", choices=("diagnostic", "seance")),
        Column("n", "int", min=0, required=False),
        Column("m", "money", required=False),
        Column("b", "bool", required=False),
        Column("d", "date"),
        Column("note", "str", required=False),
    ),
    unique=("contract_id", "patient_id", "d", "kind"),
)
HEADER = "contract_id;programme_id;patient_id;kind;n;m;b;d;note\n"


def both(path, spec=SPEC):
    """(one-pass frame, reference frame); the reference has no problem."""
    problems = []
    reference = _parse_table(path, spec, str(path), problems)
    assert problems == [] and _duplicate_problems(reference, spec) == []
    return _read_checked(path, spec, str(path)), reference


def assert_same(fast: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(fast, reference, check_exact=True)
    for column in fast.columns:
        assert fast[column].dtype == reference[column].dtype, column
    assert fast.attrs == reference.attrs


def test_small_file_every_type(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER
        + "C2;P2;A;diagnostic;3;12,5;oui;2012-01-01; padded \n"
        + "C1;P1;B;seance;;-4.05;non;2012-01-02;\n"
        + " C1 ;P10;A;seance;0;0;1;2012-01-01;x\n",
        encoding="utf-8",
    )
    fast, reference = both(path)
    assert_same(fast, reference)
    # hand-checked values: stripped texts, cents, categories in text order
    assert fast["contract_id"].tolist() == ["C2", "C1", "C1"]
    assert list(fast["contract_id"].cat.categories) == ["C1", "C2"]
    assert list(fast["programme_id"].cat.categories) == ["P1", "P10", "P2"]
    assert list(fast["kind"].cat.categories) == ["diagnostic", "seance", ""]
    assert fast["m"].tolist() == [1250, -405, 0]
    assert fast["n"].isna().tolist() == [False, True, False]
    assert fast["note"].tolist() == ["padded", "", "x"]
    assert fast["_line"].tolist() == [2, 3, 4]


def test_large_file_read_in_several_blocks(tmp_path):
    # > 1 MB: several Arrow blocks (dictionaries unified, texts combined); patient ids mostly
    # distinct, contracts and programmes repeated (read as dictionaries), dates read as days
    rng = np.random.default_rng(7)
    n = 60_000
    patients = [f"PAT-{i:012d}-{'x' * 10}" for i in rng.permutation(n)]
    days = pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    rows = [
        f"C{i % 300};P{i % 4};{patients[i]};{'diagnostic' if i % 3 else 'seance'};{i % 9};{i % 7},5;"
        f"{'oui' if i % 2 else 'non'};{days[i]:%Y-%m-%d};{'note ' * (i % 3)}\n"
        for i in range(n)
    ]
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    assert path.stat().st_size > 2 * 2**20
    fast, reference = both(path)
    assert_same(fast, reference)


@pytest.mark.parametrize(
    "row",
    [
        "C1;P1;A;atelier;1;1;oui;2012-01-01;\n",  # not a choice
        "C1;P1;A;seance;-1;1;oui;2012-01-01;\n",  # below the minimum
        "C1;P1;A;seance;1;1,234;oui;2012-01-01;\n",  # three decimals
        "C1;P1;A;seance;1;1;peut-être;2012-01-01;\n",  # not a boolean
        "C1;P1;A;seance;1;1;oui;01/01/2012;\n",  # not a date
        "C1;P1;;seance;1;1;oui;2012-01-01;\n",  # required value missing
        "C1;P1;B;seance;1;1;oui;2012-01-02;\n",  # duplicate of the first row
        'C1;P1;A;seance;1;1;oui;2012-01-03;"quoted"\n',  # quotes: the reference parser's
        "C1;P1;A;seance;1;1;oui;NA;\n",  # not a date (pyarrow would read NA as missing)
        "C1;P1;A;seance;1;1;oui;2013-02-29;\n",  # no such day
        "C1;P1;A;seance;1;1;oui;1600-01-01;\n",  # outside what datetime64[ns] holds
        "C1;P1;A;seance;1;1;oui;;\n",  # required date missing
        "C1;P1;\u00a0 ;seance;1;1;oui;2012-01-03;\n",  # a required text empty once stripped
        'C1;P"1;A;seance;1;1;oui;2012-01-03;\n',  # a quote in a coded column
        'C1;P1;A";seance;1;1;oui;2012-01-03;\n',  # a quote in a text column
    ],
)
def test_any_problem_goes_to_the_reference_path(tmp_path, row):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "C1;P1;B;seance;1;1;oui;2012-01-02;\n" + row, encoding="utf-8")
    assert _read_checked(path, SPEC, str(path)) is None


def test_messages_are_the_reference_paths(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER + "C1;P1;B;seance;1;1;oui;2012-01-02;\nC1;P1;B;seance;x;1;oui;2012-01-02;\n", encoding="utf-8"
    )
    with pytest.raises(InputError) as info:
        read_table(path, SPEC, {"C1"})
    assert [(p.line, p.field, p.message) for p in info.value.problems] == [
        (3, "n", "nombre entier attendu, reçu « x »"),
        (3, "contract_id,patient_id,d,kind", "ligne en double (même contract_id, patient_id, d, kind que la ligne 2)"),
    ]


def test_category_is_only_for_text_columns():
    with pytest.raises(ValueError, match="only a str column"):
        Column("n", "int", category=True)


def periods_frame(rows):
    frame = pd.DataFrame(rows, columns=["contract_id", "period_id", "active_start", "active_end"])
    for col in ("active_start", "active_end"):
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[ns]")
    return frame


PERIODS = periods_frame(
    [
        ("C1", "2012-07-01/2013-06-30", "2012-09-01", "2013-06-30"),  # enrolled from September
        ("C1", "2013-07-01/2014-06-30", "2013-07-01", "2014-03-31"),  # ended in March
        ("C2", "2013-01-01/2013-12-31", "2013-01-01", "2013-12-31"),
    ]
)


@pytest.mark.parametrize("grid", [True, False])
def test_periods_of_rows_by_grid_and_by_search(monkeypatch, grid):
    import nmr_engine.inputs.reader as reader

    if not grid:
        monkeypatch.setattr(reader, "_GRID_EXTRA_CELLS", -(10**9))
    contracts = pd.Series(["C1", "C1", "C1", "C1", "C2", "C3", "C2"]).astype("category")
    dates = pd.to_datetime(
        pd.Series(["2012-08-31", "2012-09-01", "2013-07-01", "2014-04-01", "2013-12-31", "2013-01-01", None])
    ).astype("datetime64[ns]")
    codes, names, inside = _period_of_rows(contracts, dates, PERIODS)
    # before the enrolment, after the end of the last active span, unknown contract, no date: no period
    assert inside.tolist() == [False, True, True, False, True, False, False]
    # no period at all (before the first span, unknown contract, no date): code -1
    assert codes.tolist()[0] == codes.tolist()[5] == codes.tolist()[6] == -1
    assert [names[c] for c, ok in zip(codes, inside, strict=True) if ok] == [
        "2012-07-01/2013-06-30",
        "2013-07-01/2014-06-30",
        "2013-01-01/2013-12-31",
    ]


def test_assign_periods_gives_category_and_refuses_rows_outside(tmp_path):
    frame = pd.DataFrame(
        {
            "contract_id": pd.Series(["C1", "C2"]).astype("category"),
            "d": pd.to_datetime(pd.Series(["2013-02-01", "2013-03-01"])).astype("datetime64[ns]"),
            "_line": [2, 3],
        }
    )
    frame.attrs["file"] = "t.csv"
    out = assign_periods(frame, "d", PERIODS, "demo")
    assert out["period_id"].astype(str).tolist() == ["2012-07-01/2013-06-30", "2013-01-01/2013-12-31"]
    frame.loc[1, "d"] = pd.Timestamp("2014-01-01")
    with pytest.raises(InputError) as info:
        assign_periods(frame, "d", PERIODS, "demo")
    assert str(info.value) == (
        "t.csv, ligne 3, champ « d » : date 01/01/2014 hors de toute période du contrat C2 pour le module « demo »"
    )


def test_quote_in_an_undeclared_column_goes_to_the_reference_path(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER.rstrip("\n") + ';extra\nC1;P1;B;seance;1;1;oui;2012-01-02;;"x"\n', encoding="utf-8")
    assert _read_checked(path, SPEC, str(path)) is None
    path.write_text(HEADER.rstrip("\n") + ";extra\nC1;P1;B;seance;1;1;oui;2012-01-02;;x\n", encoding="utf-8")
    fast, reference = both(path)
    assert_same(fast, reference)


def test_texts_padded_with_any_whitespace_are_stripped_as_on_the_reference_path(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER
        + "C1;P1;\u00a0Émile\u2003;seance;;;;2012-01-02;\tnote\n"
        + "C1;P1;Émile;diagnostic;;;;2012-01-02 ;é\n"
        + "C1;P1;A;seance;;;;2012-01-02;\n",
        encoding="utf-8",
    )
    fast, reference = both(path)
    assert_same(fast, reference)
    assert fast["patient_id"].tolist() == ["Émile", "Émile", "A"]
    assert fast["note"].tolist() == ["note", "é", ""]
    # once stripped, the first two rows have the same key but for the kind
    path.write_text(HEADER + "C1;P1;\u00a0Émile;seance;;;;2012-01-02;\nC1;P1;Émile;seance;;;;2012-01-02;\n")
    assert _read_checked(path, SPEC, str(path)) is None


@pytest.mark.parametrize("width", ["fixed", "mixed"])
def test_text_hashes_equal_for_equal_texts_only(width):
    import pyarrow as pa

    from nmr_engine.inputs.reader import _checked_texts

    if width == "fixed":
        words = [f"PAT-{i:016X}" for i in range(3000)]
        more = ["short"]  # the last chunk is not of one length: neither is the column
    else:
        words = [("x" * (i % 40)) + str(i) for i in range(3000)]
        more = ["", "é", "\x00"]
    # the second chunk's texts have one length, the third's do not: one way of hashing for all
    column = pa.chunked_array([pa.array(words), pa.array(words[:100]), pa.array(words[100:] + more)])
    large = pa.chunked_array([c.cast(pa.large_string()) for c in column.chunks])  # 64-bit offsets
    _, (large_hashes, _) = _checked_texts(large, Column("patient_id", "str", required=False), keyed=True)
    series, (hashes, distinct) = _checked_texts(column, Column("patient_id", "str", required=False), keyed=True)
    assert distinct is None and series.tolist() == words + words[:100] + words[100:] + more
    assert (hashes[:3000] == hashes[3000:6000]).all() and (large_hashes == hashes).all()
    assert len(np.unique(hashes)) == len(set(words + more))


def test_colliding_hashes_are_compared_exactly(tmp_path, monkeypatch):
    import nmr_engine.inputs.reader as reader

    # every text hashes alike: every row collides, and only an exact comparison tells
    monkeypatch.setattr(reader, "_text_hashes", lambda offsets, *_: np.zeros(len(offsets) - 1, np.uint64))
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "C1;P1;A;seance;;;;2012-01-02;\nC1;P1;B;seance;;;;2012-01-02;\n", encoding="utf-8")
    fast, reference = both(path)
    assert_same(fast, reference)
    path.write_text(HEADER + "C1;P1;A;seance;;;;2012-01-02;\nC1;P2;A;seance;;;;2012-01-02;\n", encoding="utf-8")
    assert _read_checked(path, SPEC, str(path)) is None  # same contract, patient, date and kind


def test_many_distinct_codes_overflow_into_a_hash(tmp_path):
    # codes of four columns whose product passes 2**62: packed into two keys, then hashed
    from nmr_engine.inputs.reader import _any_duplicate, _KeyPart

    n = 200_000
    frame = pd.DataFrame({c: np.arange(n) for c in "abcd"})
    keys = [_KeyPart(np.arange(n), n) for _ in "abcd"]
    assert not _any_duplicate(frame, keys, list("abcd"))
    frame.loc[7] = frame.loc[3]
    keys = [_KeyPart(frame[c].to_numpy(), n) for c in "abcd"]
    assert _any_duplicate(frame, keys, list("abcd"))


def test_set_aside_looks_at_each_contracts_rows_only_as_a_scan_of_all_rows_would():
    from nmr_engine.inputs.reader import set_aside

    rng = np.random.default_rng(3)
    n = 5_000
    frame = pd.DataFrame(
        {
            "contract_id": pd.Series(rng.choice(["C1", "C2", "C3", "C4"], n)).astype("category"),
            "d": (pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")).astype(
                "datetime64[ns]"
            ),
            "_line": np.arange(2, n + 2),
        }
    )
    frame.loc[::97, "d"] = pd.NaT
    frame.attrs["file"] = "t.csv"
    cut = pd.DataFrame(
        {
            "contract_id": ["C2", "C9", "C2", "C3", "C1"],  # C9: no row; C2 twice, overlapping
            "start": pd.to_datetime(["2012-03-01", "2012-01-01", "2012-03-15", "2013-06-01", "2014-01-01"]),
            "end": pd.to_datetime(["2012-04-30", "2013-12-31", "2012-05-31", "2013-12-31", "2014-12-31"]),
            "reason": ["suspension", "fin", "suspension", "résiliation", "fin"],
            "note": [True, True, False, True, True],
        }
    )
    for col in ("start", "end"):
        cut[col] = cut[col].astype("datetime64[ns]")
    notes: list[str] = []
    out = set_aside(frame, "d", cut, notes)

    # what a scan of every row for each span gives
    drop = np.zeros(n, dtype=bool)
    expected_aside, expected_notes = [], []
    for row in cut.itertuples(index=False):
        hit = (
            (frame["contract_id"] == row.contract_id) & (frame["d"] >= row.start) & (frame["d"] <= row.end)
        ).to_numpy()
        if hit.any():
            lines = frame["_line"].to_numpy()[hit]
            expected_aside.append(
                {
                    "contract_id": row.contract_id,
                    "reason": row.reason,
                    "lines": lines.tolist(),
                    "dates": frame["d"].to_numpy()[hit].tolist(),
                }
            )
            if row.note:
                shown = ", ".join(str(x) for x in lines[:20]) + ("…" if len(lines) > 20 else "")
                expected_notes.append(
                    f"t.csv : {int(hit.sum())} ligne(s) du contrat {row.contract_id} datée(s) pendant une période "
                    f"sans paiement ({row.reason}) sont écartées (ligne(s) {shown})"
                )
        drop |= hit
    assert out.attrs["set_aside"] == expected_aside and notes == expected_notes
    assert len(expected_aside) == 3 and 0 < drop.sum() < n
    pd.testing.assert_frame_equal(out, frame[~drop].reset_index(drop=True))
