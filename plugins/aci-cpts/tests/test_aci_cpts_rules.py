"""Hand-computed amounts of the ACI CPTS module.

Sizes (bounds included): 1: 0–39,999; 2: 40,000–79,999; 3: 80,000–175,000; 4: ≥ 175,001.
Operating budget €50,000 / €60,000 / €75,000 / €90,000; annual maximum €220,000 / €287,000 /
€370,000 / €450,000. Mission « acces_soins » (illustrative): fixed €15,000 at size 1, variable €15,000.
The test contract is signed on 15 March 2020: periods run 15/03 → 14/03 (365 days in 2020-21).
"""

from pathlib import Path

import pandas as pd
import pytest

from nmr_engine.errors import InputError
from nmr_engine.testing import Example

PACKAGE = Path(__file__).resolve().parent.parent / "nmr_aci_cpts"  # loaded by path when not installed

CONTRACT = """\
id: CPTS-TEST
structure: {{finess: "590099999", name: CPTS de test, kind: CPTS, territory: Test}}
parties: {{ars: ARS Hauts-de-France, caisse: CPAM de test}}
signed_on: 2020-03-15
start: 2020-03-15
end: 2022-03-14
periods: {{anchor: "03-15"}}
modules:
  - {{code: aci_cpts}}
{extra}"""


