"""Data submissions: record received files with their fingerprint, check them, read them as known."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil

import pytest
from click.testing import CliRunner

from nmr_engine.cli.main import cli
from nmr_engine.errors import InputError
from nmr_engine.inputs.submissions import (
    REGISTER,
    DataView,
    check_submissions,
    load_register,
    record_submission,
)

from . import histcase as h

D = dt.date.fromisoformat


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture
def case(tmp_path):
    h.build(tmp_path)
    return tmp_path


def test_register_lists_versions_with_fingerprints(case):
    data = case / "data"
    subs = load_register(data)
    assert [(s.file, s.received_on) for s in subs] == [
        ("etp/programmes.csv", D("2011-02-01")),
        ("etp/structuring.csv", D("2011-04-01")),
        ("etp/trainings.csv", D("2013-01-10")),
        ("etp/trainings.csv", D("2013-05-15")),
        ("etp/sessions.csv", D("2013-07-20")),
    ]
    v1, v2 = subs[2], subs[3]
    assert v1.sha256 == sha(h.TRAININGS_V1) and v1.supersedes is None
    assert v2.sha256 == sha(h.TRAININGS_V2) and v2.supersedes == v1.sha256
    assert v2.note == "Formation de novembre 2012 oubliée"
    # Each version is kept as received, named by its date and fingerprint.
    assert v1.history_path(data).read_text(encoding="utf-8") == h.TRAININGS_V1
    assert v1.history_path(data).name == f"trainings.2013-01-10.{v1.sha256[:12]}.csv"
    assert check_submissions(data) == []


def test_recording_the_same_content_again_does_nothing(case):
    data = case / "data"
    before = (data / REGISTER).read_text(encoding="utf-8")
    assert record_submission(data, data / "etp" / "trainings.csv", D("2013-06-01")) is None
    assert (data / REGISTER).read_text(encoding="utf-8") == before


def test_changed_file_not_recorded_is_named(case):
    data = case / "data"
    path = data / "etp" / "trainings.csv"
    path.write_text(h.TRAININGS_V2 + "TEST-ETP;RPPS-4;2012-12-01;Formation D\n", encoding="utf-8")
    (problem,) = check_submissions(data)
    assert problem.file == str(path)
    assert problem.message.startswith(
        f"le fichier a changé depuis sa réception du 15/05/2013 sans être enregistré "
        f"(empreinte attendue {sha(h.TRAININGS_V2)[:12]}…, trouvée "
    )
    # The CLI fails with the same message and a non-zero exit code.
    result = CliRunner().invoke(cli, ["data", "check", "--data", str(data)])
    assert result.exit_code != 0
    assert "sans être enregistré" in str(result.exception)
    # Recording it makes the register whole again.
    result = CliRunner().invoke(
        cli, ["data", "record", str(path), "--data", str(data), "--received-on", "2013-06-02", "--note", "ajout"]
    )
    assert result.exit_code == 0, result.output
    assert "reçu le 02/06/2013" in result.output and f"remplace la version {sha(h.TRAININGS_V2)[:12]}" in result.output
    assert check_submissions(data) == []
    result = CliRunner().invoke(cli, ["data", "check", "--data", str(data)])
    assert result.exit_code == 0
    assert "4 fichier(s), 6 version(s) reçue(s)" in result.output


def test_unregistered_and_missing_files_are_named(case):
    data = case / "data"
    (data / "etp" / "extra.csv").write_text("a;b\n", encoding="utf-8")
    (data / "etp" / "sessions.csv").unlink()
    messages = {p.file.replace(str(data), "data"): p.message for p in check_submissions(data)}
    assert messages == {
        "data/etp/sessions.csv": "fichier enregistré le 20/07/2013 introuvable",
        "data/etp/extra.csv": "fichier de données absent du registre des réceptions (nmr data record)",
    }


def test_altered_history_copy_fails_check_and_replay(case):
    data = case / "data"
    v1 = load_register(data)[2]
    copy = v1.history_path(data)
    copy.write_text(h.TRAININGS_V1.replace("2012-03-10", "2012-03-11"), encoding="utf-8")
    (problem,) = check_submissions(data)
    assert problem.file == str(copy)
    assert problem.message.startswith("copie altérée : son empreinte ne correspond plus à celle enregistrée")
    # Reading the data as known on a date that uses this version fails and names the copy.
    with pytest.raises(InputError) as err:
        h.workspace(case, "2013-02-01").calculate(["2012"])
    assert err.value.problems[0].file == str(copy)
    assert "submissions.yaml, ligne 10)" in err.value.problems[0].message  # the register entry of that version
    # A date that reads the later version is not affected.
    assert h.amounts(h.workspace(case, "2013-06-01").calculate(["2012"]))[("etp", "formation")] == 340000


def test_received_on_must_not_go_back(case):
    data = case / "data"
    path = data / "etp" / "trainings.csv"
    path.write_text(h.TRAININGS_V1, encoding="utf-8")
    with pytest.raises(InputError) as err:
        record_submission(data, path, D("2013-05-01"))
    assert str(err.value) == (
        f"{path}, champ « --received-on » : date de réception 01/05/2013 antérieure à celle de la version "
        "enregistrée (reçue le 15/05/2013)"
    )


def test_file_outside_data_folder_is_refused(case, tmp_path_factory):
    other = tmp_path_factory.mktemp("other") / "x.csv"
    other.write_text("a\n", encoding="utf-8")
    with pytest.raises(InputError, match="doit se trouver dans le dossier des données"):
        record_submission(case / "data", other, D("2013-01-01"))


def test_data_view_picks_the_version_known_on_a_date(case):
    data = case / "data"
    path, label, _ = DataView.open(data, D("2013-05-14")).locate("etp/trainings.csv")
    assert path.read_text(encoding="utf-8") == h.TRAININGS_V1
    assert label == f"{data}/etp/trainings.csv (version reçue le 10/01/2013)"
    path, label, _ = DataView.open(data, D("2013-05-15")).locate("etp/trainings.csv")
    assert path.read_text(encoding="utf-8") == h.TRAININGS_V2
    # Not yet received: read as empty.
    path, label, _ = DataView.open(data, D("2013-01-09")).locate("etp/trainings.csv")
    assert path is None and label.endswith("(pas encore reçu le 09/01/2013)")
    # Without a date: the working file, with a warning if it changed unrecorded.
    (data / "etp" / "trainings.csv").write_text(h.TRAININGS_V1, encoding="utf-8")
    path, _, warnings = DataView.open(data).locate("etp/trainings.csv")
    assert path == data / "etp" / "trainings.csv"
    assert warnings == [f"{path} a changé depuis sa réception du 15/05/2013 sans être enregistré (nmr data check)"]


def test_bad_register_entries_are_located(case):
    data = case / "data"
    register = data / REGISTER
    register.write_text(
        "submissions:\n"
        "  - file: etp/a.csv\n"  # line 2
        "    received_on: 2013-02-30\n"
        "    sha256: abc\n"
        "  - file: ../etc/passwd\n"  # line 5
        f'    received_on: 2013-01-01\n    sha256: "{"0" * 64}"\n'
        f'  - file: etp/b.csv\n    received_on: 2013-01-01\n    sha256: "{"1" * 64}"\n    color: red\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError) as err:
        load_register(data)
    assert [str(p).replace(str(data), "data") for p in err.value.problems] == [
        "data/submissions.yaml, ligne 3, champ « submissions[0].received_on » : date de réception attendue au "
        "format AAAA-MM-JJ, reçu '2013-02-30'",
        "data/submissions.yaml, ligne 4, champ « submissions[0].sha256 » : empreinte sha256 attendue "
        "(64 caractères hexadécimaux), reçu 'abc'",
        "data/submissions.yaml, ligne 5, champ « submissions[1].file » : chemin relatif au dossier des données "
        "attendu, reçu '../etc/passwd'",
        "data/submissions.yaml, ligne 11, champ « submissions[2].color » : champ inconnu ; champs admis : file, "
        "received_on, sha256, supersedes, note",
    ]


def test_no_register_reads_working_files(tmp_path):
    # The bundled example's data without its register: known_on changes nothing about the data.
    shutil.copytree(h.ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("submissions.yaml", ".history"))

    def etp_2012(known_on):
        ws = h.Workspace(h.ROOT / "contracts", tmp_path / "data", h.registry(), D("2014-01-01"), known_on)
        return ws.calculate(["2012"], ["etp"]).total_cents

    assert etp_2012(None) == etp_2012(D("2014-01-01")) == 6235000  # 62 350,00 € as without history
