"""The table store: a checked table kept on disk comes back as the checks gave it, only for the
file as it was kept, never half-written, and the CLI's calculations give the same amounts."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.engine import Workspace
from nmr_engine.errors import InputError
from nmr_engine.inputs import snapshots
from nmr_engine.inputs.reader import read_table
from nmr_engine.inputs.snapshots import TableStore
from nmr_engine.plugin.manager import PluginRegistry

from .conftest import ROOT
from .test_reader_one_pass import HEADER, SPEC, assert_same

ROWS = (
    "C2;P2;A;diagnostic;3;12,5;oui;2012-01-01; padded \n"
    "C1;P1;B;seance;;-4.05;non;2012-01-02;\n"
    " C1 ;P10;A;seance;0;0;;2012-01-01;x\n"
)


@pytest.fixture
def settled(monkeypatch):
    """Files written by the test count as settled at once (the store waits 2 s otherwise)."""
    monkeypatch.setattr(snapshots, "SETTLED_SECONDS", 0.0)


def _write(path, rows=ROWS):
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def _kept(store: TableStore) -> list:
    return sorted(store.folder.glob("*.arrow")) if store.folder.exists() else []


def test_a_kept_table_is_the_checked_table_with_every_type(tmp_path, settled):
    path = _write(tmp_path / "t.csv")
    store = TableStore(tmp_path / "store", min_rows=0)
    first = read_table(path, SPEC, store=store)
    assert store.writes == 1 and store.hits == 0 and len(_kept(store)) == 1
    again = read_table(path, SPEC, store=store, label="version reçue")
    assert store.hits == 1 and store.writes == 1
    pd.testing.assert_frame_equal(again, first, check_exact=True)  # categories, Int64, boolean, dates
    assert list(again.dtypes) == list(first.dtypes)
    assert again.attrs == {"file": "version reçue"} and first.attrs == {"file": str(path)}
    assert list(again["programme_id"].cat.categories) == ["P1", "P10", "P2"]
    assert again["b"].isna().tolist() == [False, False, True]
    assert again["m"].tolist() == [1250, -405, 0]


def test_the_contract_check_is_redone_on_a_kept_table(tmp_path, settled):
    path = _write(tmp_path / "t.csv")
    store = TableStore(tmp_path / "store", min_rows=0)
    read_table(path, SPEC, {"C1", "C2"}, store=store)
    with pytest.raises(InputError) as err:
        read_table(path, SPEC, {"C1"}, store=store)
    assert store.hits == 1
    assert "ligne 2" in str(err.value) and "C2" in str(err.value)


def test_a_rewritten_file_is_read_again_even_with_the_same_size_and_times(tmp_path, settled):
    path = _write(tmp_path / "t.csv")
    store = TableStore(tmp_path / "store", min_rows=0)
    read_table(path, SPEC, store=store)
    before = os.stat(path)
    _write(path, ROWS.replace("C2;P2;A", "C3;P2;A"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same modification time
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns
    frame = read_table(path, SPEC, store=store)
    assert store.hits == 0 and frame["contract_id"].tolist() == ["C3", "C1", "C1"]


def test_a_file_changed_too_recently_is_not_kept(tmp_path):
    path = _write(tmp_path / "t.csv")  # written just now: within SETTLED_SECONDS
    store = TableStore(tmp_path / "store", min_rows=0)
    read_table(path, SPEC, store=store)
    assert store.writes == 0 and _kept(store) == []


def test_small_tables_and_files_with_problems_are_not_kept(tmp_path, settled):
    store = TableStore(tmp_path / "store", min_rows=4)
    read_table(_write(tmp_path / "small.csv"), SPEC, store=store)  # 3 rows < 4
    bad = _write(tmp_path / "bad.csv", ROWS + "C1;P1;C;seance;-1;0;oui;2012-13-01;\n")
    with pytest.raises(InputError):
        read_table(bad, SPEC, store=TableStore(tmp_path / "store", min_rows=0))
    assert _kept(store) == []


def test_a_damaged_kept_table_is_read_again_from_the_file(tmp_path, settled):
    path = _write(tmp_path / "t.csv")
    store = TableStore(tmp_path / "store", min_rows=0)
    first = read_table(path, SPEC, store=store)
    (kept,) = _kept(store)
    kept.write_bytes(kept.read_bytes()[:100])  # truncated
    again = read_table(path, SPEC, store=store)
    assert store.hits == 0 and store.writes == 2
    assert_same(again, first)
    assert read_table(path, SPEC, store=store) is not None and store.hits == 1


def test_a_write_that_fails_leaves_nothing_behind(tmp_path, settled, monkeypatch):
    path = _write(tmp_path / "t.csv")
    store = TableStore(tmp_path / "store", min_rows=0)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pyarrow.feather.write_feather", disk_full)
    frame = read_table(path, SPEC, store=store)  # the calculation goes on
    assert frame["_line"].tolist() == [2, 3, 4]
    assert store.writes == 0 and list(store.folder.iterdir()) == []  # no temporary file left


def test_another_declaration_is_another_table(tmp_path, settled):
    path = _write(tmp_path / "t.csv")
    store = TableStore(tmp_path / "store", min_rows=0)
    read_table(path, SPEC, store=store)
    other = type(SPEC)(name=SPEC.name, columns=SPEC.columns, unique=())
    read_table(path, other, store=store)
    assert store.hits == 0 and len(_kept(store)) == 2


def test_the_setting_turns_the_store_off_or_moves_it(tmp_path, monkeypatch):
    monkeypatch.delenv(snapshots.ENV, raising=False)
    assert TableStore.for_data(tmp_path / "data").folder == tmp_path / "data" / ".tables"
    monkeypatch.setenv(snapshots.ENV, "off")
    assert TableStore.for_data(tmp_path / "data") is None
    monkeypatch.setenv(snapshots.ENV, str(tmp_path / "ailleurs"))
    assert TableStore.for_data(tmp_path / "data").folder == tmp_path / "ailleurs"


def test_a_workspace_through_the_store_computes_the_same_lines(tmp_path, settled):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    registry = PluginRegistry()
    plain = Workspace(ROOT / "contracts", data, registry).calculate(["2012", "2013"])
    store = TableStore(tmp_path / "store", min_rows=0)
    first = Workspace(ROOT / "contracts", data, registry, store=store).calculate(["2012", "2013"])
    written = store.writes
    second = Workspace(ROOT / "contracts", data, registry, store=store).calculate(["2012", "2013"])
    assert written > 0 and store.hits == written
    assert plain.total_cents == first.total_cents == second.total_cents == 49_913_602
    for lines in (first.lines, second.lines):
        pd.testing.assert_frame_equal(
            lines.drop(columns="explanation"), plain.lines.drop(columns="explanation"), check_exact=True
        )
        assert [e.to_dict() for e in lines["explanation"]] == [e.to_dict() for e in plain.lines["explanation"]]


def test_the_cli_calculation_keeps_big_tables_in_the_data_folder(tmp_path, settled, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    monkeypatch.delenv(snapshots.ENV, raising=False)
    monkeypatch.setattr(snapshots, "MIN_ROWS", 0)
    args = ["calculate", "--contracts", str(ROOT / "contracts"), "--data", str(data), "--period", "2013"]
    runner = CliRunner()
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    kept = sorted((data / ".tables").glob("*.arrow"))
    assert kept
    second = runner.invoke(cli, args)
    assert second.exit_code == 0 and second.output == first.output
    assert sorted((data / ".tables").glob("*.arrow")) == kept  # read back, nothing new


@pytest.mark.parametrize("values", [["a", "b", "c"], [1, "a", None]])  # texts as Python objects; mixed
def test_a_table_arrow_would_not_give_back_the_same_is_not_kept(tmp_path, settled, values):
    path = _write(tmp_path / "t.csv")
    store = TableStore(tmp_path / "store", min_rows=0)
    frame = pd.DataFrame({"note": pd.Series(values, dtype=object), "_line": [2, 3, 4]})
    assert store.put(path, SPEC, frame, snapshots.file_identity(path), os.stat(path).st_ctime_ns + 1) is False
    assert store.writes == 0 and _kept(store) == []
    fine = pd.DataFrame({"note": pd.Series(["a", "b", "c"], dtype="str"), "_line": [2, 3, 4]})
    assert store.put(path, SPEC, fine, snapshots.file_identity(path), os.stat(path).st_ctime_ns + 1) is True


def test_a_table_read_in_blocks_is_kept_in_one_chunk_per_column(tmp_path, settled):
    """pyarrow's CSV reader gives a big file in blocks; kept, each column is one contiguous array."""
    import pyarrow.feather as feather

    rows = "".join(
        f"C{i % 7};P{i % 3};PAT{i:06d};seance;{i % 5};1,5;oui;2012-01-{1 + i % 28:02d};x\n" for i in range(60_000)
    )
    path = _write(tmp_path / "t.csv", rows)
    store = TableStore(tmp_path / "store", min_rows=0)
    first = read_table(path, SPEC, store=store)
    assert first["patient_id"].array._pa_array.num_chunks > 1  # the parser's blocks
    (kept,) = _kept(store)
    table = feather.read_table(kept, memory_map=True)
    assert {table.column(name).num_chunks for name in table.column_names} == {1}
    pd.testing.assert_frame_equal(read_table(path, SPEC, store=store), first, check_exact=True)


