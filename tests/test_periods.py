import datetime as dt

import pytest

from nmr_engine.periods import DateRange, add_months, anchored_periods

D = dt.date


def test_contract_signed_1_july_has_july_to_june_periods():
    periods = list(anchored_periods(DateRange(D(2010, 7, 1), D(2014, 12, 31)), 7, 1))
    assert [p.id for p in periods] == [
        "2010-07-01/2011-06-30",
        "2011-07-01/2012-06-30",
        "2012-07-01/2013-06-30",
        "2013-07-01/2014-06-30",
        "2014-07-01/2014-12-31",  # partial last period
    ]


def test_partial_first_period_with_calendar_anchor():
    periods = list(anchored_periods(DateRange(D(2012, 3, 15), D(2013, 12, 31)), 1, 1))
    assert [(p.start, p.end, p.days) for p in periods] == [
        (D(2012, 3, 15), D(2012, 12, 31), 292),
        (D(2013, 1, 1), D(2013, 12, 31), 365),
    ]


def test_month_arithmetic_policy_refuses_ambiguous_days():
    assert add_months(D(2012, 1, 28), 1) == D(2012, 2, 28)
    with pytest.raises(ValueError, match="ambigu"):
        add_months(D(2012, 1, 31), 1)


@pytest.mark.parametrize("selectors", [None, ["2012"], ["2013", "2012-07-01/2013-06-30"], ["1999"]])
def test_the_periods_of_every_module_in_one_pass_are_those_of_each_module_alone(selectors):
    """The bundled example: contracts anchored in January and July, some enrolled in a module
    from a later date, one module no contract has."""
    from pathlib import Path

    import pandas as pd

    from nmr_engine.contracts import load_contracts
    from nmr_engine.model import module_periods_frame, modules_periods_frames, select_periods

    contracts = load_contracts(Path(__file__).resolve().parents[1] / "contracts")
    modules = ["etp", "coordination", "asalee", "aci_msp"]
    frames = modules_periods_frames(contracts, modules, selectors)
    assert list(frames) == modules
    for module in modules:
        history, selected = frames[module]
        pd.testing.assert_frame_equal(history, module_periods_frame(contracts, module))
        pd.testing.assert_frame_equal(selected, select_periods(module_periods_frame(contracts, module), selectors))
        # the same rows as filtering before building (whose empty text columns are of object dtype)
        pd.testing.assert_frame_equal(selected, module_periods_frame(contracts, module, selectors), check_dtype=False)
    assert len(frames["etp"][0]) > len(frames["asalee"][0]) > 0 and frames["aci_msp"][0].empty
