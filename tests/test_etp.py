"""Module 2 (ETP), amounts computed by hand from RULES.md (fiche 5 of the 2013 ARS press kit)."""

from __future__ import annotations

import pytest

from nmr_engine.engine import Workspace

from .conftest import write_contract, write_table

PROGRAMMES = """\
    contract_id;programme_id;title;authorised_from;authorised_to
    C1;P1;Diabète;2012-01-01;2015-12-31
    """


def sessions(rows: list[tuple[str, str, str]], contract="C1", programme="P1") -> str:
    """rows: (patient, date, kind)."""
    out = "contract_id;programme_id;patient_id;session_date;kind\n"
    return out + "".join(f"{contract};{programme};{p};{d};{k}\n" for p, d, k in rows)


def cycle(patient: str, n: int, month: int = 9, year: int = 2012) -> list[tuple[str, str, str]]:
    rows = [(patient, f"{year}-{month:02d}-01", "diagnostic")]
    rows += [(patient, f"{year}-{month:02d}-{2 + i:02d}", "seance") for i in range(n)]
    return rows


def run(dirs, periods=("2012",)):
    ws = Workspace(*dirs)
    result = ws.calculate(list(periods))
    return result.lines.set_index("component")


@pytest.fixture
def etp(workspace_dirs):
    contracts, data = workspace_dirs
    write_contract(contracts)
    write_table(data, "etp", "programmes", PROGRAMMES)
    return workspace_dirs


def test_the_four_tiers_and_both_sides(etp):
    _, data = etp
    rows = []
    for n in (2, 3, 4, 5, 6, 7):
        rows += cycle(f"PAT{n}", n)
    write_table(data, "etp", "sessions", sessions(rows))
    lines = run(etp)
    # 3 and 4 séances: 2 patients × 250 € = 500 €
    assert lines.loc["forfait_patient_3_4", "quantity"] == 2
    assert lines.loc["forfait_patient_3_4", "amount_cents"] == 50000
    # 5, 6 and 7 séances (7 capped at the top tier, LOW reading): 3 × 300 € = 900 €
    assert lines.loc["forfait_patient_5_6", "quantity"] == 3
    assert lines.loc["forfait_patient_5_6", "amount_cents"] == 90000
    # 2 séances: nothing, and the line says why
    low = lines.loc["forfait_patient_seances_insuffisantes"]
    assert (low["quantity"], low["amount_cents"]) == (1, 0)
    assert "moins de séances que le premier palier" in low["explanation"].reason
    assert lines["amount_cents"].sum() == 140000


def test_above_top_tier_policy_is_a_parameter(etp):
    contracts, data = etp
    write_contract(
        contracts,
        extra="""\
        parameters:
          etp.patient.above_top_tier:
            - {start: 2012-07-01, value: nothing, reference: "Convention C1, art. 4"}
        """,
    )
    write_table(data, "etp", "sessions", sessions(cycle("A", 7) + cycle("B", 6)))
    lines = run(etp)
    assert lines.loc["forfait_patient_5_6", "amount_cents"] == 30000  # only B: 1 × 300 €
    assert lines.loc["forfait_patient_au_dela_du_dernier_palier", "amount_cents"] == 0


def test_two_trainings_per_professional_and_period(etp):
    _, data = etp
    write_table(data, "etp", "sessions", sessions([]))
    write_table(
        data,
        "etp",
        "trainings",
        """\
        contract_id;professional_id;training_date;training_title
        C1;DR-A;2012-09-10;Module 1
        C1;DR-A;2012-11-10;Module 2
        C1;DR-A;2013-02-10;Module 3
        C1;IDE-B;2013-03-01;Module 1
        C1;DR-A;2013-09-10;Module 4
        """,
    )
    lines = run(etp, periods=("2012", "2013")).reset_index().set_index(["period_id", "component"])
    p1, p2 = "2012-07-01/2013-06-30", "2013-07-01/2014-06-30"
    # Period 1: DR-A 2 paid (3rd refused) + IDE-B 1 = 3 × 1 000 € = 3 000 €
    assert lines.loc[(p1, "formation"), "amount_cents"] == 300000
    refused = lines.loc[(p1, "formation_au_dela_du_plafond")]
    assert (refused["quantity"], refused["amount_cents"]) == (1, 0)
    assert "plafond de 2 formations" in refused["explanation"].reason
    # Period 2: the cap starts again: DR-A's 4th training is paid, 1 000 €
    assert lines.loc[(p2, "formation"), "amount_cents"] == 100000


