"""Guards for the performance work: results and error messages must not move.

The golden file holds the full ``nmr calculate --module etp --json`` output of the bundled
example for 2012 and 2013 (lines, amounts and explanations) as computed before any
optimisation of the reader and of the ETP rules.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.engine import Workspace
from nmr_engine.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "data" / "etp_example_2012_2013.json"


def _calculate_json(monkeypatch, *args: str) -> dict:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["calculate", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_example_total_unchanged(monkeypatch):
    out = _calculate_json(monkeypatch, "--period", "2012", "--period", "2013", "--module", "etp")
    # 91,050.00 € = the figure printed by the foundation commit for the bundled example.
    assert out["total_eur"] == "91050.00"
    assert out["total_cents"] == 9_105_000
    assert sum(line["amount_cents"] for line in out["lines"]) == 9_105_000


def test_example_lines_and_explanations_unchanged(monkeypatch):
    out = _calculate_json(monkeypatch, "--period", "2012", "--period", "2013", "--module", "etp")
    # Parameter sources are absolute paths: the golden file holds them under <ROOT>/.
    out = json.loads(json.dumps(out).replace(f"{ROOT}/", "<ROOT>/"))
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len(out["lines"]) == len(golden["lines"]) == 65
    for got, want in zip(out["lines"], golden["lines"], strict=True):
        assert got == want


def _broken_workspace(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "etp", data / "etp")
    sessions = data / "etp" / "sessions.csv"
    rows = sessions.read_text(encoding="utf-8").splitlines()
    # line 3: bad date; line 4: bad kind; line 5: unknown contract; line 6: empty patient
    rows[2] = rows[2].replace("2012-02-12", "2012-13-45")
    rows[3] = rows[3].replace(";seance", ";atelier")
    rows[4] = rows[4].replace("ENMR-NPDC-ANICHE", "ENMR-INCONNU")
    parts = rows[5].split(";")
    parts[2] = ""
    rows[5] = ";".join(parts)
    sessions.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


def test_input_errors_name_file_line_and_field(tmp_path):
    data = _broken_workspace(tmp_path)
    ws = Workspace(ROOT / "contracts", data)
    with pytest.raises(InputError) as info:
        ws.calculate(["2012"], ["etp"])
    got = [(Path(p.file).name, p.line, p.field, p.message) for p in info.value.problems]
    assert got == [
        ("sessions.csv", 6, "patient_id", "valeur obligatoire manquante"),
        ("sessions.csv", 3, "session_date", "date attendue au format AAAA-MM-JJ, reçu « 2012-13-45 »"),
        ("sessions.csv", 4, "kind", "valeur « atelier » inattendue ; attendu l'une de : diagnostic, seance"),
        (
            "sessions.csv",
            5,
            "contract_id",
            "contrat inconnu « ENMR-INCONNU » (absent du dossier des contrats)",
        ),
    ]


def test_reader_messages_for_every_column_type(tmp_path):
    from nmr_engine.inputs.reader import read_table
    from nmr_engine.plugin import Column, TableSpec

    spec = TableSpec(
        name="t",
        columns=(
            Column("contract_id", "str"),
            Column("n", "int", min=0),
            Column("m", "money"),
            Column("b", "bool"),
            Column("d", "date", required=False),
        ),
        unique=("contract_id", "n"),
    )
    path = tmp_path / "t.csv"
    path.write_text(
        "contract_id;n;m;b;d\n"
        "C1;1;12,5;oui;2012-01-01\n"  # line 2: fine
        "C1;x;12.345;peut-être;01/02/2012\n"  # line 3: bad int, money, bool, date
        "C1;-2;3;non;\n"  # line 4: below the minimum
        "C1;1;-4.05;0;\n",  # line 5: duplicate of line 2
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        read_table(path, spec, {"C1"})
    got = [(p.line, p.field, p.message) for p in info.value.problems]
    assert got == [
        (3, "n", "nombre entier attendu, reçu « x »"),
        (4, "n", "valeur -2 inférieure au minimum autorisé (0)"),
        (3, "m", "montant attendu en euros (au plus deux décimales), reçu « 12.345 »"),
        (3, "b", "booléen attendu (oui/non, 1/0), reçu « peut-être »"),
        (3, "d", "date attendue au format AAAA-MM-JJ, reçu « 01/02/2012 »"),
        (5, "contract_id,n", "ligne en double (même contract_id, n que la ligne 2)"),
    ]
    path.write_text("contract_id;n;m;b;d\nC1;1;12,5;oui;2012-01-01\nC2;2;-4.05;0;\n", encoding="utf-8")
    frame = read_table(path, spec, {"C1", "C2"})
    # 12,5 € = 1250 cents; -4.05 € = -405 cents
    assert frame["m"].tolist() == [1250, -405]
    assert frame["n"].tolist() == [1, 2]
    assert frame["b"].tolist() == [True, False]
    assert frame["_line"].tolist() == [2, 3]


@pytest.mark.parametrize(
    "text",
    [
        "contract_id;title\nC1; a \nC2;b\n",  # plain: pyarrow fast path
        'contract_id;title\nC1;"a;b"\nC2;"x ""y"""\n',  # quotes: pandas C parser
        "\ufeffcontract_id;title\nC1;a\n",  # BOM: pandas C parser
        "contract_id,title\r\nC1,a\r\nC2,\r\n",  # comma and CRLF
        "contract_id;title;\nC1;a;\n",  # empty header name: pandas C parser ("Unnamed: 2")
        "contract_id;title\rC1;a\rC2;b\r",  # CR line ends
        "contract_id;title\n\nC1;\ta\t\n\nC2;b\n",  # blank lines, tabs
    ],
)
def test_fast_and_reference_csv_paths_read_the_same(tmp_path, text):
    import csv

    import pandas as pd

    from nmr_engine.inputs.reader import _read_fast, _sniff_separator, read_table
    from nmr_engine.plugin import Column, TableSpec

    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    reference = pd.read_csv(
        path, sep=_sniff_separator(path), dtype=str, keep_default_na=False, encoding="utf-8", quoting=csv.QUOTE_MINIMAL
    )
    fast = _read_fast(path)
    if fast is not None:
        pd.testing.assert_frame_equal(fast, reference)
    spec = TableSpec("t", (Column("contract_id", "str"), Column("title", "str", required=False)))
    frame = read_table(path, spec)
    assert frame["contract_id"].tolist() == reference["contract_id"].str.strip().tolist()
    assert frame["title"].tolist() == reference["title"].str.strip().tolist()


def test_bad_utf8_and_ragged_rows_keep_their_messages(tmp_path):
    from nmr_engine.inputs.reader import read_table
    from nmr_engine.plugin import Column, TableSpec

    spec = TableSpec("t", (Column("contract_id", "str"), Column("title", "str")))
    path = tmp_path / "t.csv"
    path.write_bytes(b"contract_id;title\nC1;a\nC2;caf\xe9\n")
    with pytest.raises(InputError) as info:
        read_table(path, spec)
    problem = info.value.problems[0]
    # same message as the foundation code (pandas C parser), the fast path having declined
    assert (problem.line, problem.message) == (3, "le fichier n'est pas encodé en UTF-8 (unexpected end of data)")
    path.write_text("contract_id;title\nC1;a\nC2;a;b;c\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_table(path, spec)
    message = info.value.problems[0].message
    assert message.startswith("CSV illisible : Error tokenizing data. C error: Expected 2 fields in line 3, saw 4")
