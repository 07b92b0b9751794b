"""Currencies: the ISO 4217 table, minor units per currency, and the bounds per currency."""

from decimal import Decimal

import iso4217
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import (
    SUPPORTED_CODES,
    InvalidAmount,
    UnknownCurrency,
    format_amount,
    max_amount,
    parse_amount,
    places,
    validate_currency,
)
from ledger.currency import MAX_MINOR_UNITS
from ledger.money import from_minor, to_minor


def test_the_table_holds_the_currencies_the_ledger_promises_with_the_standards_places() -> None:
    """At least the seven of the issue, with the places ISO publishes (its XML, not memory)."""
    table = {code: iso4217.raw_table[code]["CcyMnrUnts"] for code in SUPPORTED_CODES}
    assert {"USD", "EUR", "GBP", "CHF", "JPY", "BHD", "KWD"} <= set(SUPPORTED_CODES)
    assert {code: int(str(units)) for code, units in table.items()} == {
        code: places(code) for code in SUPPORTED_CODES
    }
    assert (0, 2, 3, 3) == (places("JPY"), places("EUR"), places("BHD"), places("KWD"))


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("1500", "JPY", Decimal("1500")),
        ("1500.00", "JPY", Decimal("1500")),
        ("12.345", "BHD", Decimal("12.345")),
        ("12.3", "KWD", Decimal("12.300")),
        ("12.34", "USD", Decimal("12.34")),
        ("0.001", "BHD", Decimal("0.001")),
        ("1", "JPY", Decimal("1")),
        ("100000000000", "JPY", Decimal("100000000000")),
        ("100000000.000", "BHD", Decimal("100000000.000")),
        ("1000000000.00", "EUR", Decimal("1000000000.00")),
    ],
)
def test_amounts_take_their_currencys_places(raw: str, currency: str, expected: Decimal) -> None:
    """1500 JPY yes, 12.345 BHD yes; each quantized to its own places."""
    amount = parse_amount(raw, currency=currency)
    assert (expected, expected.as_tuple().exponent) == (amount, amount.as_tuple().exponent)


@pytest.mark.parametrize(
    ("raw", "currency", "message"),
    [
        ("15.5", "JPY", "Amount has decimal places (JPY has none): 15.5"),
        ("0.5", "JPY", "Amount has decimal places (JPY has none): 0.5"),
        ("12.345", "USD", "Amount has more than two decimal places (USD has two): 12.345"),
        ("12.3456", "BHD", "Amount has more than three decimal places (BHD has three): 12.3456"),
        ("0.0001", "KWD", "Amount has more than three decimal places (KWD has three): 0.0001"),
        (
            "100000000001",
            "JPY",
            "Amount exceeds the maximum of 100,000,000,000 JPY: 100000000001",
        ),
        (
            "100000000.001",
            "BHD",
            "Amount exceeds the maximum of 100,000,000.000 BHD: 100000000.001",
        ),
    ],
)
def test_amounts_beyond_their_currencys_places_or_maximum_are_refused_in_one_line(
    raw: str, currency: str, message: str
) -> None:
    """15.5 JPY no, 12.345 USD no; the maximum is per currency; the message says which."""
    with pytest.raises(InvalidAmount) as refused:
        parse_amount(raw, currency=currency)
    assert message == str(refused.value)


@pytest.mark.parametrize("code", ["XYZ", "usd ", "", "EURO", "XAU", "US"])
def test_unknown_codes_are_refused_in_one_line(code: str) -> None:
    """Anything but a supported ISO 4217 code is refused, listing those that are."""
    if code.strip().upper() in SUPPORTED_CODES:
        assert code.strip().upper() == validate_currency(code)
        return
    with pytest.raises(UnknownCurrency) as refused:
        validate_currency(code)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"Unknown currency {code!r}: use an ISO 4217 code")


def test_the_maximum_is_the_same_number_of_minor_units_in_every_currency() -> None:
    """One bound against overflow, in minor units: per currency that is its own maximum."""
    for code in SUPPORTED_CODES:
        assert MAX_MINOR_UNITS == to_minor(max_amount(code), code)


@st.composite
def minor_amounts(draw: st.DrawFn) -> tuple[str, int]:
    """A supported currency and a number of its minor units, up to its maximum and beyond."""
    code = draw(st.sampled_from(SUPPORTED_CODES))
    return code, draw(st.integers(min_value=-5, max_value=MAX_MINOR_UNITS + 5))


@given(minor_amounts(), st.integers(min_value=0, max_value=4))
def test_any_amount_in_any_currency_round_trips_exactly_or_is_refused_clearly(
    drawn: tuple[str, int], extra_places: int
) -> None:
    """Minor units -> text (with any places) -> amount -> minor units: exact, or InvalidAmount."""
    code, units = drawn
    value = Decimal(units).scaleb(-places(code))
    text = f"{value:.{places(code) + extra_places}f}"
    if units <= 0 or units > MAX_MINOR_UNITS:
        with pytest.raises(InvalidAmount, match=r"^Amount (must be greater|exceeds)[^\n]*$"):
            parse_amount(text, currency=code)
        return
    amount = parse_amount(text, currency=code)
    assert units == to_minor(amount, code)
    assert amount == from_minor(units, code)
    assert format_amount(value, code) == format_amount(amount, code)


@given(
    st.sampled_from(SUPPORTED_CODES),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e12"), places=4),
)
def test_an_amount_with_more_places_than_its_currency_is_refused_never_rounded(
    code: str, value: Decimal
) -> None:
    """A sub-minor-unit amount is refused: the ledger never rounds money away."""
    try:
        amount = parse_amount(value, currency=code)
    except InvalidAmount:
        assert value != value.quantize(Decimal(1).scaleb(-places(code))) or value > max_amount(code)
        return
    assert value == amount