def run(tmp_path, population=30000, missions=(), results=(), period="2020", extra="", populations=None):
    (tmp_path / "contracts").mkdir(exist_ok=True)
    data = tmp_path / "data" / "aci_cpts"
    data.mkdir(parents=True, exist_ok=True)
    (tmp_path / "contracts" / "test.yaml").write_text(CONTRACT.format(extra=extra), encoding="utf-8")
    pops = populations if populations is not None else [("2020-06-01", population), ("2021-06-01", population)]
    rows = ["contract_id;observed_on;population"] + [f"CPTS-TEST;{d};{p}" for d, p in pops]
    (data / "population.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    rows = ["contract_id;mission;started_on"] + [f"CPTS-TEST;{m};{d}" for m, d in missions]
    (data / "missions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    rows = ["contract_id;mission;assessed_on;achieved_pct"] + [f"CPTS-TEST;{m};{d};{p}" for m, d, p in results]
    (data / "mission_results.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Example.from_dir("aci_cpts", tmp_path, package_dir=PACKAGE, periods=[period]).calculate()


def line(lines, component, instalment):
    hit = lines[(lines["component"] == component) & (lines["instalment"] == instalment)]
    assert len(hit) == 1, (component, instalment, list(zip(lines["component"], lines["instalment"], strict=True)))
    return hit.iloc[0]


@pytest.mark.parametrize(
    ("population", "size", "budget"),
    [
        (39_999, 1, 5_000_000),
        (40_000, 2, 6_000_000),  # « 40,000–80,000 »: the lower bound belongs to size 2
        (79_999, 2, 6_000_000),
        (80_000, 3, 7_500_000),  # 80,000 appears in two bands of the source: ranked in size 3 (lower bound)
        (175_000, 3, 7_500_000),  # size 4 is « > 175,000 »: 175,000 stays in size 3
        (175_001, 4, 9_000_000),
    ],
)
def test_size_band_boundaries_and_operating_budget_paid_whole_at_signature(tmp_path, population, size, budget):
    lines = run(tmp_path, population)
    op = line(lines, "fonctionnement", "unique")
    assert int(op["amount_cents"]) == budget
    assert op["due_date"] == pd.Timestamp("2020-03-15")  # the signature
    assert op["explanation"].summary == f"Budget de fonctionnement, taille {size}, versé en totalité à la signature"


def test_operating_budget_75_percent_advance_at_each_anniversary(tmp_path):
    lines = run(tmp_path, 30000, period="2021")
    # size 1: €50,000 × 75 % = €37,500.00 on 15/03/2021, the rest €12,500.00 at the next anniversary
    advance, balance = line(lines, "fonctionnement", "avance"), line(lines, "fonctionnement", "solde")
    assert (int(advance["amount_cents"]), advance["due_date"]) == (3_750_000, pd.Timestamp("2021-03-15"))
    assert (int(balance["amount_cents"]), balance["due_date"]) == (1_250_000, pd.Timestamp("2022-03-15"))


def test_mission_fixed_part_pro_rated_to_the_anniversary(tmp_path):
    lines = run(tmp_path, 30000, missions=[("acces_soins", "2020-09-01")])
    # 01/09/2020 → 14/03/2021 = 30 + 31 + 30 + 31 + 31 + 28 + 14 = 195 days of 365:
    # €15,000 × 195 / 365 = €8,013.6986… → 801,370 c (one rounding); 75 % = 601,027.5 c → 601,028 c at the start
    advance = line(lines, "mission_acces_soins_fixe", "avance")
    balance = line(lines, "mission_acces_soins_fixe", "solde")
    assert (int(advance["amount_cents"]), advance["due_date"]) == (601_028, pd.Timestamp("2020-09-01"))
    assert (int(balance["amount_cents"]), balance["due_date"]) == (801_370 - 601_028, pd.Timestamp("2021-03-15"))
    assert "× 195 j / 365 j (du 01/09/2020 à l'anniversaire)" in advance["explanation"].formula


def test_mission_started_before_the_period_is_paid_in_full(tmp_path):
    lines = run(tmp_path, 30000, missions=[("acces_soins", "2020-09-01")], period="2021")
    # whole 2021-22 period: €15,000 × 75 % = €11,250.00 at the anniversary, €3,750.00 at the balance
    assert int(line(lines, "mission_acces_soins_fixe", "avance")["amount_cents"]) == 1_125_000
    assert int(line(lines, "mission_acces_soins_fixe", "solde")["amount_cents"]) == 375_000


def test_mission_variable_part_on_indicators(tmp_path):
    lines = run(tmp_path, 30000, missions=[("parcours", "2020-03-15")],
                results=[("parcours", "2021-02-28", 80)])  # fmt: skip
    # size 1 parcours variable €20,000 × 80 % = €16,000.00
    assert int(line(lines, "mission_parcours_variable", "solde")["amount_cents"]) == 1_600_000


def test_mission_without_evaluation_pays_no_variable_part_and_says_why(tmp_path):
    lines = run(tmp_path, 30000, missions=[("parcours", "2020-03-15")])
    variable = line(lines, "mission_parcours_variable", "solde")
    assert int(variable["amount_cents"]) == 0
    assert (
        variable["explanation"].reason == "indicateurs de la mission non évalués dans la période (mission_results.csv)"
    )


BANDS = [(1, 0, 39999, "50000.00", "60000.00"), (2, 40000, 79999, "60000.00", "287000.00"),
         (3, 80000, 175000, "75000.00", "370000.00"), (4, 175001, 999999999, "90000.00", "450000.00")]  # fmt: skip
# The convention lowers the size-1 annual maximum to €60,000 (a contract override of the whole table).
SMALL_MAX = """\
parameters:
  aci_cpts.sizes:
    - start: 2020-03-15
      reference: "Convention CPTS-TEST, art. 7 : plafond annuel réduit"
      value:
""" + "".join(
    f"        - {{size: {s}, min_population: {lo}, max_population: {hi}, operating_budget: '{b}', "
    f"annual_max: '{m}', confidence: CONTRACT, source: convention}}\n"
    for s, lo, hi, b, m in BANDS
)


def test_annual_maximum_by_size_cuts_the_excess(tmp_path):
    lines = run(tmp_path, 30000, missions=[("acces_soins", "2020-03-15")],
                results=[("acces_soins", "2021-02-01", 100)], extra=SMALL_MAX)  # fmt: skip
    # budget €50,000 + fixed €15,000 (whole year) + variable €15,000 = €80,000 > €60,000 → −€20,000.00
    cap = line(lines, "plafond_annuel", "solde")
    assert int(cap["amount_cents"]) == -2_000_000
    assert int(lines["amount_cents"].sum()) == 6_000_000


def test_default_annual_maximum_not_reached_gives_no_cut(tmp_path):
    lines = run(tmp_path, 30000, missions=[("acces_soins", "2020-03-15")], results=[("acces_soins", "2021-02-01", 100)])
    assert "plafond_annuel" not in set(lines["component"])
    assert int(lines["amount_cents"].sum()) == 8_000_000  # 50,000 + 15,000 + 15,000 ≤ 220,000


def test_no_population_pays_nothing_and_says_why(tmp_path):
    lines = run(tmp_path, populations=[("2021-06-01", 30000)], missions=[("acces_soins", "2020-03-15")])
    assert list(lines["component"]) == ["taille_inconnue"]
    assert int(lines["amount_cents"].iloc[0]) == 0
    assert "aucune population couverte" in lines["explanation"].iloc[0].reason


@pytest.mark.parametrize(
    ("missions", "results", "file", "field", "message"),
    [
        ([("inconnue", "2020-04-01")], [], "missions.csv", "mission", "mission « inconnue » absente de la table"),
        ([], [("parcours", "2021-01-01", 50)], "mission_results.csv", "mission", "non déclarée dans missions.csv"),
        ([("parcours", "2020-04-01")], [("parcours", "2021-01-01", 150)], "mission_results.csv", "achieved_pct",
         "taux d'atteinte supérieur à 100"),
    ],
)  # fmt: skip
def test_bad_mission_inputs_are_refused(tmp_path, missions, results, file, field, message):
    with pytest.raises(InputError) as err:
        run(tmp_path, 30000, missions=missions, results=results)
    problem = err.value.problems[0]
    assert problem.file.endswith(file) and (problem.line, problem.field) == (2, field)
    assert message in problem.message
