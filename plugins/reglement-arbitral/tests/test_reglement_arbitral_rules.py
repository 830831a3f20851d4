"""Hand-computed amounts of the règlement arbitral (indicator table of 2015-01-01).

Table at the 4,000-patient reference: Σ fixed points = 1200 + 700 + 0 + 1000 + 200 + 0 + 300 + 350
+ 450 = 4,200; Σ variable points = 1100 + 1000 + 200 + 900 = 3,200; total 7,400 (RULES.md).
Variable points flagged for the precarity uplift: coordination 1,100 + concertation 1,000 = 2,100.
Point value €7; national CMU-C/AME share 7 % (OPEN, illustrative); uplift cap 25 %.
"""

from pathlib import Path

import pytest

from nmr_engine.testing import Example

PACKAGE = Path(__file__).resolve().parent.parent / "nmr_reglement_arbitral"  # loaded by path when not installed

SOCLE = [
    "acces_horaires",
    "fonction_coordination",
    "concertation",
    "systeme_information",
    "protocoles",
    "coordination_externe",
]
OPTIONAL = ["diversite_services", "sante_publique", "accueil_etudiants"]

CONTRACT = """\
id: RA-TEST
structure: {finess: "590009999", name: MSP de test, kind: MSP, territory: Test}
parties: {ars: ARS Hauts-de-France, caisse: CPAM de test}
signed_on: 2016-01-01
start: 2016-01-01
end: 2016-12-31
modules:
  - {code: reglement_arbitral}
"""


def run(tmp_path: Path, doctors: list[tuple[int, int]], pcts: dict[str, int]) -> dict[str, int]:
    """Compute one 2016 period: ``doctors`` = [(MT patients, CMU-C/AME patients)], ``pcts`` by indicator."""
    (tmp_path / "contracts").mkdir()
    data = tmp_path / "data" / "reglement_arbitral"
    data.mkdir(parents=True)
    (tmp_path / "contracts" / "test.yaml").write_text(CONTRACT, encoding="utf-8")
    pat = ["contract_id;doctor_id;observed_on;mt_patients;cmu_ame_patients"]
    pat += [f"RA-TEST;D{i};2016-12-31;{n};{c}" for i, (n, c) in enumerate(doctors)]
    (data / "patientele.csv").write_text("\n".join(pat) + "\n", encoding="utf-8")
    ind = ["contract_id;indicator;assessed_on;achieved_pct"] + [f"RA-TEST;{k};2016-12-15;{v}" for k, v in pcts.items()]
    (data / "indicators.csv").write_text("\n".join(ind) + "\n", encoding="utf-8")
    lines = Example.from_dir("reglement_arbitral", tmp_path, package_dir=PACKAGE).calculate()
    run.lines = lines
    return dict(zip(lines["component"], lines["amount_cents"].astype(int), strict=True))


def total(amounts: dict[str, int]) -> int:
    return sum(amounts.values())


ALL = {k: 100 for k in SOCLE + OPTIONAL}


def test_at_the_reference_7400_points_pay_51800_euros(tmp_path):
    # 4,000 patients, CMU-C/AME 280 = 7 % = the national share: no uplift.
    amounts = run(tmp_path, [(2500, 175), (1500, 105)], ALL)
    assert total(amounts) == 7400 * 700  # 7,400 points × €7 = €51,800.00
    assert amounts["indicateur_fonction_coordination"] == (700 + 1100) * 700  # 1,800 points = €12,600.00
    assert amounts["majoration_precarite"] == 0
    line = run.lines.set_index("component").loc["majoration_precarite"]
    assert "non supérieure à la part nationale" in line["explanation"].reason


def test_a_patientele_of_2000_halves_the_variable_points(tmp_path):
    amounts = run(tmp_path, [(1200, 84), (800, 56)], ALL)  # 140 / 2,000 = 7 %: no uplift
    # 4,200 fixed + 3,200 × 2,000 / 4,000 = 4,200 + 1,600 = 5,800 points × €7 = €40,600.00
    assert total(amounts) == 4_060_000
    # coordination: 700 + 1,100 × 2,000 / 4,000 = 1,250 points × €7 = €8,750.00
    assert amounts["indicateur_fonction_coordination"] == 875_000
    # concertation: 0 + 1,000 × 0.5 = 500 points = €3,500.00; access socle: fixed only, 1,200 × €7
    assert amounts["indicateur_concertation"] == 350_000
    assert amounts["indicateur_acces_horaires"] == 840_000


def test_a_patientele_of_6000_scales_the_variable_points_by_one_and_a_half(tmp_path):
    amounts = run(tmp_path, [(3000, 210), (3000, 210)], ALL)  # 420 / 6,000 = 7 %
    # 4,200 + 3,200 × 6,000 / 4,000 = 4,200 + 4,800 = 9,000 points × €7 = €63,000.00
    assert total(amounts) == 6_300_000
    # coordination: 700 + 1,100 × 1.5 = 2,350 points × €7 = €16,450.00
    assert amounts["indicateur_fonction_coordination"] == 1_645_000