def test_structuring_is_paid_once_per_contract(etp):
    _, data = etp
    write_table(data, "etp", "sessions", sessions([]))
    write_table(
        data,
        "etp",
        "structuring",
        """\
        contract_id;claim_date;reference
        C1;2012-10-01;note 1
        C1;2013-01-15;note 2
        C1;2013-10-01;note 3
        """,
    )
    lines = run(etp, periods=("2012", "2013")).reset_index().set_index(["period_id", "component"])
    p1, p2 = "2012-07-01/2013-06-30", "2013-07-01/2014-06-30"
    assert lines.loc[(p1, "structuration"), "amount_cents"] == 100000
    assert lines.loc[(p1, "structuration_deja_versee"), "amount_cents"] == 0
    assert lines.loc[(p2, "structuration_deja_versee"), "quantity"] == 1
    assert (
        "déjà accordé sur la demande du 01/10/2012"
        in lines.loc[(p2, "structuration_deja_versee"), "explanation"].reason
    )
    assert lines["amount_cents"].sum() == 100000


def test_a_parameter_changing_inside_a_contract_period(etp):
    contracts, data = etp
    # The convention raises the 5–6 tier to 320 € from 1 January 2013, mid-period (July–June).
    write_contract(
        contracts,
        extra="""\
        parameters:
          etp.patient.tiers:
            - start: 2013-01-01
              value:
                - {min_sessions: 3, max_sessions: 4, amount: "250.00"}
                - {min_sessions: 5, max_sessions: 6, amount: "320.00"}
              reference: "Avenant n° 1 à la convention C1"
        """,
    )
    rows = cycle("A", 5, month=9) + cycle("B", 5, month=10) + cycle("C", 6, month=2, year=2013)
    write_table(data, "etp", "sessions", sessions(rows))
    lines = run(etp)
    line = lines.loc["forfait_patient_5_6"]
    # A and B complete in 2012: 2 × 300 € ; C completes in February 2013: 1 × 320 € -> 920 €
    assert line["amount_cents"] == 92000
    assert line["quantity"] == 3
    assert str(line["unit_amount_cents"]) == "<NA>"  # two unit prices in the period
    text = line["explanation"].render()
    assert "2 patient(s) × 300,00\u00a0€ (valeur du 01/01/2010)" in text
    assert "1 patient(s) × 320,00\u00a0€ (valeur du 01/01/2013)" in text
    assert "Avenant n° 1" in text


def test_a_period_straddling_two_calendar_years(etp):
    _, data = etp
    # One cycle: diagnostic in November 2012, séances through March 2013: period July 2012–June 2013.
    rows = [
        ("A", "2012-11-20", "diagnostic"),
        ("A", "2012-12-10", "seance"),
        ("A", "2013-01-10", "seance"),
        ("A", "2013-02-10", "seance"),
        ("A", "2013-03-10", "seance"),
        ("A", "2013-03-20", "seance"),
    ]
    write_table(data, "etp", "sessions", sessions(rows))
    lines = run(etp)
    line = lines.loc["forfait_patient_5_6"]
    assert line["period_id"] == "2012-07-01/2013-06-30"
    assert (line["quantity"], line["amount_cents"]) == (1, 30000)


def test_unauthorised_programme_pays_nothing_and_says_why(workspace_dirs):
    contracts, data = workspace_dirs
    write_contract(contracts)
    write_table(
        data,
        "etp",
        "programmes",
        """\
        contract_id;programme_id;title;authorised_from;authorised_to
        C1;P1;Diabète;2013-03-01;2017-02-28
        """,
    )
    write_table(data, "etp", "sessions", sessions(cycle("A", 4, month=10) + cycle("B", 4, month=4, year=2013)))
    lines = run(workspace_dirs)
    # A (October 2012) is before the authorisation: 5 séances unpaid; B (April 2013): 250 €
    refused = lines.loc["forfait_patient_hors_autorisation"]
    assert (refused["quantity"], refused["amount_cents"]) == (5, 0)
    assert "non autorisé par l'ARS" in refused["explanation"].reason
    assert "autorisé du 01/03/2013 au 28/02/2017" in refused["explanation"].reason
    assert lines.loc["forfait_patient_3_4", "amount_cents"] == 25000


