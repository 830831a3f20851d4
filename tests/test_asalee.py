"""Module 3 (coopération Asalée): amounts computed by hand from the rules, and bad inputs.

Default parameters (plugins/asalee/nmr_asalee/parameters/, OPEN and illustrative) in force
from 01/12/2012 to 31/12/2015: 50,000.00 € per nurse FTE and year, 40.00 € per patient for
diabetes and cardiovascular-risk follow-up, 30.00 € for spirometry and cognitive screening,
50.00 € per hour of doctors' concertation; target ratio 1 nurse FTE for 5 GP FTE.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from nmr_engine.engine import Workspace
from nmr_engine.errors import InputError

CID = "ENMR-TEST-ASALEE"
NURSE = ["INF1", "infirmier", "1", "2012-01-01", ""]
FIVE_GPS = [[f"MED{k}", "medecin", "1", "2010-01-01", ""] for k in range(1, 6)]


def contract() -> str:
    return textwrap.dedent(
        f"""\
        id: {CID}
        structure: {{finess: "590000025", name: MSP de Denain (test), kind: MSP, territory: Test}}
        parties: {{ars: ARS test, caisse: CPAM test}}
        signed_on: 2011-12-01
        start: 2012-01-01
        end: 2016-12-31
        periods: {{anchor: "01-01"}}
        modules:
          - {{code: asalee, payee: asalee}}
        payees:
          - {{id: asalee, name: Association Asalée}}
        """
    )


def write_csv(path: Path, header: list[str], rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [";".join(header)] + [";".join(str(x) for x in [CID, *r]) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def workspace(tmp_path: Path, *, staff=(NURSE, *FIVE_GPS), followed=(), concertation=()) -> Workspace:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "denain.yaml").write_text(contract(), encoding="utf-8")
    base = tmp_path / "data" / "asalee"
    write_csv(base / "staff.csv", ["contract_id", "person_id", "role", "fte", "present_from", "present_to"], staff)
    write_csv(base / "followed_patients.csv", ["contract_id", "patient_id", "act", "followed_on"], followed)
    write_csv(base / "concertation.csv", ["contract_id", "doctor_id", "session_date", "minutes"], concertation)
    return Workspace(tmp_path / "contracts", tmp_path / "data", run_date=dt.date(2017, 1, 1))


def lines_of(ws: Workspace, period: str) -> pd.DataFrame:
    return ws.calculate([period], ["asalee"]).lines.set_index("component")


VALIDITY = (
    "le protocole Asalée n'est financé que du 01/12/2012 au 31/12/2015 "
    "(paramètre asalee.nurse.amount_per_fte non en vigueur à ces dates)"
)


# -- validity dates ------------------------------------------------------------------------------
def test_before_the_protocol_opens_nothing_is_paid(tmp_path):
    ws = workspace(tmp_path)
    lines = lines_of(ws, "2012")
    # 2012: only December is financed: 50 000.00 € × 1 FTE × 31/366 = 5 000 000 × 31 / 366 cents
    # = 423 497.27 -> 4 234.97 €
    assert int(lines.loc["temps_infirmier", "amount_cents"]) == 423497
    # January to November (335 days) pay nothing, and the line says why
    outside = lines.loc["temps_infirmier_hors_validite"]
    assert int(outside["amount_cents"]) == 0
    assert outside["explanation"].reason == VALIDITY


def test_inside_the_validity_dates_and_the_derogatory_year(tmp_path):
    ws = workspace(tmp_path)
    # a full year at 1 FTE: 50 000.00 € × 365/365
    assert int(lines_of(ws, "2013").loc["temps_infirmier", "amount_cents"]) == 5_000_000
    lines_2015 = lines_of(ws, "2015")
    assert int(lines_2015.loc["temps_infirmier", "amount_cents"]) == 5_000_000
    assert lines_2015.loc["temps_infirmier", "explanation"].parameters[0].start == dt.date(2015, 1, 1)


def test_after_the_validity_dates_nothing_is_paid(tmp_path):
    ws = workspace(
        tmp_path,
        followed=[["P1", "suivi_diabete_type2", "2016-03-01"]],
        concertation=[["MED1", "2016-03-01", 60]],
    )
    lines = lines_of(ws, "2016")
    assert int(lines["amount_cents"].sum()) == 0
    assert sorted(lines.index) == ["concertation_hors_validite", "suivi_hors_validite", "temps_infirmier_hors_validite"]
    assert lines.loc["temps_infirmier_hors_validite", "explanation"].reason == VALIDITY
    assert lines.loc["suivi_hors_validite", "explanation"].reason == VALIDITY.replace(
        "nurse.amount_per_fte", "patient.amounts"
    )


def test_a_period_without_nurse_time_says_so(tmp_path):
    ws = workspace(tmp_path, staff=FIVE_GPS)
    line = lines_of(ws, "2013").loc["temps_infirmier"]
    assert int(line["amount_cents"]) == 0
    assert line["explanation"].reason == "aucun temps d'infirmier Asalée déclaré dans la période (staff.csv)"


# -- patients, concertation, FTE over intervals ----------------------------------------------------
def test_patients_followed_per_delegated_act(tmp_path):
    followed = [
        ["P1", "suivi_diabete_type2", "2013-02-01"],
        ["P1", "suivi_diabete_type2", "2013-05-01"],  # same patient and act: counted once in the period
        ["P2", "suivi_diabete_type2", "2013-03-01"],
        ["P1", "suivi_risque_cardiovasculaire", "2013-02-01"],  # another act: counted for that act
        ["P3", "spirometrie_bpco_tabagique", "2013-04-01"],
        ["P4", "depistage_troubles_cognitifs", "2013-04-01"],
        ["P5", "depistage_troubles_cognitifs", "2013-06-01"],
    ]
    lines = lines_of(workspace(tmp_path, followed=followed), "2013")
    assert int(lines.loc["suivi_suivi_diabete_type2", "amount_cents"]) == 8000  # 2 patients × 40.00 €
    assert int(lines.loc["suivi_suivi_diabete_type2", "quantity"]) == 2
    assert int(lines.loc["suivi_suivi_risque_cardiovasculaire", "amount_cents"]) == 4000  # 1 × 40.00 €
    assert int(lines.loc["suivi_spirometrie_bpco_tabagique", "amount_cents"]) == 3000  # 1 × 30.00 €
    assert int(lines.loc["suivi_depistage_troubles_cognitifs", "amount_cents"]) == 6000  # 2 × 30.00 €


def test_concertation_minutes_rounded_once(tmp_path):
    concertation = [["MED1", "2013-02-01", 45], ["MED2", "2013-02-01", 62], ["MED1", "2013-03-01", 0]]
    line = lines_of(workspace(tmp_path, concertation=concertation), "2013").loc["concertation"]
    # (45 + 62 + 0) = 107 min × 50.00 €/h / 60 = 5 350 / 60 € = 89.1666 € -> 89.17 €
    assert int(line["amount_cents"]) == 8917
    assert line["explanation"].formula == "(107 min × 50,00\u00a0€/h) / 60 = 89,17\u00a0€"


def test_nurse_fte_changing_during_the_year(tmp_path):
    staff = [
        ["INF1", "infirmier", "0,8", "2013-01-01", "2013-06-30"],  # 0.8 × 181 days
        ["INF1", "infirmier", "1", "2013-07-01", ""],  # 1 × 184 days
        *FIVE_GPS,
    ]
    line = lines_of(workspace(tmp_path, staff=staff), "2013").loc["temps_infirmier"]
    # (0.8 × 181 + 184) / 365 × 50 000.00 € = 328.8 / 365 × 5 000 000 cents = 4 504 109.59 -> 45 041.10 €
    assert int(line["amount_cents"]) == 4504110
    assert line["explanation"].warnings == ()  # 0.9008 nurse FTE × 5 = 4.504 ≤ 5 GP FTE


# -- payee and ratio ------------------------------------------------------------------------------
def test_lines_are_paid_to_the_asalee_association(tmp_path):
    ws = workspace(
        tmp_path,
        followed=[["P1", "suivi_diabete_type2", "2013-02-01"]],
        concertation=[["MED1", "2013-02-01", 60]],
    )
    lines = ws.calculate(["2013"], ["asalee"]).lines
    assert len(lines) == 3
    assert set(lines["payee_id"]) == {"asalee"}
    assert ws.contract(CID).payee("asalee").name == "Association Asalée"


def test_nurse_gp_ratio_is_a_warning_not_a_refusal(tmp_path):
    three_gps = FIVE_GPS[:3]
    line = lines_of(workspace(tmp_path, staff=[NURSE, *three_gps]), "2013").loc["temps_infirmier"]
    assert int(line["amount_cents"]) == 5_000_000  # still paid in full
    assert line["explanation"].warnings == (
        "ratio du protocole non respecté : 1,000 ETP d'infirmier pour 3,000 ETP de médecin généraliste en moyenne "
        "sur la période ; la cible est 1 ETP d'infirmier pour 5 ETP de médecin (il faudrait au moins 5,000 ETP "
        "de médecin)",
    )
    assert "Avertissement : ratio du protocole non respecté" in line["explanation"].render()


# -- bad inputs ------------------------------------------------------------------------------------
def problems_of(ws: Workspace) -> list[str]:
    with pytest.raises(InputError) as err:
        ws.calculate(["2013"], ["asalee"])
    return [str(p) for p in err.value.problems]


def test_negative_fte_is_refused(tmp_path):
    problems = problems_of(workspace(tmp_path, staff=[["INF1", "infirmier", "-0,5", "2013-01-01", ""], *FIVE_GPS]))
    file = tmp_path / "data" / "asalee" / "staff.csv"
    assert problems == [
        f"{file}, ligne 2, champ « fte » : ETP négatif « -0,5 » : un temps de travail est positif ou nul"
    ]


def test_unknown_delegated_act_is_refused(tmp_path):
    problems = problems_of(workspace(tmp_path, followed=[["P1", "vaccination", "2013-02-01"]]))
    file = tmp_path / "data" / "asalee" / "followed_patients.csv"
    assert problems == [
        f"{file}, ligne 2, champ « act » : valeur « vaccination » inattendue ; attendu l'une de : "
        "suivi_diabete_type2, suivi_risque_cardiovasculaire, spirometrie_bpco_tabagique, depistage_troubles_cognitifs"
    ]


def test_overlapping_intervals_bad_fte_and_unknown_doctor_are_all_reported(tmp_path):
    staff = [
        ["INF1", "infirmier", "0.5", "2012-01-01", "2013-12-31"],
        ["INF1", "infirmier", "1", "2013-06-01", ""],  # overlaps the line above
        ["MED1", "medecin", "un", "2010-01-01", ""],
    ]
    problems = problems_of(workspace(tmp_path, staff=staff, concertation=[["MED9", "2013-02-01", 30]]))
    base = tmp_path / "data" / "asalee"
    assert problems == [
        f"{base / 'staff.csv'}, ligne 4, champ « fte » : ETP attendu en nombre décimal (au plus 6 décimales, "
        "ex. 0,5), reçu « un »",
        f"{base / 'staff.csv'}, ligne 3, champ « present_from » : l'intervalle de présence de INF1 commençant le "
        "01/06/2013 chevauche celui de la ligne 2",
        f"{base / 'concertation.csv'}, ligne 2, champ « doctor_id » : médecin « MED9 » absent de staff.csv "
        f"(rôle medecin) pour le contrat {CID}",
    ]


@pytest.mark.parametrize("name", ["nurse.amount_per_fte", "patient.amounts", "concertation.amount_per_hour"])
def test_every_quarter_of_the_validity_range_is_covered(tmp_path, name):
    """Catala-style coverage: in force on every quarter from December 2012 to December 2015, never outside."""
    ws = workspace(tmp_path)
    full = f"asalee.{name}"
    for year in range(2011, 2018):
        for month in (1, 4, 7, 10, 12):
            day = dt.date(year, month, 1)
            version = ws.parameters.at(full, day)
            in_force = version is not None and version.in_force
            assert in_force == (dt.date(2012, 12, 1) <= day <= dt.date(2015, 12, 31)), (full, day)
            if in_force:
                assert version.confidence == "OPEN" and version.illustrative


def test_a_suspension_pays_no_nurse_time(tmp_path):
    ws = workspace(tmp_path)
    path = tmp_path / "contracts" / "denain.yaml"
    path.write_text(
        path.read_text(encoding="utf-8")
        + textwrap.dedent("""\
        history:
          - {date: 2013-04-01, recorded_on: 2013-03-20, event: suspension, until: 2013-06-30, reference: test}
        """),
        encoding="utf-8",
    )
    ws = Workspace(tmp_path / "contracts", tmp_path / "data", run_date=dt.date(2017, 1, 1))
    # 2013: 91 days suspended (April–June): 50 000.00 € × 1 FTE × 274/365 = 5 000 000 × 274 / 365
    # = 3 753 424.66 -> 37 534.25 €
    assert int(lines_of(ws, "2013").loc["temps_infirmier", "amount_cents"]) == 3753425
