"""Module 1 (missions coordonnées): amounts computed by hand from the rules, and bad inputs.

Each test builds a small workspace (one contract file, the module's CSV files) in tmp_path.
Default parameters used below (plugins/coordination/nmr_coordination/parameters/): class 1
(0–1,999 patients) pays 5.00 € per patient and 2,500.00 € per FTE; 1 FTE = 11 half-days;
20 % of A + B modulated by objectives (linear scoring); parts A and B paid 80 % at the start of
the period, 20 % three months later.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from nmr_engine.engine import Workspace
from nmr_engine.errors import InputError

CID = "ENMR-TEST-COORD"

#: 2 GPs and 1 paramedical, 11 half-days each over the whole of 2012–2014: 3 FTE.
THREE_FTE = [
    ["G1", "generaliste", 11, "2012-01-01", ""],
    ["G2", "generaliste", 11, "2012-01-01", ""],
    ["P1", "paramedical", 11, "2012-01-01", ""],
]
NO_MODULATION = """
  coordination.objectives.share_at_stake:
    - {start: 2010-01-01, value: "0 %", reference: "test : pas de modulation"}
"""


def contract(start="2012-01-01", end="2014-12-31", module_start=None, parameters: str = "") -> str:
    module = f"{{code: coordination, start: {module_start}}}" if module_start else "{code: coordination}"
    text = textwrap.dedent(
        f"""\
        id: {CID}
        structure: {{finess: "590000017", name: MSP de test, kind: MSP, territory: Test}}
        parties: {{ars: ARS test, caisse: CPAM test}}
        signed_on: 2011-12-01
        start: {start}
        end: {end}
        periods: {{anchor: "01-01"}}
        modules:
          - {module}
        """
    )
    if parameters:
        text += "parameters:" + parameters
    return text


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [";".join(header)] + [";".join(str(x) for x in [CID, *r]) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def workspace(
    tmp_path: Path,
    *,
    professionals=THREE_FTE,
    patients=(),
    consultations=(),
    objectives=(),
    **contract_args,
) -> Workspace:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "test.yaml").write_text(contract(**contract_args), encoding="utf-8")
    base = tmp_path / "data" / "coordination"
    write_csv(
        base / "professionals.csv",
        ["contract_id", "professional_id", "role", "half_days_per_week", "present_from", "present_to"],
        professionals,
    )
    write_csv(
        base / "patients.csv",
        ["contract_id", "patient_id", "birth_date", "ald", "declared_on", "ended_on"],
        list(patients),
    )
    write_csv(
        base / "child_consultations.csv",
        ["contract_id", "patient_id", "consultation_date", "doctor_id"],
        list(consultations),
    )
    write_csv(
        base / "objectives.csv",
        ["contract_id", "indicator", "measured_on", "achieved", "target", "floor"],
        list(objectives),
    )
    return Workspace(tmp_path / "contracts", tmp_path / "data", run_date=dt.date(2015, 1, 1))


def adults(n: int, *, ald: str = "non") -> list[list]:
    return [[f"A{i:03d}", "1970-03-15", ald, "2011-06-01", ""] for i in range(n)]


def lines_of(ws: Workspace, period="2013") -> pd.DataFrame:
    lines = ws.calculate([period], ["coordination"]).lines
    return lines.set_index(["component", "instalment"])


def amount(lines: pd.DataFrame, component: str, instalment: str | None = None) -> int:
    rows = lines.loc[component]
    if instalment is not None:
        return int(rows.loc[instalment, "amount_cents"])
    return int(rows["amount_cents"].sum())


# -- size classes ------------------------------------------------------------------------------
SMALL_CLASSES = """
  coordination.size_classes:
    - start: 2010-01-01
      reference: "test : bornes réduites"
      value:
        - {size_class: 1, min_patients: 0, max_patients: 2, patient_amount: "10.00", fte_amount: "100.00"}
        - {size_class: 2, min_patients: 3, max_patients: 4, patient_amount: "9.00", fte_amount: "90.00"}
        - {size_class: 3, min_patients: 5, max_patients: 6, patient_amount: "8.00", fte_amount: "80.00"}
        - {size_class: 4, min_patients: 7, max_patients: 999, patient_amount: "7.00", fte_amount: "70.00"}
