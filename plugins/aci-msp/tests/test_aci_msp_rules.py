"""Hand-computed amounts of the ACI MSP module.

Socle indicators (prerequisites + socle) of the 2017 table at the reference, up to 5 associates:
horaires 800 + coordination 700 + 1,100 + concertation 1,000 + SI 500 + protocoles 800 = 4,900 points.
Avenant 1 (2022): coordination 1,000 + 1,700 → 800 + 2,700 + 1,000 + 500 + 800 = 5,800 points.
Point value €7; advance 60 % due 1 July; balance due 30 April N+1; SI: +200 points per associate beyond 5.
"""

from pathlib import Path

import pandas as pd
import pytest

from nmr_engine.testing import Example

PACKAGE = Path(__file__).resolve().parent.parent / "nmr_aci_msp"  # loaded by path when not installed

SOCLE = ["horaires_soins_non_programmes", "fonction_coordination", "concertation", "systeme_information", "protocoles"]

CONTRACT = """\
id: MSP-TEST
structure: {finess: "590009998", name: MSP de test, kind: MSP, territory: Test}
parties: {ars: ARS Hauts-de-France, caisse: CPAM de test}
signed_on: 2020-12-01
start: 2021-01-01
end: 2022-12-31
modules:
  - {code: aci_msp}
"""


def run(tmp_path, year, doctors, pcts, others=3, extra_patientele=(), extra_associates=()):
    """One contract; ``doctors`` = [(MT patients, CMU-C/AME)] of SISA-associate doctors; ``others``
    non-doctor associates; returns the lines of ``year``."""
    (tmp_path / "contracts").mkdir(exist_ok=True)
    data = tmp_path / "data" / "aci_msp"
    data.mkdir(parents=True, exist_ok=True)
    (tmp_path / "contracts" / "test.yaml").write_text(CONTRACT, encoding="utf-8")
    assoc = ["contract_id;professional_id;profession;doctor;joined_on;left_on"]
    assoc += [f"MSP-TEST;D{i};médecin généraliste;oui;2018-01-01;" for i in range(len(doctors))]
    assoc += [f"MSP-TEST;P{i};infirmier;non;2018-01-01;" for i in range(others)]
    assoc += list(extra_associates)
    (data / "associates.csv").write_text("\n".join(assoc) + "\n", encoding="utf-8")
    pat = ["contract_id;doctor_id;observed_on;mt_patients;cmu_ame_patients"]
    pat += [f"MSP-TEST;D{i};{year}-12-31;{n};{c}" for i, (n, c) in enumerate(doctors)]
    pat += list(extra_patientele)
    (data / "patientele.csv").write_text("\n".join(pat) + "\n", encoding="utf-8")
    ind = ["contract_id;indicator;assessed_on;achieved_pct"]
    ind += [f"MSP-TEST;{k};{year}-12-15;{v}" for k, v in pcts.items()]
    (data / "indicators.csv").write_text("\n".join(ind) + "\n", encoding="utf-8")
    return Example.from_dir("aci_msp", tmp_path, package_dir=PACKAGE, periods=[str(year)]).calculate()


def amount(lines, component, instalment="solde") -> int:
    hit = lines[(lines["component"] == component) & (lines["instalment"] == instalment)]
    assert len(hit) == 1, (component, instalment, list(lines["component"]))
    return int(hit["amount_cents"].iloc[0])


def by_instalment(lines) -> dict[str, int]:
    return {k: int(v) for k, v in lines.groupby("instalment")["amount_cents"].sum().items()}


ALL_SOCLE = {k: 100 for k in SOCLE}


def test_60_percent_advance_and_april_balance(tmp_path):
    lines = run(tmp_path, 2021, [(2500, 175), (1500, 105)], ALL_SOCLE, others=3)  # 4,000 patients, 7 %: no uplift
    # socle at 100 %: 4,900 points × €7 = €34,300.00; advance 60 % = €20,580.00 on 1 July 2021
    assert amount(lines, "avance_socle", "avance") == 2_058_000
    advance = lines[lines["instalment"] == "avance"].iloc[0]
    assert advance["due_date"] == pd.Timestamp("2021-07-01")
    # balance on 30 April 2022: 34,300 − 20,580 = €13,720.00
    assert by_instalment(lines) == {"avance": 2_058_000, "solde": 1_372_000}
    assert set(lines.loc[lines["instalment"] == "solde", "due_date"]) == {pd.Timestamp("2022-04-30")}
    assert amount(lines, "avance_socle") == -2_058_000


