"""The payment campaign on both backends: post, post again, correct, instalments, atomicity."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from ledger_support import PATIENTS, add_late_patient, workspace

from nmr_engine.errors import ConfigurationError, InputError
from nmr_engine.ledger import commit, open_store, post, prepare, verify

PERIOD = ["2012"]
AFTER_YEAR_END = dt.date(2013, 1, 15)


def _post(url, root, pseudonymiser, run_date=AFTER_YEAR_END, periods=PERIOD, **kw):
    with open_store(url) as store:
        return post(store, workspace(root, run_date), periods, pseudonymiser, **kw)


def _amounts(entries):
    return sorted((e.contract_id, e.module, e.component, e.instalment, e.kind, e.amount_cents) for e in entries)


def test_post_then_nothing_new_then_one_regularisation(ledger_url, example, pseudonymiser):
    first = _post(ledger_url, example, pseudonymiser)
    # 250 + 300 + 2 000 + 1 000 (A) + 1 000 (B) + 80,00 + 53,33 (C) = 4 683,33 € (see conftest)
    assert first.total_cents == 468_333
    assert _amounts(first.entries) == [
        ("ENMR-TEST-A", "etp", "forfait_patient_3_4", "unique", "balance", 25_000),
        ("ENMR-TEST-A", "etp", "forfait_patient_5_6", "unique", "balance", 30_000),
        ("ENMR-TEST-A", "etp", "formation", "unique", "balance", 200_000),
        ("ENMR-TEST-A", "etp", "structuration", "unique", "balance", 100_000),
        ("ENMR-TEST-B", "etp", "structuration", "unique", "balance", 100_000),
        ("ENMR-TEST-C", "essai", "forfait", "avance", "advance", 8_000),
        ("ENMR-TEST-C", "essai", "forfait", "solde", "balance", 5_333),
    ]
    assert first.run.entry_count == 7 and first.run.total_cents == 468_333

    again = _post(ledger_url, example, pseudonymiser)
    assert again.run is None and again.entries == ()

    add_late_patient(example)
    corrected = _post(ledger_url, example, pseudonymiser)
    assert len(corrected.entries) == 1
    reg = corrected.entries[0]
    # 2 patients × 250,00 € due − 250,00 € already posted = +250,00 €
    assert (reg.component, reg.kind, reg.amount_cents) == ("forfait_patient_3_4", "regularisation", 25_000)
    original = next(e for e in first.entries if e.component == "forfait_patient_3_4")
    assert reg.corrects == (original.entry_id,)
    posting = reg.explanation_dict()["posting"]
    assert posting["due_cents"] == 50_000 and posting["already_posted_cents"] == 25_000
    assert "Régularisation : montant dû 500,00" in posting["text"]

    with open_store(ledger_url) as store:
        runs, entries = store.snapshot()
    assert [r.entry_count for r in runs] == [7, 1]
    assert sum(e.amount_cents for e in entries) == 468_333 + 25_000
    assert verify(runs, entries) == []


def test_negative_regularisation_when_an_input_is_withdrawn(ledger_url, example, pseudonymiser):
    _post(ledger_url, example, pseudonymiser)
    trainings = example / "data" / "etp" / "trainings.csv"
    trainings.write_text("\n".join(trainings.read_text().splitlines()[:2]) + "\n")  # RPPS-2 withdrawn
    result = _post(ledger_url, example, pseudonymiser)
    # 1 × 1 000,00 € due − 2 000,00 € posted = −1 000,00 €
    assert [(e.component, e.kind, e.amount_cents) for e in result.entries] == [
        ("formation", "regularisation", -100_000)
    ]


def test_a_line_no_longer_produced_is_reversed(ledger_url, example, pseudonymiser):
    _post(ledger_url, example, pseudonymiser)
    structuring = example / "data" / "etp" / "structuring.csv"
    structuring.write_text("contract_id;claim_date;reference\nENMR-TEST-A;2012-02-15;Note A\n")
    result = _post(ledger_url, example, pseudonymiser)
    [entry] = result.entries
    assert (entry.contract_id, entry.component, entry.amount_cents) == ("ENMR-TEST-B", "structuration", -100_000)
    assert "rien n'est plus dû" in entry.explanation_dict()["summary"]


def test_instalments_are_posted_when_they_fall_due(ledger_url, example, pseudonymiser):
    mid_year = _post(ledger_url, example, pseudonymiser, run_date=dt.date(2012, 6, 30))
    # Only C's advance is due on 30/06/2012 (due 01/01/2012); the ETP lines and C's balance fall
    # due on 31/12/2012.
    assert _amounts(mid_year.entries) == [("ENMR-TEST-C", "essai", "forfait", "avance", "advance", 8_000)]
    assert len(mid_year.proposal.not_yet_due) == 6
    year_end = _post(ledger_url, example, pseudonymiser, run_date=dt.date(2012, 12, 31))
    assert len(year_end.entries) == 6
    assert year_end.total_cents == 468_333 - 8_000
    assert year_end.count("regularisation") == 0


def test_a_rerun_with_an_earlier_date_does_not_reverse_what_is_not_yet_due(ledger_url, example, pseudonymiser):
    _post(ledger_url, example, pseudonymiser)
    early = _post(ledger_url, example, pseudonymiser, run_date=dt.date(2012, 6, 30))
    assert early.entries == ()


def test_other_periods_are_left_alone(ledger_url, example, pseudonymiser):
    _post(ledger_url, example, pseudonymiser)
    other = _post(ledger_url, example, pseudonymiser, run_date=dt.date(2014, 2, 1), periods=["2013"])
    assert other.entries == ()  # nothing happened in 2013, and 2012 is not in scope


def test_entry_ids_are_deterministic_across_ledgers(ledgers, example, pseudonymiser):
    a = _post(ledgers.new(), example, pseudonymiser)
    b = _post(ledgers.new(), example, pseudonymiser)
    assert [e.entry_id for e in a.entries] == [e.entry_id for e in b.entries]
    assert a.run.run_id == b.run.run_id
    assert [e.hash for e in a.entries] != [e.hash for e in b.entries]  # recorded_at differs


def test_commit_of_the_same_proposal_twice_posts_once(ledger_url, example, pseudonymiser):
    proposal = prepare(workspace(example, AFTER_YEAR_END), PERIOD, pseudonymiser)
    with open_store(ledger_url) as store:
        assert len(commit(store, proposal).entries) == 7
        assert commit(store, proposal).entries == ()
        assert len(store.entries()) == 7


def test_failure_during_the_write_leaves_nothing_and_the_next_run_completes(ledger_url, example, pseudonymiser):
    proposal = prepare(workspace(example, AFTER_YEAR_END), PERIOD, pseudonymiser)

    def explode(message, done, total):
        if message == "écriture":
            raise RuntimeError("panne pendant l'écriture")

    with open_store(ledger_url) as store:
        with pytest.raises(RuntimeError, match="panne"):
            commit(store, proposal, progress=explode)
        assert store.snapshot() == ([], [])
        assert len(commit(store, proposal).entries) == 7


def test_entries_and_runs_cannot_be_updated_or_deleted(ledger_url, example, pseudonymiser):
    _post(ledger_url, example, pseudonymiser)
    with open_store(ledger_url) as store:
        for sql in (
            "UPDATE entries SET amount_cents = 1",
            "DELETE FROM entries",
            "UPDATE runs SET total_cents = 1",
            "DELETE FROM runs",
        ):
            with pytest.raises(Exception, match="append-only"):
                with store.writing() as session:
                    session.cursor.execute(sql)
        assert sum(e.amount_cents for e in store.entries()) == 468_333


def test_no_clear_patient_identifier_reaches_the_ledger(ledger_url, example, pseudonymiser):
    result = _post(ledger_url, example, pseudonymiser)
    with open_store(ledger_url) as store:
        runs, entries = store.snapshot()
    stored = json.dumps([e.payload() for e in entries] + [r.payload() for r in runs], ensure_ascii=False)
    assert [p for p in PATIENTS if p in stored] == []
    advance = next(e for e in result.entries if e.instalment == "avance")
    # The essai plugin names its patients in the explanation: only their pseudonyms are kept.
    inputs = dict(map(tuple, advance.explanation_dict()["inputs"]))
    expected = ", ".join(pseudonymiser.pseudonym(p) for p in ("PAT-C1", "PAT-C2"))
    assert inputs["patients"] == expected
    if ledger_url.startswith("sqlite:///"):
        raw = open(ledger_url[len("sqlite:///") :], "rb").read()
        assert [p for p in PATIENTS if p.encode() in raw] == []


def test_fingerprints_and_plugin_are_recorded(ledger_url, example, pseudonymiser):
    result = _post(ledger_url, example, pseudonymiser)
    a_lines = [e for e in result.entries if e.module == "etp"]
    c_lines = [e for e in result.entries if e.module == "essai"]
    assert {e.plugin_version for e in c_lines} == {"0.1.0"}
    assert len({e.input_fingerprint for e in a_lines}) == 1
    assert a_lines[0].input_fingerprint != c_lines[0].input_fingerprint  # each module's own files
    assert all(len(e.parameter_fingerprint) == 64 for e in result.entries)
    add_late_patient(example)
    corrected = _post(ledger_url, example, pseudonymiser)
    assert corrected.entries[0].input_fingerprint != a_lines[0].input_fingerprint
    assert corrected.run.parameter_fingerprint == result.run.parameter_fingerprint
    assert json.loads(corrected.run.plugins)["etp"].endswith("1.0.0")


def test_bad_input_posts_nothing(ledger_url, example, pseudonymiser):
    sessions = example / "data" / "etp" / "sessions.csv"
    sessions.write_text(sessions.read_text() + "ENMR-TEST-A;P1;PAT-A9;2012-13-01;seance\n")
    with open_store(ledger_url) as store:
        with pytest.raises(InputError, match=r"sessions.csv, ligne 12, champ « session_date »"):
            post(store, workspace(example, AFTER_YEAR_END), PERIOD, pseudonymiser)
        assert store.snapshot() == ([], [])


def test_unknown_ledger_address_is_refused_in_french():
    with pytest.raises(ConfigurationError, match="adresse de registre non reconnue « mysql://x »"):
        open_store("mysql://x")