"""


@pytest.mark.parametrize(
    ("patients", "part_a", "part_b", "size_class"),
    [
        (2, 2 * 1000, 3 * 10000, 1),  # top of class 1: 2 × 10.00 = 20.00 ; 3 FTE × 100.00 = 300.00
        (3, 3 * 900, 3 * 9000, 2),  # bottom of class 2: 3 × 9.00 = 27.00 ; 3 × 90.00 = 270.00
        (4, 4 * 900, 3 * 9000, 2),  # top of class 2: 4 × 9.00 = 36.00
        (5, 5 * 800, 3 * 8000, 3),  # bottom of class 3: 5 × 8.00 = 40.00 ; 3 × 80.00 = 240.00
        (6, 6 * 800, 3 * 8000, 3),  # top of class 3: 6 × 8.00 = 48.00
        (7, 7 * 700, 3 * 7000, 4),  # bottom of class 4: 7 × 7.00 = 49.00 ; 3 × 70.00 = 210.00
    ],
)
def test_each_class_boundary(tmp_path, patients, part_a, part_b, size_class):
    ws = workspace(tmp_path, patients=adults(patients), parameters=SMALL_CLASSES + NO_MODULATION)
    lines = lines_of(ws)
    assert amount(lines, "part_a_patientele") == part_a
    assert amount(lines, "part_b_temps_professionnels") == part_b
    assert int(lines.loc[("part_a_patientele", "avance"), "quantity"]) == patients
    assert f"classe {size_class}" in lines.loc[("part_a_patientele", "avance"), "explanation"].summary
    assert "modulation_objectifs" not in lines.index.get_level_values(0)  # 0 % at stake: no modulated line


def test_patient_count_is_redone_each_period(tmp_path):
    # 3 patients declared in 2011 (class 2 in 2012), 2 of them leave on 2012-12-31: 1 patient in 2013 (class 1).
    pats = adults(3)
    pats[0][4] = pats[1][4] = "2012-12-31"
    ws = workspace(tmp_path, patients=pats, parameters=SMALL_CLASSES + NO_MODULATION)
    assert amount(lines_of(ws, "2012"), "part_a_patientele") == 3 * 900  # 3 × 9.00
    assert amount(lines_of(ws, "2013"), "part_a_patientele") == 1 * 1000  # 1 × 10.00


# -- the 6–16 rule -----------------------------------------------------------------------------
def test_children_6_to_16_count_after_two_consultations(tmp_path):
    patients = [
        ["ADULT", "1970-01-01", "oui", "2011-01-01", ""],  # adult in ALD: counts
        ["ONE", "2003-05-01", "non", "2011-01-01", ""],  # aged 9 on 2013-01-01, one consultation: does not count
        ["TWO", "2003-05-01", "non", "2011-01-01", ""],  # aged 9, two consultations: counts
        ["BABY", "2010-02-01", "non", "2011-01-01", ""],  # aged 2: under 6, does not count
        ["TEEN", "1996-06-01", "non", "2012-06-01", ""],  # aged 16: own declaration suffices
        ["GONE", "1970-01-01", "non", "2010-01-01", "2012-06-30"],  # declaration ended before 2013
    ]
    consultations = [
        ["ONE", "2013-02-01", "G1"],
        ["TWO", "2013-02-01", "G1"],
        ["TWO", "2013-09-12", "G2"],
        ["ONE", "2012-11-01", "G1"],  # the year before: does not count for 2013
    ]
    ws = workspace(tmp_path, patients=patients, consultations=consultations, parameters=NO_MODULATION)
    lines = lines_of(ws)
    # counted: ADULT, TWO, TEEN = 3 patients × 5.00 € = 15.00 € -> avance 80 % = 12.00 €, solde 3.00 €
    assert amount(lines, "part_a_patientele", "avance") == 1200
    assert amount(lines, "part_a_patientele", "solde") == 300
    inputs = dict(lines.loc[("part_a_patientele", "avance"), "explanation"].inputs)
    assert inputs["patients comptés"].startswith(
        "3 dont 2 ayant déclaré leur médecin traitant (dont 1 en ALD) et 1 enfant"
    )
    assert inputs["patients non comptés"].startswith("1 enfant(s) vus moins de 2 fois, 1 enfant(s) de moins de 6 ans")


# -- FTE from half-days ------------------------------------------------------------------------
def test_fte_from_half_days_is_exact(tmp_path):
    professionals = [
        ["G1", "generaliste", 11, "2012-01-01", ""],  # 11 half-days × 365 days = 4015
        ["G2", "generaliste", 6, "2012-01-01", ""],  # 6 × 365 = 2190
        ["P1", "paramedical", 5, "2013-07-01", ""],  # 5 × 184 days (1 July – 31 December) = 920
        ["X1", "autre", 0, "2012-01-01", ""],  # no half-day: not present
    ]
    ws = workspace(tmp_path, professionals=professionals, parameters=NO_MODULATION)
    lines = lines_of(ws)
    # FTE = 7125 / (11 × 365) = 7125/4015 ; part B = 2 500.00 € × 7125/4015 = 443 648.817 cents -> 4 436.49 €
    assert amount(lines, "part_b_temps_professionnels") == 443649
    # avance 80 % of 443 649 = 354 919.2 -> 354 919 ; solde = 443 649 − 354 919 = 88 730
    assert amount(lines, "part_b_temps_professionnels", "avance") == 354919
    assert amount(lines, "part_b_temps_professionnels", "solde") == 88730
    assert int(lines.loc[("part_b_temps_professionnels", "avance"), "quantity"]) == 3  # three people present
    assert "1,77 ETP" in lines.loc[("part_b_temps_professionnels", "avance"), "explanation"].summary


# -- objectives ----------------------------------------------------------------------------------
ONE_INDICATOR = """
  coordination.objectives.indicators:
    - {start: 2010-01-01, value: [{indicator: depistage_cancers, weight: 1}], reference: "test"}