def test_the_periods_of_the_rows_are_kept_and_read_back_for_the_same_contracts(tmp_path, settled, monkeypatch):
    from nmr_engine.inputs import reader

    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    registry = PluginRegistry()
    plain = Workspace(ROOT / "contracts", data, registry).calculate(["2012", "2013"])
    placed = []
    original = reader.assign_periods
    monkeypatch.setattr(
        reader, "assign_periods", lambda frame, *a: placed.append(frame.attrs["file"]) or original(frame, *a)
    )
    store = TableStore(tmp_path / "store", min_rows=0)
    Workspace(ROOT / "contracts", data, registry, store=store).calculate(["2012", "2013"])
    dated = sorted(set(placed))
    assert dated and len(list(store.folder.glob("*-periods-*.arrow"))) == len(dated)
    placed.clear()
    again = Workspace(ROOT / "contracts", data, registry, store=store).calculate(["2012", "2013"])
    assert placed == []  # every dated table's periods read back
    pd.testing.assert_frame_equal(
        again.lines.drop(columns="explanation"), plain.lines.drop(columns="explanation"), check_exact=True
    )
    assert [e.to_dict() for e in again.lines["explanation"]] == [e.to_dict() for e in plain.lines["explanation"]]


def test_other_periods_place_the_rows_again(tmp_path, settled):
    from nmr_engine.inputs.reader import read_module_tables
    from nmr_engine.model import module_periods_frame

    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    registry = PluginRegistry()
    ws = Workspace(ROOT / "contracts", data, registry)
    specs = registry.modules()["etp"].spec.tables
    known = {c.id for c in ws.contracts}
    periods = module_periods_frame(ws.contracts, "etp")
    store = TableStore(tmp_path / "store", min_rows=0)
    first = read_module_tables(data, "etp", specs, known, periods, store=store)["sessions"]
    renamed = periods.assign(period_id="P-" + periods["period_id"])  # same spans, other names
    other = read_module_tables(data, "etp", specs, known, renamed, store=store)["sessions"]
    assert (other["period_id"].astype(str) == "P-" + first["period_id"].astype(str)).all()
    back = read_module_tables(data, "etp", specs, known, periods, store=store)["sessions"]
    pd.testing.assert_series_equal(back["period_id"], first["period_id"], check_exact=True)
    dated = [spec for spec in specs if spec.event_date]
    assert len(list(store.folder.glob("*-periods-*.arrow"))) == 2 * len(dated)  # one per table and periods
