from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from nmr_engine.money import apply_rate, div_round, format_eur, parse_euros, split_instalments
from nmr_engine.plugin import Explanation, lines_frame


def test_parse_euros_is_exact_and_refuses_sub_cents_and_floats():
    assert parse_euros("1000") == 100000
    assert parse_euros("1000.5") == 100050
    assert parse_euros("1 000,05") == 100005
    assert parse_euros(12) == 1200
    with pytest.raises(ValueError, match="plus de deux décimales"):
        parse_euros("0.001")
    with pytest.raises(ValueError, match="virgule flottante"):
        parse_euros(0.1)


def test_half_up_rounding_on_ints_and_series():
    # 7/2 = 3.5 -> 4 ; -7/2 = -3.5 -> -4 ; 5/3 = 1.67 -> 2 ; 4/3 = 1.33 -> 1
    assert [div_round(7, 2), div_round(-7, 2), div_round(5, 3), div_round(4, 3)] == [4, -4, 2, 1]
    # Vectorised: 7/2 = 3.5 -> 4 ; -7/2 -> -4 ; 5/2 = 2.5 -> 3 ; 4/2 = 2
    s = pd.Series([7, -7, 5, 4], dtype="int64")
    assert div_round(s, 2).tolist() == [4, -4, 3, 2]


def test_apply_rate_and_instalments_add_up():
    # 80 % of 1 234,57 € = 987,656 -> 987,66 € ; balance = 123457 - 98766 = 24691
    advance, balance = split_instalments(123457, [Fraction(4, 5), Fraction(1, 5)])
    assert (advance, balance) == (98766, 24691)
    assert advance + balance == 123457
    assert apply_rate(1001, Fraction(1, 2)) == 501  # 500.5 -> 501
    with pytest.raises(ValueError, match="100 %"):
        split_instalments(100, [Fraction(1, 2), Fraction(1, 3)])


def test_a_million_one_cent_lines_sum_exactly():
    n = 1_000_000
    frame = lines_frame(
        {
            "contract_id": ["C"] * n,
            "module": ["m"] * n,
            "period_id": ["p"] * n,
            "component": np.arange(n).astype(str),
            "label": ["l"] * n,
            "payee_id": ["s"] * n,
            "instalment": ["unique"] * n,
            "due_date": pd.Timestamp("2013-01-01"),
            "quantity": np.ones(n, dtype=np.int64),
            "unit_amount_cents": np.ones(n, dtype=np.int64),
            "amount_cents": np.ones(n, dtype=np.int64),
            "explanation": [Explanation("s", "f")] * n,
        }
    )
    assert frame["amount_cents"].dtype == np.int64
    assert int(frame["amount_cents"].sum()) == 1_000_000  # exactly 10 000,00 €
    assert format_eur(frame["amount_cents"].sum()) == "10\u202f000,00\u00a0€"
    # The same sum in binary floats is not exact: the reason for integer cents.
    assert sum([0.01] * 1000) != 10.0


def test_lines_frame_refuses_float_amounts():
    with pytest.raises(TypeError, match="float"):
        lines_frame(
            {
                "contract_id": ["C"],
                "module": ["m"],
                "period_id": ["p"],
                "component": ["c"],
                "label": ["l"],
                "payee_id": ["s"],
                "instalment": ["unique"],
                "due_date": [pd.Timestamp("2013-01-01")],
                "quantity": [1],
                "unit_amount_cents": [1],
                "amount_cents": [0.5],
                "explanation": [None],
            }
        )