def test_avenant_1_table_applies_from_2022(tmp_path):
    lines = run(tmp_path, 2022, [(2500, 175), (1500, 105)], ALL_SOCLE)
    # 5,800 points × €7 = €40,600.00; advance 60 % = €24,360.00
    assert amount(lines, "avance_socle", "avance") == 2_436_000
    assert sum(by_instalment(lines).values()) == 4_060_000
    # coordination: 1,000 + 1,700 = 2,700 points × €7 = €18,900.00 (avenant 1, MED)
    assert amount(lines, "indicateur_fonction_coordination") == 1_890_000


@pytest.mark.parametrize(
    ("year", "patients", "expected"),
    [
        (2021, 2000, 875_000),  # (700 + 1,100 × 2,000 / 4,000) = 1,250 points × €7 = €8,750.00
        (2021, 6000, 1_645_000),  # (700 + 1,100 × 1.5) = 2,350 points × €7 = €16,450.00
        (2022, 2000, 1_295_000),  # (1,000 + 1,700 × 0.5) = 1,850 points × €7 = €12,950.00
        (2022, 6000, 2_485_000),  # (1,000 + 1,700 × 1.5) = 3,550 points × €7 = €24,850.00
    ],
)
def test_coordination_scales_with_the_patientele_of_sisa_doctors(tmp_path, year, patients, expected):
    lines = run(tmp_path, year, [(patients, patients * 7 // 100)], ALL_SOCLE)
    assert amount(lines, "indicateur_fonction_coordination") == expected


def test_a_missed_prerequisite_pays_nothing_and_the_advance_is_taken_back(tmp_path):
    lines = run(tmp_path, 2021, [(4000, 280)], dict(ALL_SOCLE, concertation=70))
    assert amount(lines, "socle_non_atteint") == 0
    reason = lines.set_index("component").loc["socle_non_atteint", "explanation"].reason
    assert (
        reason
        == "prérequis du socle non atteints : « Concertation pluriprofessionnelle » (concertation) atteint à 70 %"
    )
    # the advance (60 % × €34,300.00 = €20,580.00) was paid during the year and is deducted: net nothing
    assert by_instalment(lines) == {"avance": 2_058_000, "solde": -2_058_000}
    assert not lines["component"].str.startswith("indicateur_").any()


@pytest.mark.parametrize(
    ("others", "expected"),
    [
        (3, 350_000),  # 1 doctor + 3 = 4 associates ≤ 5: 500 points × €7 = €3,500.00
        (4, 350_000),  # 5 associates: still 500 points
        (7, 770_000),  # 8 associates: 500 + 3 × 200 = 1,100 points × €7 = €7,700.00
    ],
)
def test_information_system_points_by_number_of_associates(tmp_path, others, expected):
    lines = run(tmp_path, 2021, [(4000, 280)], ALL_SOCLE, others=others)
    assert amount(lines, "indicateur_systeme_information") == expected


def test_only_sisa_associate_doctors_count_in_the_patientele(tmp_path):
    lines = run(
        tmp_path,
        2021,
        [(2000, 140)],
        ALL_SOCLE,
        extra_associates=["MSP-TEST;GONE;médecin généraliste;oui;2018-01-01;2021-06-30"],
        extra_patientele=["MSP-TEST;REMPL;2021-12-31;1500;0", "MSP-TEST;GONE;2021-12-31;900;0"],
    )
    # only D0 counts: 2,000 patients → coordination 1,250 points × €7 = €8,750.00
    assert amount(lines, "indicateur_fonction_coordination") == 875_000
    explanation = lines.set_index("component").loc["indicateur_fonction_coordination", "explanation"]
    assert (
        "médecin(s) non associé(s) de la SISA exclu(s) : 2" in dict(explanation.inputs)["patientèle médecin traitant"]
    )


def test_precarity_uplift_capped_at_25_percent(tmp_path):
    # 4,000 patients, 1,400 CMU-C/AME = 35 % − 7 % = 28 % → 25 %; flagged variable points 1,100 + 1,000 = 2,100
    # 2,100 × 25 % × €7 = €3,675.00
    lines = run(tmp_path, 2021, [(4000, 1400)], ALL_SOCLE)
    assert amount(lines, "majoration_precarite") == 367_500


def test_indicator_table_versions_are_dated_and_sourced():
    from nmr_engine.parameters import load_parameter_file

    param = load_parameter_file(PACKAGE / "parameters" / "indicators.yaml", "aci_msp.indicators")
    assert [v.start.isoformat() for v in param.versions] == ["2017-04-01", "2022-01-01"]
    assert all(v.confidence == "OPEN" and v.illustrative for v in param.versions)
    coord22 = next(r for r in param.versions[1].value if r["code"] == "fonction_coordination")
    assert (coord22["fixed_points"], coord22["variable_points"], coord22["confidence"]) == (1000, 1700, "MED")
    for version in param.versions:
        assert all(r["confidence"] in ("SEED", "HIGH", "MED", "LOW", "OPEN") and r["source"] for r in version.value)
