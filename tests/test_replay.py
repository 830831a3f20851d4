"""``nmr replay`` and ``nmr explain ENTRY`` on a recorded three-year history (tests/histcase.py).

The history of TEST-ETP is posted period by period, each run with the knowledge of its date
(``nmr post --known-on``):

  run 1  2012-03-01  period 2011  etp 2011
  run 2  2013-03-01  period 2012  etp 2012 (trainings v1: 2 trainings) + forfait 2012 (amendment n° 1)
  run 3  2013-06-01  period 2012  regularisation: trainings v2 (received 15/05/2013) adds a third training
  run 4  2014-03-01  period 2013  etp 2013, forfait 2013 (retroactive suspension, termination known)

then replayed from the recorded history alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.ledger import open_store

from . import histcase

sys.path.insert(0, str(Path(__file__).parent / "ledger"))
from ledger_support import PG_URL, SESSION_TAG, drop_schemas

KEY = "replay-test-key-0123456789"
PLUGIN = str(histcase.PLUGIN)
POSTS = [
    ("2011", "2012-03-01"),
    ("2012", "2013-03-01"),
    ("2012", "2013-06-01"),
    ("2013", "2014-03-01"),
]


def plain(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def run_cli(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), env={"NMR_PSEUDONYM_KEY": KEY, "COLUMNS": "200"})
    if ok:
        assert result.exit_code == 0, result.output + str(result.exception)
    return result


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request):
    if request.param == "postgres" and not _pg_available():
        if os.environ.get("NMR_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL required")
        pytest.skip(f"no PostgreSQL server at {PG_URL}")
    yield request.param
    if request.param == "postgres":
        drop_schemas(f"{SESSION_TAG}_replay%")


_n = iter(range(1_000_000))


def new_url(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'ledger.sqlite'}"
    return f"{PG_URL}?schema={SESSION_TAG}_replay{next(_n)}"


def post_history(root: Path, url: str) -> None:
    for period, day in POSTS:
        run_cli(
            "post",
            "--contracts",
            str(root / "contracts"),
            "--data",
            str(root / "data"),
            "--ledger",
            url,
            "--period",
            period,
            "--run-date",
            day,
            "--known-on",
            day,
            "--plugin",
            PLUGIN,
        )


@pytest.fixture(scope="module")
def posted(backend, tmp_path_factory):
    """The history built and posted once per backend: (root, ledger url)."""
    root = tmp_path_factory.mktemp(f"hist-{backend}")
    histcase.build(root)
    url = new_url(backend, root)
    post_history(root, url)
    return root, url


def copy_of(posted, tmp_path) -> tuple[Path, str]:
    """A private copy of the posted history (to alter it), on SQLite."""
    root, url = posted
    dest = tmp_path / "copy"
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns("ledger.sqlite*"))
    new = f"sqlite:///{dest / 'ledger.sqlite'}"
    with open_store(url) as src, open_store(new) as dst:
        runs, entries = src.snapshot()
        with dst.writing() as session:
            for run in runs:
                session.append(run, [e for e in entries if e.run_id == run.run_id])
    return dest, new


def replay_args(root: Path, url: str, *extra: str) -> list[str]:
    return [
        "replay",
        "--contracts",
        str(root / "contracts"),
        "--data",
        str(root / "data"),
        "--ledger",
        url,
        "--plugin",
        PLUGIN,
        *extra,
    ]


def test_runs_record_their_known_on_date_and_data_versions(posted):
    root, url = posted
    with open_store(url) as store:
        runs, entries = store.snapshot()
    assert [r.known_on for r in runs] == [day for _, day in POSTS]
    # run 2 read trainings v1 (received 10/01/2013), run 3 the late correction (15/05/2013)
    v1 = json.loads(runs[1].data_files)["data/etp/trainings.csv"]
    v2 = json.loads(runs[2].data_files)["data/etp/trainings.csv"]
    assert v1 != v2
    assert (root / "data" / ".history" / "etp" / f"trainings.2013-05-15.{v2[:12]}.csv").exists()
    # run 1 did not know the sessions (received 20/07/2013)
    assert "data/etp/sessions.csv" not in json.loads(runs[0].data_files)
    kinds = [(e.module, e.period_id[:4], e.kind) for e in entries if e.run_id == runs[2].run_id]
    assert ("etp", "2012", "regularisation") in kinds


def test_replay_of_the_whole_history_is_identical(posted):
    root, url = posted
    out = plain(run_cli(*replay_args(root, url)).output)
    with open_store(url) as store:
        _runs, entries = store.snapshot()
    # etp: 2011 structuring 1 000,00; 2012 trainings 1 000 + 1 200 (amendment n° 2 from 01/07/2012)
    #      = 2 200,00, then the late third training (05/11/2012, 1 200,00) regularised: +1 200,00;
    #      2013 one patient × 250,00. forfait: 2012 3 650,00 × 366/366; 2013 × 274/365 = 2 740,00
    #      (91 days suspended 01/04–30/06). Total 1 000 + 2 200 + 1 200 + 250 + 3 650 + 2 740 = 11 040,00.
    assert sum(e.amount_cents for e in entries) == 1_104_000
    assert f"Rejeu identique : 4 passage(s), {len(entries)} écriture(s), total 11 040,00 €" in out
    assert re.search(r"TEST-ETP\W+etp\W+4 650,00 €", out)
    assert re.search(r"TEST-ETP\W+forfait\W+6 390,00 €", out)


def test_replay_as_of_a_date_between_two_runs_shows_the_earlier_state(posted):
    root, url = posted
    # 01/04/2013: runs 1 and 2 posted; the correction (run 3), the suspension (recorded 15/09/2013)
    # and the termination (15/11/2013) not known yet.
    out = plain(run_cli(*replay_args(root, url, "--as-of", "2013-04-01")).output)
    with open_store(url) as store:
        runs, entries = store.snapshot()
    early = [e for e in entries if e.run_id in {runs[0].run_id, runs[1].run_id}]
    assert f"Rejeu identique au 01/04/2013 : 2 passage(s), {len(early)} écriture(s)" in out
    assert "TEST-ETP : modules etp, forfait ; historique : amendment du 01/01/2012, amendment du 01/07/2012" in out
    assert "suspension" not in out and "résilié" not in out
    later = plain(run_cli(*replay_args(root, url, "--as-of", "2013-12-01")).output)
    assert "résilié à compter du 01/01/2014" in later and "suspension du 01/04/2013" in later


def test_altered_stored_entry_is_named(posted, tmp_path):
    root, url = copy_of(posted, tmp_path)
    path = url[len("sqlite:///") :]
    conn = sqlite3.connect(path)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    entry_id, amount = conn.execute("SELECT entry_id, amount_cents FROM entries WHERE seq = 2").fetchone()
    conn.execute("UPDATE entries SET amount_cents = amount_cents + 100 WHERE seq = 2")
    conn.commit()
    conn.close()
    result = run_cli(*replay_args(root, url), ok=False)
    assert result.exit_code == 1
    err = plain(result.output)
    assert f"Anomalie du registre : écriture n° 2 ({entry_id}) : contenu modifié" in err  # the hash chain
    euros = lambda c: f"{c // 100:,}".replace(",", " ") + f",{c % 100:02d} €"  # noqa: E731
    assert (
        f"écriture {entry_id} : amount_cents — enregistré : {euros(amount + 100)} ; recalculé : {euros(amount)}" in err
    )


def test_altered_data_file_of_the_history_is_named(posted, tmp_path):
    root, url = copy_of(posted, tmp_path)
    copy = next((root / "data" / ".history" / "etp").glob("trainings.2013-01-10.*.csv"))
    copy.write_text(copy.read_text() + "TEST-ETP;RPPS-9;2012-04-01;Formation X\n")
    result = run_cli(*replay_args(root, url), ok=False)
    assert result.exit_code == 1
    err = plain(result.output)
    assert "reconstruction impossible" in err
    assert f"{copy}" in err and "copie altérée" in err


def test_altered_parameter_value_is_named(posted, tmp_path):
    root, url = copy_of(posted, tmp_path)
    # the contract's own value (amendment n° 2) changes from 1 200,00 € to 1 300,00 €
    contract = root / "contracts" / "test.yaml"
    contract.write_text(contract.read_text().replace('value: "1200.00"', 'value: "1300.00"'))
    result = run_cli(*replay_args(root, url), ok=False)
    assert result.exit_code == 1
    err = plain(result.output)
    assert "paramètre etp.training.amount" in err
    assert "1 200,00 €" in err and "1 300,00 €" in err


def test_plugin_version_changed_is_not_reproducible_not_different(posted, tmp_path):
    root, url = copy_of(posted, tmp_path)
    plugin = tmp_path / "forfait.py"
    plugin.write_text(Path(PLUGIN).read_text().replace('version="0.1.0"', 'version="0.2.0"'))
    shutil.copytree(Path(PLUGIN).parent / "forfait_params", tmp_path / "forfait_params")
    args = replay_args(root, url)
    args[args.index(PLUGIN)] = str(plugin)
    result = run_cli(*args, ok=False)
    assert result.exit_code == 1
    err = plain(result.output)
    # forfait posted entries in runs 2 and 4: those cannot be reproduced; runs 1 and 3 (etp only)
    # are replayed with the installed plugins and are identical.
    assert err.count("Non reproductible") == 2
    assert "module forfait calculé par la version 0.1.0 du plugin, version installée 0.2.0" in err
    assert "Écart" not in err
    assert "0 passage(s) différent(s), 2 non reproductible(s)" in err


def test_explain_entry_shows_the_regularisation_and_what_it_corrects(posted):
    root, url = posted
    with open_store(url) as store:
        _runs, entries = store.snapshot()
    reg = next(e for e in entries if e.kind == "regularisation" and e.module == "etp")
    first = next(e for e in entries if e.entry_id == reg.corrects[0])
    args = ["explain", reg.entry_id[:10], "--contracts", str(root / "contracts"), "--data", str(root / "data")]
    out = run_cli(*args, "--ledger", url).output
    assert f"Écriture {reg.entry_id} — régularisation (exécution {reg.run_id}, comptabilisée le 01/06/2013)" in out
    assert "Selon ce que le moteur savait le 01/06/2013" in out
    assert f"écriture {first.entry_id} du 01/03/2013" in out
    assert "Avenant n° 1 du 10/12/2011" in out and "Avenant n° 2 du 20/06/2012" in out
    assert "Régularisation : montant dû" in out
    assert "Chaînage : écriture n°" in out


def test_ledger_written_before_known_on_existed_is_upgraded_and_replayed(tmp_path):
    from nmr_engine.ledger import post, verify
    from nmr_engine.ledger.store import TABLES_DDL
    from nmr_engine.pseudonym import Pseudonymiser

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    for sql in TABLES_DDL:  # the first schema: no known_on, no data_files
        for col in ("known_on", "data_files"):
            sql = sql.replace(f",\n  {col} TEXT NOT NULL DEFAULT ''", "")
        conn.execute(sql)
    conn.commit()
    assert "known_on" not in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    conn.close()
    root = tmp_path / "h"
    histcase.build(root)
    url = f"sqlite:///{path}"
    with open_store(url) as store:  # opening adds the columns (default "")
        # posted as before this work: no known-on date, the working files
        post(store, histcase.workspace(root, None), ["2012"], Pseudonymiser(KEY.encode()))
        runs, entries = store.snapshot()
    assert runs[0].known_on == "" and runs[0].data_files == "" and verify(runs, entries) == []
    assert "known_on" not in runs[0].payload()  # payload() leaves the unset fields out
    out = plain(run_cli(*replay_args(root, url)).output)
    assert "Rejeu identique : 1 passage(s)" in out


def test_a_version_recorded_later_with_an_earlier_reception_date_does_not_change_a_past_run(tmp_path):
    # Run 1 on 01/06/2013 reads trainings v2 (received 15/05/2013). A v3 is then recorded as
    # received on 20/05/2013 (before run 1's date) and run 2, the same day, posts its regularisation.
    # Replaying run 1 must read v2 — the version it recorded — not v3.
    root = tmp_path / "h"
    contracts, data = histcase.build(root)
    url = f"sqlite:///{root / 'ledger.sqlite'}"
    common = ["--contracts", str(contracts), "--data", str(data), "--ledger", url, "--plugin", PLUGIN]
    post = ["post", *common, "--period", "2012", "--run-date", "2013-06-01"]
    run_cli(*post)
    trainings = data / "etp" / "trainings.csv"
    trainings.write_text(histcase.TRAININGS_V2 + "TEST-ETP;RPPS-4;2012-12-01;Formation D\n", encoding="utf-8")
    run_cli("data", "record", str(trainings), "--data", str(data), "--received-on", "2013-05-20")
    run_cli(*post)
    with open_store(url) as store:
        runs, entries = store.snapshot()
    assert len(runs) == 2 and [e.kind for e in entries if e.run_id == runs[1].run_id] == ["regularisation"]
    # Formation D (01/12/2012, after amendment n° 2): + 1 200,00 €
    assert [e.amount_cents for e in entries if e.run_id == runs[1].run_id] == [120000]
    out = plain(run_cli(*replay_args(root, url)).output)
    assert "Rejeu identique : 2 passage(s)" in out
