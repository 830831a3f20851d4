"""Helpers of prepare that compute once what lines share (parameter versions)."""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib

import pandas as pd
import pytest

from nmr_engine.ledger.hashchain import canonical_json, seal_entries, seal_fields
from nmr_engine.ledger.model import Entry
from nmr_engine.ledger.posting import (
    _rows,
    _shared,
    contract_digest,
    explanation_json,
    explanation_parts,
    file_digest,
    parameter_fingerprint,
)
from nmr_engine.ledger.store import FORMAT_COLUMNS, FORMAT_RECORD, json_encoder
from nmr_engine.parameters.model import ParameterVersion, Reference
from nmr_engine.plugin.api import Explanation
from nmr_engine.pseudonym import text_tokens


def _version(name: str, value: int) -> ParameterVersion:
    return ParameterVersion(
        name=name, start=dt.date(2013, 1, 1), value=value, unit="EUR", confidence="SEED",
        reference=Reference("Fiche 5"), source=f"{name}.yaml:1",
    )  # fmt: skip


def test_explanation_parts_list_each_parameter_version_once():
    a, b = _version("m.a", 100), _version("m.b", 250)
    explained = [
        Explanation("PAT-1 vu", "2 × 1,00 €", inputs=(("patients", "PAT-1, PAT-2"),), parameters=(a, b)),
        Explanation("PAT-3 vu", "1,00 €", parameters=(a,), warnings=("PAT-4",)),
    ]
    explanations = [e.to_dict() for e in explained]
    parts = explanation_parts(explained, explanations)
    # line 1: its 6 other values, then the dicts of a and b; line 2: its 6 values (a already listed)
    assert len(parts) == 6 + 2 + 6
    assert parts[6] == explanations[0]["parameters"][0] and parts[7] == explanations[0]["parameters"][1]
    assert [p for p in parts if isinstance(p, dict)] == explanations[0]["parameters"]
    assert text_tokens(parts) == text_tokens(explanations)
    assert {"PAT-1", "PAT-2", "PAT-3", "PAT-4", "m", "a", "b"} <= text_tokens(parts)


def test_shared_fingerprint_and_parameters_json_are_computed_once_per_list_of_versions():
    a, b = _version("m.a", 100), _version("m.b", 250)
    known: dict = {}
    one, two = Explanation("s", "f", parameters=(a, b)), Explanation("t", "g", parameters=(a, b))
    values = one.to_dict()
    scrubbed = {"parameters": [{"id": "PSN-1"}]}  # what the scrubber made of them
    first = _shared(known, one, values, scrubbed)
    expected = (  # value: "1,00 €" with a no-break space
        '[{"confidence":"SEED","contract_id":null,"end":null,"id":"m.a@2013-01-01","illustrative":false,'
        '"name":"m.a","reference":"Fiche 5","start":"2013-01-01","unit":"EUR","value":"1,00\u00a0€"},'
        '{"confidence":"SEED","contract_id":null,"end":null,"id":"m.b@2013-01-01","illustrative":false,'
        '"name":"m.b","reference":"Fiche 5","start":"2013-01-01","unit":"EUR","value":"2,50\u00a0€"}]'
    )
    assert first == (hashlib.sha256(expected.encode()).hexdigest(), '[{"id":"PSN-1"}]')
    assert first[0] == parameter_fingerprint(values["parameters"])
    assert _shared(known, two, {"parameters": []}, {"parameters": []}) == first  # found by the versions' ids
    assert len(known) == 1
    alone = Explanation("u", "h", parameters=(b,))
    assert _shared(known, alone, alone.to_dict(), alone.to_dict())[0] != first[0] and len(known) == 2


def test_explanation_json_splices_the_parameters_json_in_canonical_order():
    explanation = {"summary": "s", "parameters": [{"b": 1, "a": "é"}], "posting": {"kind": "balance"}, "inputs": []}
    text = '{"inputs":[],"parameters":[{"a":"é","b":1}],"posting":{"kind":"balance"},"summary":"s"}'
    assert explanation_json(explanation) == text
    assert explanation_json(explanation, '[{"a":"é","b":1}]') == text
    assert explanation_json({"summary": "s"}, "[]") == '{"summary":"s"}'  # no parameters: nothing spliced
    # the mark found twice (a nested member of the same name): encoded as a whole
    nested = {"parameters": [], "inputs": [{"parameters": 0}]}
    assert explanation_json(nested, '["not used"]') == '{"inputs":[{"parameters":0}],"parameters":[]}'
    quoted = {"parameters": [], "summary": 'x"parameters":0'}
    assert explanation_json(quoted, "[]") == '{"parameters":[],"summary":"x\\"parameters\\":0"}'