def test_variable_points_are_rounded_once_half_up(tmp_path):
    amounts = run(tmp_path, [(2345, 0)], {k: 100 for k in SOCLE})
    # coordination: (700 + 1,100 × 2,345 / 4,000) × €7 = 1,344.875 points × 700 c = 941,412.5 c → 941,413 c
    assert amounts["indicateur_fonction_coordination"] == 941_413
    # coordination externe: 900 × 2,345 / 4,000 = 527.625 points × 700 c = 369,337.5 c → 369,338 c
    assert amounts["indicateur_coordination_externe"] == 369_338


def test_precarity_uplift_below_the_cap(tmp_path):
    # 800 / 4,000 = 20 % − 7 % = 13 % < 25 %; 2,100 flagged variable points × 13 % × €7 = €1,911.00
    amounts = run(tmp_path, [(4000, 800)], ALL)
    assert amounts["majoration_precarite"] == 191_100
    assert total(amounts) == 5_180_000 + 191_100


def test_precarity_uplift_above_the_cap_is_capped_at_25_percent(tmp_path):
    # 1,600 / 4,000 = 40 % − 7 % = 33 % → capped at 25 %; 2,100 × 25 % × €7 = €3,675.00
    amounts = run(tmp_path, [(4000, 1600)], ALL)
    assert amounts["majoration_precarite"] == 367_500
    line = run.lines.set_index("component").loc["majoration_precarite"]
    assert line["explanation"].summary == "Majoration pour précarité : 25 % (plafonnée)"


def test_precarity_uplift_follows_the_achievement_of_flagged_indicators(tmp_path):
    # 6,000 patients, 1,020 CMU-C/AME = 17 % − 7 % = 10 %.
    # flagged points: coordination 1,100 × 1.5 = 1,650 at 100 %; concertation 1,000 × 1.5 = 1,500 at 100 %
    # = 3,150 × 10 % × €7 = €2,205.00
    amounts = run(tmp_path, [(6000, 1020)], ALL)
    assert amounts["majoration_precarite"] == 220_500


def test_a_missed_socle_prerequisite_pays_nothing_and_says_why(tmp_path):
    pcts = dict(ALL, acces_horaires=80)
    del pcts["systeme_information"]
    amounts = run(tmp_path, [(4000, 1600)], pcts)
    assert amounts == {"socle_non_atteint": 0}
    reason = run.lines["explanation"].iloc[0].reason
    assert reason == (
        "prérequis du socle non atteints : « Horaires d'ouverture et soins non programmés » (acces_horaires) "
        "atteint à 80 % ; « Système d'information labellisé ASIP Santé » (systeme_information) non évalué"
    )


def test_partly_achieved_socle_indicator_and_unassessed_optional(tmp_path):
    amounts = run(tmp_path, [(4000, 280)], dict({k: 100 for k in SOCLE}, protocoles=50))
    # protocoles: (200 + 200) × 50 % × €7 = €1,400.00; optional indicators not assessed: no line
    assert amounts["indicateur_protocoles"] == 140_000
    assert not any(k in amounts for k in (f"indicateur_{o}" for o in OPTIONAL))


def test_socle_indicator_at_zero_gives_a_zero_line_with_its_reason(tmp_path):
    amounts = run(tmp_path, [(4000, 280)], dict({k: 100 for k in SOCLE}, coordination_externe=0))
    assert amounts["indicateur_coordination_externe"] == 0
    line = run.lines.set_index("component").loc["indicateur_coordination_externe"]
    assert line["explanation"].reason == "900 points atteints à 0 % : rien n'est dû"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("RA-TEST;protocoles;2016-12-15;120", "achieved_pct", "taux d'atteinte supérieur à 100"),
        ("RA-TEST;inconnu;2016-12-15;100", "indicator", "indicateur « inconnu » absent de la table"),
    ],
)
def test_bad_assessments_are_refused(tmp_path, row, field, message):
    from nmr_engine.errors import InputError

    assert run(tmp_path, [(4000, 280)], {}) == {"socle_non_atteint": 0}  # no assessment: valid, gate fails
    data = tmp_path / "data" / "reglement_arbitral" / "indicators.csv"
    data.write_text(f"contract_id;indicator;assessed_on;achieved_pct\n{row}\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        Example.from_dir("reglement_arbitral", tmp_path, package_dir=PACKAGE).calculate()
    problem = err.value.problems[0]
    assert (problem.line, problem.field) == (2, field)
    assert message in problem.message


def test_the_table_totals_7400_points_at_the_reference():

    from nmr_engine.parameters import load_parameter_file

    table = load_parameter_file(PACKAGE / "parameters" / "indicators.yaml", "indicators").versions[0].value
    assert sum(r["fixed_points"] + r["variable_points"] for r in table) == 7400
    access = next(r for r in table if r["code"] == "acces_horaires")
    assert (access["fixed_points"], access["confidence"]) == (1200, "MED")
