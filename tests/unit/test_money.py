"""Amount parsing: one place decides what an amount is."""

from decimal import Decimal

import pytest

from ledger import MAX_AMOUNT, InvalidAmount, parse_amount
from ledger.money import from_minor, to_minor


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("150.00", Decimal("150.00")),
        ("150", Decimal("150.00")),
        (" 0.01 ", Decimal("0.01")),
        ("1.5", Decimal("1.50")),
        ("1.000", Decimal("1.00")),
        (Decimal("999.99"), Decimal("999.99")),
        (42, Decimal("42.00")),
        (150.5, Decimal("150.50")),
        (0.1, Decimal("0.10")),
        ("1000000000.00", MAX_AMOUNT),
        ("1e2", Decimal("100.00")),
    ],
)
def test_valid_amounts_parse_exactly(raw: object, expected: Decimal) -> None:
    """Strings, Decimals, ints and JSON-style floats become exact two-place Decimals."""
    assert expected == parse_amount(raw, currency="USD")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("abc", "not a number"),
        ("", "not a number"),
        ("12,50", "not a number"),
        ("1" * 40, "not a number"),
        ("NaN", "finite"),
        ("sNaN", "finite"),
        ("Infinity", "finite"),
        ("-inf", "finite"),
        (float("nan"), "finite"),
        ("-5", "greater than zero"),
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("-0", "greater than zero"),
        ("1.005", "more than two decimal places"),
        ("0.001", "more than two decimal places"),
        ("1000000000.01", "exceeds the maximum"),
        ("1e30", "exceeds the maximum"),
        (True, "must be a number"),
        (None, "decimal string"),
        ([1], "decimal string"),
    ],
)
def test_invalid_amounts_are_rejected_with_a_clear_message(raw: object, message: str) -> None:
    """Garbage, NaN, infinity, zero, negatives, three places and huge amounts are refused."""
    with pytest.raises(InvalidAmount, match=message):
        parse_amount(raw, currency="USD")


def test_zero_is_allowed_only_when_asked() -> None:
    """Opening balances may be zero; transfers may not."""
    assert Decimal("0.00") == parse_amount("0", allow_zero=True, currency="USD")
    with pytest.raises(InvalidAmount):
        parse_amount("-0.01", allow_zero=True)


@pytest.mark.parametrize(
    "text", ["0.01", "0.10", "1.00", "150.25", "999999999.99", "1000000000.00"]
)
def test_minor_units_round_trip(text: str) -> None:
    """Amount -> cents -> amount is exact."""
    amount = Decimal(text)
    assert amount == from_minor(to_minor(amount, "USD"), "USD")
    assert isinstance(to_minor(amount, "USD"), int)