def test_rows_are_those_itertuples_gives():
    frame = pd.DataFrame(
        {
            "a": pd.Series(["x", None, "z"], dtype="str"),
            "d": pd.to_datetime(["2013-01-31", "2013-02-28", "2013-03-31"]),
            "n": [1, 2, 3],
            "o": [("t",), None, {"k": 1}],
        }
    )
    rows = _rows(frame, ("a", "d", "n", "o"))
    assert rows[0].a == "x" and rows[0].d.date() == dt.date(2013, 1, 31) and rows[2].n == 3 and rows[2].o == {"k": 1}
    assert [tuple(r) for r in rows][::2] == [
        ("x", pd.Timestamp("2013-01-31"), 1, ("t",)),
        ("z", pd.Timestamp("2013-03-31"), 3, {"k": 1}),
    ]
    assert rows[1][1:] == (pd.Timestamp("2013-02-28"), 2, None)
    assert pd.isna(rows[1].a) and _rows(frame.iloc[:0], ("a", "n")) == []


def test_file_digest_is_the_sha256_of_the_content(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"abc")
    assert file_digest(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    path.write_bytes(b"x" * 1_000_000)  # several blocks
    assert file_digest(path) == hashlib.sha256(b"x" * 1_000_000).hexdigest()


def test_json_encoders_write_what_json_dumps_writes():
    value = {"b": [1, 2.5, None, True], "a": 'é "q"\n', "c": {"z": (), "y": {}}}
    assert json_encoder(sort_keys=True)(value) == '{"a":"é \\"q\\"\\n","b":[1,2.5,null,true],"c":{"y":{},"z":[]}}'
    assert json_encoder(sort_keys=False)(value) == '{"b":[1,2.5,null,true],"a":"é \\"q\\"\\n","c":{"z":[],"y":{}}}'
    assert canonical_json(["E", 0, -5]) == '["E",0,-5]' and canonical_json("x") == '"x"'
    with pytest.raises(TypeError, match="not JSON serializable"):
        canonical_json({"d": dt.date(2013, 1, 1)})


@pytest.mark.parametrize("entry_format", [FORMAT_COLUMNS, FORMAT_RECORD])
def test_seal_fields_seals_as_seal_entries_each_entry_built_once(entry_format):
    common = {"run_id": "20130115-abc", "business_date": dt.date(2013, 1, 15), "recorded_at": "2013-01-15T10:00:00"}
    fields = [
        {
            "entry_id": f"E-{i}",
            "contract_id": "C",
            "module": "m",
            "period_id": "C-2012",
            "component": "forfait",
            "payee_id": "C",
            "instalment": "unique",
            "kind": "balance",
            "amount_cents": 100 * i,
            "due_date": dt.date(2012, 12, 31),
            "label": "Forfait é",
            "input_fingerprint": "i",
            "parameter_fingerprint": "p",
            "plugin": "essai",
            "plugin_version": "1",
            "explanation": '{"s":"é"}',
            "corrects": ("E-0",) if i else (),
            **common,
        }
        for i in range(3)
    ]
    sealed = seal_fields(fields, 5, "f" * 64, entry_format)
    expected = seal_entries([Entry(seq=0, **f) for f in fields], 5, "f" * 64, entry_format)
    assert sealed == expected and [e.record for e in sealed] == [e.record for e in expected]
    assert [e.seq for e in sealed] == [5, 6, 7] and sealed[0].prev_hash == "f" * 64
    assert [e.prev_hash for e in sealed[1:]] == [e.hash for e in sealed[:-1]]
    assert bool(sealed[0].record) == (entry_format == FORMAT_RECORD)
    if entry_format == FORMAT_RECORD:
        fields_text, _, explanation = zlib.decompress(sealed[1].record).partition(b"\n")
        assert explanation == '{"s":"é"}'.encode() and fields_text.startswith(
            b'["C","m","forfait","C","unique","2012-12-31"'
        )
        assert fields_text.endswith(b',"essai","1",["E-0"]]')


def test_contract_digest_reads_the_file_once_and_keeps_only_events_known_that_day(tmp_path):
    plain = tmp_path / "c.yaml"
    plain.write_text("id: C\n", encoding="utf-8")
    sha = hashlib.sha256(b"id: C\n").hexdigest()
    assert contract_digest(plain, None) == sha == contract_digest(plain, dt.date(2013, 1, 15))
    assert contract_digest(plain, dt.date(2013, 1, 15), lambda path: "cached") == "cached"  # the cache's digest
    dated = tmp_path / "d.yaml"
    dated.write_text("id: C\nhistory:\n- {date: 2013-01-01, recorded_on: 2013-02-01}\n- {date: 2012-12-01}\n")
    expected = hashlib.sha256(b'{"history":[{"date":"2012-12-01"}],"id":"C"}').hexdigest()
    assert contract_digest(dated, dt.date(2013, 1, 15)) == expected
    assert contract_digest(dated, None) == hashlib.sha256(dated.read_bytes()).hexdigest()
