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
