"""Each bad input gets a clear error naming the file, line and field; nothing is computed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.engine import Workspace
from nmr_engine.errors import InputError
from nmr_engine.inputs import read_table
from nmr_engine.plugin import Column, TableSpec

from .conftest import write_contract, write_table

PROGRAMMES = """\
    contract_id;programme_id;title;authorised_from;authorised_to
    C1;P1;Diabète;2012-01-01;2015-12-31
    """
GOOD_SESSIONS = """\
    contract_id;programme_id;patient_id;session_date;kind
    C1;P1;A;2012-09-01;diagnostic
    C1;P1;A;2012-09-02;seance
    """


@pytest.fixture
def dirs(workspace_dirs):
    contracts, data = workspace_dirs
    write_contract(contracts)
    write_table(data, "etp", "programmes", PROGRAMMES)
    write_table(data, "etp", "sessions", GOOD_SESSIONS)
    return workspace_dirs


def problems_of(dirs) -> list[str]:
    with pytest.raises(InputError) as info:
        Workspace(*dirs).calculate(["2012"])
    return [str(p) for p in info.value.problems]


def test_missing_column(dirs):
    _, data = dirs
    write_table(data, "etp", "sessions", "contract_id;programme_id;patient_id;kind\nC1;P1;A;seance\n")
    [msg] = problems_of(dirs)
    assert msg.endswith(
        "sessions.csv, ligne 1, champ « session_date » : colonne obligatoire manquante "
        "(colonnes lues : contract_id, programme_id, patient_id, kind)"
    )


def test_wrong_type(dirs):
    _, data = dirs
    write_table(data, "etp", "sessions", GOOD_SESSIONS + "C1;P1;A;12/09/2012;seance\n")
    [msg] = problems_of(dirs)
    assert (
        "sessions.csv, ligne 4, champ « session_date » : date attendue au format AAAA-MM-JJ, reçu « 12/09/2012 »" in msg
    )


def test_unknown_contract(dirs):
    _, data = dirs
    write_table(data, "etp", "sessions", GOOD_SESSIONS + "C9;P1;A;2012-09-03;seance\n")
    msgs = problems_of(dirs)
    assert any("ligne 4, champ « contract_id » : contrat inconnu « C9 »" in m for m in msgs)


def test_date_outside_any_contract_period(dirs):
    _, data = dirs
    write_table(data, "etp", "sessions", GOOD_SESSIONS + "C1;P1;A;2011-03-01;seance\n")
    [msg] = problems_of(dirs)
    assert "ligne 4, champ « session_date » : date 01/03/2011 hors de toute période du contrat C1" in msg


def test_negative_count_is_refused(tmp_path):
    # ETP has no count column; the generic check is the core's, for any plugin's declared minimum.
    spec = TableSpec("presence", (Column("contract_id", "str"), Column("half_days", "int", min=0)))
    path = tmp_path / "presence.csv"
    path.write_text("contract_id;half_days\nC1;4\nC1;-2\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_table(path, spec)
    assert str(info.value.problems[0]).endswith(
        "presence.csv, ligne 3, champ « half_days » : valeur -2 inférieure au minimum autorisé (0)"
    )


def test_duplicate_session_rows(dirs):
    _, data = dirs
    write_table(data, "etp", "sessions", GOOD_SESSIONS + "C1;P1;A;2012-09-02;seance\n")
    [msg] = problems_of(dirs)
    assert "ligne 4" in msg and "ligne en double" in msg and "que la ligne 3" in msg


def test_unknown_module_in_a_contract(workspace_dirs):
    contracts, data = workspace_dirs
    write_contract(contracts, modules="  - {code: etp}\n  - {code: telepathie}")
    with pytest.raises(InputError) as info:
        Workspace(contracts, data)
    [problem] = info.value.problems
    assert problem.line == 17 and problem.field == "modules[1].code"
    assert "module inconnu « telepathie »" in problem.message and "etp" in problem.message


def test_non_utf8_file(dirs):
    _, data = dirs
    path = data / "etp" / "sessions.csv"
    path.write_bytes(GOOD_SESSIONS.replace("    ", "").encode() + "C1;P1;Zoé;2012-09-03;seance\n".encode("latin-1"))
    [msg] = problems_of(dirs)
    assert "sessions.csv, ligne 4 : le fichier n'est pas encodé en UTF-8" in msg


def test_unknown_programme_is_reported_by_the_plugin(dirs):
    _, data = dirs
    write_table(data, "etp", "sessions", GOOD_SESSIONS + "C1;P7;A;2012-09-03;seance\n")
    [msg] = problems_of(dirs)
    assert "ligne 4, champ « programme_id » : programme « P7 » non déclaré" in msg


def test_all_problems_are_reported_at_once(dirs):
    _, data = dirs
    write_table(data, "etp", "sessions", GOOD_SESSIONS + "C1;P1;A;2012-13-01;seance\nC1;P1;;2012-09-05;cours\n")
    msgs = problems_of(dirs)
    assert len(msgs) == 3  # bad date, missing patient, unknown kind
    assert any("champ « kind » : valeur « cours » inattendue" in m for m in msgs)


def test_bad_contract_file_names_file_line_and_field(workspace_dirs):
    contracts, data = workspace_dirs
    write_contract(contracts, start="2012-07-01", end="2011-06-30")
    with pytest.raises(InputError) as info:
        Workspace(contracts, data)
    text = str(info.value)
    assert "c1.yaml, ligne 12, champ « end » : la fin du contrat (2011-06-30) précède son début" in text


def test_cli_reports_errors_and_prints_no_line(dirs):
    contracts, data = dirs
    write_table(data, "etp", "sessions", GOOD_SESSIONS + "C9;P1;A;2012-09-03;seance\n")
    result = CliRunner().invoke(cli, ["calculate", "--contracts", str(contracts), "--data", str(data), "--json"])
    assert isinstance(result.exception, InputError)
    assert "lines" not in result.output  # nothing half-computed is printed
