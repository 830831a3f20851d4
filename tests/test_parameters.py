"""Dated parameters: value in force on a date, for a contract, and where it came from."""

from __future__ import annotations

import datetime as dt
import textwrap

import numpy as np
import pandas as pd
import pytest

from nmr_engine.errors import InputError
from nmr_engine.parameters import ParameterStore, ParameterVersion, Reference, load_parameter_file


def write_param(tmp_path, body: str):
    path = tmp_path / "amount.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path):
    path = write_param(
        tmp_path,
        """\
        description: test
        unit: EUR
        metadata:
          last_value_still_valid_on: 2013-12-31
        values:
          2010-01-01:
            value: "1000.00"
            confidence: SEED
            reference: {title: Fiche 5, href: seed}
          2013-01-01:
            value: "1100.00"
            confidence: HIGH
            reference: Arrêté
          2015-01-01:
            value: null
            confidence: HIGH
            reference: Fin de l'expérimentation
        """,
    )
    s = ParameterStore()
    s.add(load_parameter_file(path, "m.amount"))
    s.add_override(
        ParameterVersion(
            name="m.amount",
            start=dt.date(2012, 7, 1),
            end=dt.date(2012, 12, 31),
            value=120000,
            unit="EUR",
            confidence="CONTRACT",
            reference=Reference("Convention C2, art. 3"),
            source="c2.yaml:20",
            contract_id="C2",
        )
    )
    return s


def test_value_in_force_and_its_source(store):
    v = store.at("m.amount", dt.date(2012, 12, 31))
    assert (v.value, v.start, v.confidence, str(v.reference)) == (100000, dt.date(2010, 1, 1), "SEED", "Fiche 5 (seed)")
    assert v.end == dt.date(2012, 12, 31)
    assert store.at("m.amount", dt.date(2013, 1, 1)).value == 110000
    assert store.at("m.amount", dt.date(2009, 12, 31)) is None
    assert store.at("m.amount", dt.date(2015, 6, 1)).in_force is False


def test_contract_override_wins_only_inside_its_dates(store):
    assert store.at("m.amount", dt.date(2012, 8, 1), "C2").value == 120000
    assert store.at("m.amount", dt.date(2013, 2, 1), "C2").value == 110000  # override ended
    assert store.at("m.amount", dt.date(2012, 8, 1), "C1").value == 100000
    assert "contrat C2" in store.at("m.amount", dt.date(2012, 8, 1), "C2").describe()


def test_vectorised_lookup_equals_the_scalar_one(store):
    contracts = pd.Series(["C1", "C2", "C2", "C1", "C2", "C1"])
    dates = pd.Series(
        pd.to_datetime(["2009-06-01", "2012-08-01", "2013-02-01", "2013-02-01", "2015-02-01", "2012-12-31"])
    )
    col = store.column("m.amount", contracts, dates)
    expected = [store.at("m.amount", d.date(), c) for c, d in zip(contracts, dates, strict=True)]
    got = [col.version_at(i) for i in range(len(contracts))]
    assert got == expected
    assert col.values(missing=0).tolist() == [0, 120000, 110000, 110000, 0, 100000]
    assert col.in_force().tolist() == [False, True, True, True, False, True]


@pytest.mark.parametrize("span_days", [900, 60_000])  # a short span (one lookup per day), a long one
def test_vectorised_lookup_equals_the_scalar_one_on_many_days_with_nat(store, span_days):
    rng = np.random.default_rng(3)
    n = 5_000
    dates = pd.Series(np.datetime64("2011-12-01") + rng.integers(-span_days // 2, span_days // 2, n).astype("m8[D]"))
    dates = dates.astype("datetime64[ns]")
    dates[::7] = pd.NaT
    contracts = pd.Series(np.where(rng.random(n) < 0.5, "C1", "C2"))
    col = store.column("m.amount", contracts, dates)
    expected = [
        store.at("m.amount", d.date(), c) if not pd.isna(d) else store.column("m.amount", [c], [d]).version_at(0)
        for c, d in zip(contracts, dates, strict=True)
    ]
    assert [col.version_at(i) for i in range(n)] == expected
    # NaT: after every start (numpy's order), as a lookup of that one row says; no override
    assert col.version_at(0) is store.column("m.amount", ["C1"], [pd.NaT]).version_at(0)
    assert col.version_at(0).start == dt.date(2015, 1, 1)  # the last version


@pytest.mark.parametrize("with_nat", [False, True])
def test_the_comparison_of_times_with_few_versions_gives_the_day_lookups_answer(store, monkeypatch, with_nat):
    from nmr_engine.parameters import model

    rng = np.random.default_rng(11)
    n = 4_000
    days = np.datetime64("2012-06-01") + rng.integers(-1_200, 1_200, n).astype("m8[D]")
    times = days.astype("datetime64[ns]") + rng.integers(0, 86_400_000_000_000, n).astype("m8[ns]")
    times[:3] = np.array(["2010-01-01", "2013-01-01", "2012-12-31T23:59:59.999999999"], dtype="datetime64[ns]")
    if with_nat:
        times[5::11] = np.datetime64("NaT")
    contracts = pd.Series(np.where(rng.random(n) < 0.5, "C1", "C2"))

    def lookup():
        store.stale_warnings.clear()
        col = store.column("m.amount", contracts, pd.Series(times))
        return col.index.tolist(), [v.id for v in col.versions], set(store.stale_warnings)

    fast = lookup()
    monkeypatch.setattr(model, "_FEW_VERSIONS", 0)  # every lookup by day numbers
    assert lookup() == fast
    assert fast[0][:3] == [0, 1, 0]  # midnight of a start is in it; the nanosecond before is not
    assert bool(fast[2]) is not with_nat  # past the review stamp: warned (not checked with a NaT, as before)


def test_use_past_the_review_stamp_is_warned(store):
    store.at("m.amount", dt.date(2014, 3, 1))
    [warning] = store.stale_warnings
    assert "vérifié que jusqu'au 31/12/2013" in warning


def test_bad_parameter_file_names_line_and_field(tmp_path):
    path = write_param(
        tmp_path,
        """\
        unit: EUR
        values:
          2010-01-01:
            value: "10.005"
            confidence: SURE
            reference: x
          2011-01-01:
            value: "10.001"
            confidence: HIGH
            reference: x
        """,
    )
    with pytest.raises(InputError) as info:
        load_parameter_file(path, "m.x")
    msgs = [str(p) for p in info.value.problems]
    assert any("ligne 3, champ « values.2010-01-01.confidence » : fiabilité attendue parmi" in m for m in msgs)
    assert any("ligne 7, champ « values.2011-01-01.value » : montant avec plus de deux décimales" in m for m in msgs)


def test_every_builtin_parameter_is_dated_and_sourced():
    from nmr_engine.engine import load_parameters
    from nmr_engine.parameters.model import CONFIDENCE_LEVELS
    from nmr_engine.plugin.manager import PluginRegistry

    store = load_parameters(PluginRegistry())
    assert store.names()
    for name in store.names():
        for v in store[name].versions:
            assert v.confidence in CONFIDENCE_LEVELS and v.reference.title, name
