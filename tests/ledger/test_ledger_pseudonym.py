"""Keyed pseudonymisation (HMAC-SHA256) and where its key comes from."""

from __future__ import annotations

import hashlib
import hmac
import stat

import pandas as pd
import pyarrow as pa
import pytest

from nmr_engine.engine import CalculationResult
from nmr_engine.errors import ConfigurationError
from nmr_engine.pseudonym import Pseudonymiser, _not_simple, identifiers_among, load_key, text_tokens


def test_pseudonym_is_the_truncated_hmac_of_the_identifier():
    p = Pseudonymiser(b"k" * 32)
    expected = hmac.new(b"k" * 32, b"PAT-1", hashlib.sha256).hexdigest()[:24]
    assert p.pseudonym("PAT-1") == f"PSN-{expected}"
    assert p.pseudonym("PAT-1") != Pseudonymiser(b"j" * 32).pseudonym("PAT-1")  # the key matters


def test_scrubber_replaces_whole_identifiers_only():
    p = Pseudonymiser(b"k" * 32)
    scrub = p.scrubber(["PAT-1", "PAT-12", "7"])
    text = scrub({"inputs": [["patients", "PAT-1, PAT-12 ; PAT-123 ; 17 séances ; 7"]], "n": 7})
    a, b, seven = p.pseudonym("PAT-1"), p.pseudonym("PAT-12"), p.pseudonym("7")
    assert text == {"inputs": [["patients", f"{a}, {b} ; PAT-123 ; 17 séances ; {seven}"]], "n": 7}
    assert scrub.leaks(text["inputs"][0][1]) == []


def test_scrubber_handles_identifiers_with_spaces_and_many_patients():
    p = Pseudonymiser(b"k" * 32)
    scrub = p.scrubber([f"PAT-{i}" for i in range(100_000)] + ["Jean Dupont"])
    out = scrub.text("Jean Dupont (PAT-99999), Jean Dupontel, PAT-100000")
    assert out == f"{p.pseudonym('Jean Dupont')} ({p.pseudonym('PAT-99999')}), Jean Dupontel, PAT-100000"
    assert scrub.leaks("PAT-5 et Jean Dupont") == ["Jean Dupont", "PAT-5"]


def test_only_identifiers_the_texts_may_hold_are_looked_up_and_all_of_them_are_hidden():
    values = (pd.Series(["PAT-1", "PAT-12", "Jean Dupont", "Éloïse-3"]), pd.Series([f"P{i}" for i in range(50_000)]))
    result = CalculationResult(pd.DataFrame(), (), {}, pd.DataFrame(), identifier_columns=values)
    texts = ["séances de PAT-12 et de P49999 ; PAT-123 ; P", "Éloïse-3 ; diagnostic"]
    found = result.identifiers_in(texts)
    # whole tokens only (PAT-1 is not in the texts, PAT-123 is not an identifier), plus every
    # identifier that is not one simple token (the scrubber's regular expression looks for those)
    assert {"PAT-12", "P49999", "Jean Dupont"} <= found and not {"PAT-1", "PAT-123", "P"} & found
    p = Pseudonymiser(b"k" * 32)
    scrub = p.scrubber(found)
    hidden = [scrub.text(t) for t in texts]
    assert hidden[0] == f"séances de {p.pseudonym('PAT-12')} et de {p.pseudonym('P49999')} ; PAT-123 ; P"
    assert hidden[1] == f"{p.pseudonym('Éloïse-3')} ; diagnostic"
    assert p.scrubber(result.identifiers).leaks(" ".join(hidden)) == []


def test_text_tokens_find_identifiers_next_to_control_characters_and_quotes():
    value = {"inputs": [["patients", "vus :\nPAT-12\tPAT-7"]], "note": '\u0001PAT-3 ; "PAT-9"', "n": 4}
    tokens = text_tokens(value)
    assert {"PAT-12", "PAT-7", "PAT-3", "PAT-9", "patients", "vus"} <= tokens
    assert "inputs" not in tokens  # keys are not texts the scrubber touches
    values = (pd.Series(["PAT-12", "PAT-7", "PAT-3", "PAT-9", "PAT-1"]),)
    result = CalculationResult(pd.DataFrame(), (), {}, pd.DataFrame(), identifier_columns=values)
    p = Pseudonymiser(b"k" * 32)
    scrub = p.scrubber(result.identifiers_among(tokens))
    hidden = scrub(value)
    assert hidden["inputs"][0][1] == f"vus :\n{p.pseudonym('PAT-12')}\t{p.pseudonym('PAT-7')}"
    assert hidden["note"] == f'\u0001{p.pseudonym("PAT-3")} ; "{p.pseudonym("PAT-9")}"'
    assert hidden["n"] == 4