"""
ALL_OR_NOTHING = """
  coordination.objectives.scoring:
    - {start: 2010-01-01, value: all_or_nothing, reference: "test"}
"""


@pytest.mark.parametrize(
    ("achieved", "scoring", "expected"),
    [
        ("65", "", 150000),  # met (65 ≥ 60): 20 % × 7 500.00 € = 1 500.00 €
        ("30", "", 0),  # missed (30 ≤ floor 40): nothing
        ("50", "", 75000),  # partly met, linear: (50 − 40) / (60 − 40) = 50 % × 1 500.00 € = 750.00 €
        ("45,5", "", 41250),  # linear: 5.5 / 20 = 27.5 % × 1 500.00 € = 412.50 €
        ("50", ALL_OR_NOTHING, 0),  # partly met, all-or-nothing: nothing
        ("60", ALL_OR_NOTHING, 150000),  # exactly the target: met
    ],
)
def test_objective_met_missed_partly_met(tmp_path, achieved, scoring, expected):
    # No patient (part A = 0), 3 FTE × 2 500.00 € = 7 500.00 € before modulation.
    ws = workspace(
        tmp_path,
        objectives=[["depistage_cancers", "2013-11-30", achieved, "60", "40"]],
        parameters=ONE_INDICATOR + scoring,
    )
    lines = lines_of(ws)
    assert amount(lines, "modulation_objectifs", "unique") == expected
    # the fixed 80 % of part B: 6 000.00 € = avance 4 800.00 € + solde 1 200.00 €
    assert amount(lines, "part_b_temps_professionnels", "avance") == 480000
    assert amount(lines, "part_b_temps_professionnels", "solde") == 120000
    explanation = lines.loc[("modulation_objectifs", "unique"), "explanation"]
    if expected == 0:
        assert explanation.reason == "aucun objectif de santé publique atteint dans la période (score nul)"
    else:
        assert explanation.reason is None


def test_weighted_indicators_and_missing_result(tmp_path):
    # Default list: 4 indicators of weight 1. depistage met (1), hypertension half-way from 50 to 70 (1/2),
    # diabete 10 with an empty floor (= 0): 10/65 = 2/13, obesite not reported (0):
    # score = (1 + 1/2 + 2/13 + 0) / 4 = 43/104 ; 150 000 × 43/104 = 62 019.23 cents -> 620.19 €.
    ws = workspace(
        tmp_path,
        objectives=[
            ["depistage_cancers", "2013-12-01", "61", "60", "40"],
            ["hypertension", "2013-12-01", "60", "70", "50"],
            ["diabete", "2013-12-01", "10", "65", ""],
        ],
    )
    lines = lines_of(ws)
    assert amount(lines, "modulation_objectifs") == 62019
    inputs = dict(lines.loc[("modulation_objectifs", "unique"), "explanation"].inputs)
    assert inputs["indicateur obesite (poids 1/4)"] == "résultat non transmis : noté 0"


# -- payment rhythm and pro-rating -------------------------------------------------------------
def test_instalments_80_20_with_due_dates(tmp_path):
    ws = workspace(tmp_path, patients=adults(7), parameters=NO_MODULATION)
    lines = lines_of(ws)
    # part A = 7 × 5.00 € = 35.00 € -> avance 28.00 € due at the period start, solde 7.00 € three months later
    avance, solde = lines.loc[("part_a_patientele", "avance")], lines.loc[("part_a_patientele", "solde")]
    assert (int(avance["amount_cents"]), int(solde["amount_cents"])) == (2800, 700)
    assert avance["due_date"] == pd.Timestamp("2013-01-01")
    assert solde["due_date"] == pd.Timestamp("2013-04-01")


def test_contract_can_set_a_single_payment(tmp_path):
    single = """
  coordination.payment.instalments:
    - {start: 2010-01-01, value: [{instalment: unique, share_percent: 100, months_after_start: 2}], reference: "t"}