def test_explanations_name_their_inputs_and_sources(etp):
    _, data = etp
    write_table(data, "etp", "sessions", sessions(cycle("A", 3)))
    line = run(etp).loc["forfait_patient_3_4"]
    text = line["explanation"].render()
    assert "1 patient(s) × 250,00\u00a0€ = 250,00\u00a0€" in text
    assert "sessions.csv, ligne(s) 2" in text  # the diagnostic's line
    assert "fiche 5" in text and "fiabilité : SEED" in text
    assert "above_top_tier" not in text  # not consulted for a 3–4 cycle


def test_programme_of_each_session():
    import numpy as np
    import pandas as pd
    from nmr_etp.rules import _cells, programme_grid, undeclared_rows

    progs = pd.DataFrame({"contract_id": ["C2", "C1", "C1", "C3"], "programme_id": ["P1", "P2", "P1", "P1"]})
    contracts, programme_ids = pd.Index(["C1", "C2"]), pd.Index(["P1", "P2"])
    # sessions: (C1, P1), (C2, P1), (C2, P2) undeclared, (C1, P2), a missing contract
    contract_code = np.array([0, 1, 1, 0, -1])
    programme_code = np.array([0, 0, 1, 1, 0])
    grid = programme_grid(progs, contracts, programme_ids)
    rows = grid[_cells(contract_code, programme_code, len(programme_ids), len(grid) - 1)]
    assert rows.tolist() == [2, 0, -1, 1, -1]
    # the checks' path: the same undeclared sessions, found from the cells used
    assert undeclared_rows(progs, contracts, programme_ids, contract_code, programme_code).tolist() == [2, 4]
    declared = [0, 0, 1, 0]  # only declared (contract, programme) pairs: nothing to report
    assert undeclared_rows(progs, contracts, programme_ids, np.array([0, 1, 0, 0]), np.array(declared)).size == 0


def test_session_order_breaks_ties_by_file_line():
    import numpy as np
    from nmr_etp.rules import _order_by_key, _patient_key

    # two rows of the same patient, day and kind (only possible without the reader's uniqueness
    # check): the file line decides, as with the reference order
    codes = [np.array([0, 0, 0, 0]), np.array([0, 0, 0, 0]), np.array([1, 0, 1, 0])]
    day = np.array([5, 5, 3, 5])
    diag = np.array([False, True, False, False])
    line = np.array([9, 2, 7, 4])
    order, key_sorted, _, _ = _order_by_key(_patient_key(codes), day, diag, line)
    assert order.tolist() == np.lexsort((line, (~diag).astype(int), day, *reversed(codes))).tolist()
    assert order.tolist() == [1, 3, 2, 0]
    assert (key_sorted[1:] != key_sorted[:-1]).tolist() == [False, True, False]  # where each patient starts


def test_rows_of_the_computed_periods_keep_their_order_and_file(etp):
    import pandas as pd

    from nmr_engine.plugin.helpers import in_computed_periods

    write_table(etp[1], "etp", "sessions", sessions(cycle("A", 3) + cycle("B", 3, month=9, year=2013)))
    from nmr_engine.inputs import read_module_tables
    from nmr_engine.model import module_periods_frame, select_periods
    from nmr_engine.plugin.api import CalculationContext

    ws = Workspace(*etp)
    spec = ws.registry.modules()["etp"].spec
    history = module_periods_frame(ws.contracts, "etp")
    tables = read_module_tables(etp[1], "etp", spec.tables, {"C1"}, history)
    context = CalculationContext(spec, select_periods(history, ["2013"]), history, tables, ws.parameters, ws.run_date)
    rows = in_computed_periods(context, tables["sessions"])
    assert rows["patient_id"].tolist() == ["B"] * 4
    assert rows["_line"].tolist() == [6, 7, 8, 9]
    assert rows.attrs["file"] == tables["sessions"].attrs["file"]
    merged = tables["sessions"].merge(context.periods[["contract_id", "period_id"]], on=["contract_id", "period_id"])
    assert rows["_line"].tolist() == merged["_line"].tolist()
    assert isinstance(rows["period_id"].dtype, pd.CategoricalDtype)