def test_a_scrubber_with_nothing_to_hide_returns_the_value_itself():
    value = {"a": ["PAT-1"]}
    assert Pseudonymiser(b"k" * 32).scrubber([])(value) is value


def test_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("NMR_PSEUDONYM_KEY", "une clé assez longue")
    assert load_key() == "une clé assez longue".encode()


def test_key_from_a_file_outside_the_ledger(monkeypatch, tmp_path):
    monkeypatch.delenv("NMR_PSEUDONYM_KEY")
    path = tmp_path / "secret.key"
    path.write_text("0123456789abcdef0123\n")
    monkeypatch.setenv("NMR_PSEUDONYM_KEY_FILE", str(path))
    assert load_key() == b"0123456789abcdef0123"
    path.unlink()
    with pytest.raises(ConfigurationError, match="clé de pseudonymisation introuvable"):
        load_key()


def test_default_key_file_is_created_once_private(monkeypatch, tmp_path):
    monkeypatch.delenv("NMR_PSEUDONYM_KEY")
    monkeypatch.delenv("NMR_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    key = load_key()
    path = tmp_path / ".config" / "nmr-engine" / "pseudonym.key"
    assert len(key) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key() == key


def test_short_key_refused(monkeypatch):
    monkeypatch.setenv("NMR_PSEUDONYM_KEY", "court")
    with pytest.raises(ConfigurationError, match="trop courte"):
        load_key()


def test_identifier_values_are_the_distinct_non_blank_texts_of_the_columns_found_once():
    columns = (pd.Series(["P1", "P2", "P1", None, "  ", "P3"]), pd.Series(["C1", "C1", None], dtype="category"))
    result = CalculationResult(pd.DataFrame(), (), {}, pd.DataFrame(), identifier_columns=columns)
    assert [v.tolist() for v in result.identifier_values] == [["P1", "P2", "P3"], ["C1"]]
    assert result.identifier_values is result.identifier_values  # found when first asked for, then kept
    assert result.identifiers == {"P1", "P2", "P3", "C1"}


def test_identifiers_among_columns_keeps_tokens_found_and_values_that_are_not_one_token():
    columns = (
        pd.Series(["PAT-1", "PAT-2", "PAT-1", None, "  ", "", "Jean Dupont", "é1", "P\n"], dtype="str"),
        pd.Series([7, 8, None]),  # not text: its distinct values as text ("7.0", "8.0")
        pd.Series(["C1", "C 2", None], dtype="category"),
    )
    assert identifiers_among(columns, {"PAT-2", "8.0", "C1", "PAT-9"}) == {
        "PAT-2",
        "8.0",
        "C1",
        "Jean Dupont",
        "é1",
        "P\n",
        "C 2",
        "7.0",  # "." is not a token character
    }
    assert identifiers_among(columns[:1], set()) == {"Jean Dupont", "é1", "P\n"}
    result = CalculationResult(pd.DataFrame(), (), {}, pd.DataFrame(), identifier_columns=columns)
    # the run's own method: the tokens found, and every value that is not one token
    assert result.identifiers_among({"PAT-2", "C1"}) == {"PAT-2", "Jean Dupont", "é1", "P\n", "7.0", "8.0", "C1", "C 2"}


def test_identifiers_among_reads_sliced_and_chunked_text_columns():
    text = pa.large_string()
    chunks = pa.chunked_array([pa.array(["a b", "ok", "x-1"], type=text).slice(1), pa.array(["d;e"], type=text)])
    column = pd.Series(pd.arrays.ArrowStringArray(chunks))
    assert identifiers_among([column], {"x-1", "a"}) == {"x-1", "d;e"}  # "a b" is sliced off
    assert identifiers_among([pd.Series([], dtype="str")], {"a"}) == set()
    assert identifiers_among([pd.Series([None, None], dtype="str")], {"a"}) == set()
    # tokens probed: those as long as some value (2 to 6 bytes here; "é" is 2 bytes)
    column = pd.Series(["P1", "PAT-22", "é"], dtype="str")
    assert identifiers_among([column], {"PAT-22", "P1", "PAT-221", "x"}) == {"PAT-22", "P1", "é"}


def test_not_simple_flags_values_with_a_byte_outside_ascii_word_characters_and_hyphens():
    values = pa.array(["AZ_az-09", "a.b", "", "é", "x y", None, "ok"]).slice(0)
    assert _not_simple(values).tolist() == [False, True, False, True, True, False, False]
    assert _not_simple(values.slice(3, 3), block=1).tolist() == [True, True, False]