"""
    ws = workspace(tmp_path, patients=adults(7), parameters=NO_MODULATION + single)
    lines = lines_of(ws)
    row = lines.loc[("part_a_patientele", "unique")]
    assert int(row["amount_cents"]) == 3500
    assert row["due_date"] == pd.Timestamp("2013-03-01")


def test_first_period_starting_mid_year_is_pro_rated_to_the_cent(tmp_path):
    # Contract from 15 April 2012: first period 15/04/2012 – 31/12/2012 = 261 days of a 366-day year.
    ws = workspace(tmp_path, start="2012-04-15", parameters=NO_MODULATION)
    lines = lines_of(ws, "2012")
    # part B = 3 FTE × 2 500.00 € × 261/366 = 750 000 × 261 / 366 cents = 534 836.07 -> 5 348.36 €
    assert amount(lines, "part_b_temps_professionnels") == 534836
    # avance 80 % = 427 868.8 -> 427 869 on 15/04/2012 ; solde 106 967 on 15/07/2012
    avance, solde = (
        lines.loc[("part_b_temps_professionnels", "avance")],
        lines.loc[("part_b_temps_professionnels", "solde")],
    )
    assert (int(avance["amount_cents"]), int(solde["amount_cents"])) == (427869, 106967)
    assert avance["due_date"] == pd.Timestamp("2012-04-15")
    assert solde["due_date"] == pd.Timestamp("2012-07-15")
    assert "261/366 jours" in avance["explanation"].formula


def test_module_joined_during_a_period_is_pro_rated(tmp_path):
    # Enrolment from 1 October 2013: 92 active days of 365; part A = 7 × 5.00 € × 92/365 = 8.8219 € -> 8.82 €
    ws = workspace(tmp_path, module_start="2013-10-01", patients=adults(7), parameters=NO_MODULATION)
    lines = lines_of(ws)
    assert amount(lines, "part_a_patientele") == 882
    assert amount(lines, "part_b_temps_professionnels") == 189041  # 750 000 × 92 / 365 = 189 041.1


def test_last_period_cut_by_contract_end_is_pro_rated(tmp_path):
    # Contract ending 30 June 2014: last period 01/01/2014 – 30/06/2014 = 181 days of 365.
    ws = workspace(tmp_path, end="2014-06-30", parameters=NO_MODULATION)
    # part B = 750 000 × 181 / 365 = 371 917.8 -> 371 918 cents
    assert amount(lines_of(ws, "2014"), "part_b_temps_professionnels") == 371918


# -- eligibility --------------------------------------------------------------------------------
def test_period_without_two_gps_and_one_paramedical_pays_nothing(tmp_path):
    professionals = [
        ["G1", "generaliste", 11, "2012-01-01", ""],
        ["G2", "generaliste", 11, "2012-01-01", "2012-12-31"],  # leaves at the end of 2012
        ["P1", "paramedical", 11, "2012-01-01", ""],
    ]
    ws = workspace(tmp_path, professionals=professionals, patients=adults(5))
    assert amount(lines_of(ws, "2012"), "part_a_patientele") == 2000  # eligible in 2012: 5 × 5.00 € × 80 %
    lines = ws.calculate(["2013"], ["coordination"]).lines
    assert list(lines["component"]) == ["forfait_non_eligible"]
    assert int(lines["amount_cents"].sum()) == 0
    assert lines["explanation"][0].reason == (
        "la structure compte 1 médecin(s) généraliste(s) et 1 professionnel(s) paramédical(aux) présents "
        "dans la période ; il en faut au moins 2 et 1"
    )


# -- bad inputs ------------------------------------------------------------------------------------
def problems_of(ws: Workspace) -> list[str]:
    with pytest.raises(InputError) as err:
        ws.calculate(["2013"], ["coordination"])
    return [str(p) for p in err.value.problems]


def test_overlapping_presence_intervals_are_refused(tmp_path):
    professionals = [*THREE_FTE[:2], ["P1", "paramedical", 6, "2012-01-01", "2013-06-30"]]
    professionals.append(["P1", "paramedical", 8, "2013-06-01", ""])  # starts before the previous one ends
    problems = problems_of(workspace(tmp_path, professionals=professionals))
    file = tmp_path / "data" / "coordination" / "professionals.csv"
    assert problems == [
        f"{file}, ligne 5, champ « present_from » : l'intervalle de présence du professionnel P1 commençant "
        "le 01/06/2013 chevauche celui de la ligne 4"
    ]


def test_birth_date_after_a_consultation_is_refused(tmp_path):
    patients = [["K1", "2013-05-01", "non", "2013-05-01", ""]]
    ws = workspace(tmp_path, patients=patients, consultations=[["K1", "2013-03-01", "G1"]])
    file = tmp_path / "data" / "coordination"
    assert problems_of(ws) == [
        f"{file / 'child_consultations.csv'}, ligne 2, champ « consultation_date » : consultation du 01/03/2013 "
        f"antérieure à la naissance du patient K1 (né le 01/05/2013, {file / 'patients.csv'} ligne 2)"
    ]


def test_negative_half_days_unknown_role_unknown_doctor_and_indicator(tmp_path):
    professionals = [*THREE_FTE, ["N1", "paramedical", -2, "2012-01-01", ""], ["N2", "kine", 4, "2012-01-01", ""]]
    ws = workspace(tmp_path, professionals=professionals)
    problems = problems_of(ws)
    assert any(
        "ligne 5, champ « half_days_per_week » : valeur -2 inférieure au minimum autorisé (0)" in p for p in problems
    )
    assert any("ligne 6, champ « role » : valeur « kine » inattendue" in p for p in problems)


def test_cross_table_errors_are_all_reported_and_nothing_is_computed(tmp_path):
    ws = workspace(
        tmp_path,
        patients=adults(1),
        consultations=[["A000", "2013-02-01", "P1"], ["NOBODY", "2013-02-01", "G1"]],
        objectives=[["tabac", "2013-12-01", "1", "2", ""], ["diabete", "2013-12-01", "abc", "2", "3"]],
    )
    problems = problems_of(ws)
    assert any(
        "child_consultations.csv, ligne 2, champ « doctor_id » : médecin « P1 » absent des généralistes" in p
        for p in problems
    )
    assert any("ligne 3, champ « patient_id » : patient « NOBODY » absent de patients.csv" in p for p in problems)
    assert any(
        "objectives.csv, ligne 2, champ « indicator » : indicateur « tabac » absent de la liste du contrat" in p
        for p in problems
    )
    assert any(
        "objectives.csv, ligne 3, champ « achieved » : nombre décimal attendu (ex. 62,5), reçu « abc »" in p
        for p in problems
    )
    assert any(
        "objectives.csv, ligne 3, champ « floor » : seuil 3 supérieur ou égal à la cible 2" in p for p in problems
    )


def test_bad_instalment_plan_in_a_contract_is_refused(tmp_path):
    bad = """
  coordination.payment.instalments:
    - {start: 2010-01-01, value: [{instalment: avance, share_percent: 70, months_after_start: 0}, {instalment: solde, share_percent: 20, months_after_start: 3}], reference: "t"}
"""  # noqa: E501
    problems = problems_of(workspace(tmp_path, parameters=bad))
    assert len(problems) == 1
    assert problems[0].endswith(
        "champ « coordination.payment.instalments » : les parts des échéances totalisent 90 % au lieu de 100 %"
    )


def test_optional_tables_may_be_absent(tmp_path):
    ws = workspace(tmp_path, patients=adults(7))
    for name in ("child_consultations.csv", "objectives.csv"):
        (tmp_path / "data" / "coordination" / name).unlink()
    lines = lines_of(ws)
    # 7 × 5.00 € = 35.00 € and 3 FTE × 2 500.00 € = 7 500.00 € ; 80 % fixed, 20 % at stake scored 0 (no result)
    assert amount(lines, "part_a_patientele") == 2800
    assert amount(lines, "part_b_temps_professionnels") == 600000
    assert amount(lines, "modulation_objectifs") == 0


def test_explanation_names_inputs_and_weak_parameters(tmp_path):
    ws = workspace(tmp_path, patients=adults(7))
    explanation = lines_of(ws).loc[("part_a_patientele", "avance"), "explanation"]
    assert "patients.csv, ligne(s) 2, 3, 4, 5, 6, 7, 8" in dict(explanation.inputs)["patients comptés"]
    weak = {p.name for p in explanation.weak_parameters()}
    assert {"coordination.size_classes", "coordination.objectives.share_at_stake"} <= weak
    assert explanation.formula == (
        "7 patients × 5,00\u00a0€ × 365/365 jours × (100 % − 20 % modulés) = 28,00\u00a0€ ; avance 80 % = 22,40\u00a0€"
    )


def test_bad_input_fails_the_cli_run_before_any_line(tmp_path):
    from click.testing import CliRunner

    from nmr_engine.cli.main import cli

    professionals = [*THREE_FTE, ["G1", "generaliste", 4, "2013-03-01", ""]]  # G1 already present from 2012
    workspace(tmp_path, professionals=professionals)
    result = CliRunner().invoke(
        cli,
        ["calculate", "--contracts", str(tmp_path / "contracts"), "--data", str(tmp_path / "data"), "--period", "2013"],
    )
    assert isinstance(result.exception, InputError)
    assert "chevauche celui de la ligne 2" in str(result.exception)
    assert "Total" not in result.output


def test_bundled_example_shows_the_three_modules():
    root = Path(__file__).resolve().parent.parent
    ws = Workspace(root / "contracts", root / "data", run_date=dt.date(2015, 1, 1))
    lines = ws.calculate(["2012", "2013"]).lines
    assert set(lines["module"]) == {"coordination", "etp", "asalee"}
    steenvoorde = lines[(lines["contract_id"] == "ENMR-NPDC-STEENVOORDE") & (lines["module"] == "coordination")]
    assert list(steenvoorde.loc[steenvoorde["period_id"] == "2013-01-01/2013-12-31", "component"]) == [
        "forfait_non_eligible"
    ]
    assert set(lines.loc[lines["module"] == "asalee", "payee_id"]) == {"asalee"}


def test_a_suspension_removes_its_days_from_presence_and_pro_rata(tmp_path):
    history = """
history:
  - date: 2013-04-01
    recorded_on: 2013-03-20
    event: suspension
    until: 2013-06-30
    reference: Décision ARS (test)
"""
    ws = workspace(tmp_path, parameters=NO_MODULATION)
    path = tmp_path / "contracts" / "test.yaml"
    path.write_text(path.read_text(encoding="utf-8") + history, encoding="utf-8")
    ws = Workspace(tmp_path / "contracts", tmp_path / "data", run_date=dt.date(2015, 1, 1))
    lines = lines_of(ws)
    # 2013: 365 days, 91 suspended (April–June) -> 274 active days. Presence in the suspension does
    # not count either: 3 people × 11 half-days × 274 days / (11 × 274) = 3 FTE (not 3 × 365/274).
    # Part B = 3 FTE × 2 500,00 € × 274/365 = 750 000 × 274 / 365 = 563 013,69… -> 563 014 cents.
    assert amount(lines, "part_b_temps_professionnels") == 563014
    assert "3,00 ETP" in lines.loc[("part_b_temps_professionnels", "avance"), "explanation"].summary
