"""Money at the edges: `Decimal` with two places; integer minor units inside.

Every amount that enters the system goes through `parse_amount`, so there is
one place that says what an amount is.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ledger.errors import InvalidAmount
from ledger.shown import clipped, quoted

MINOR_UNITS = 100
PLACES = Decimal("0.01")
#: The largest single amount we accept: far above any real transfer, far
#: below where a sum of many could overflow a 64-bit integer of cents.
MAX_AMOUNT = Decimal("1000000000.00")

_MAX_TEXT = 32


def parse_amount(value: object, *, allow_zero: bool = False) -> Decimal:
    """Turn user input into a validated amount.

    Args:
        value: A decimal string such as ``"150.00"``, a `Decimal`, or an int.
            A float is accepted only through its shortest repr (a JSON number
            such as ``150.5`` arrives as one), never through binary arithmetic.
        allow_zero: Accept ``0`` (opening balances); transfers never do.

    Returns:
        The amount, quantized to two places.

    Raises:
        InvalidAmount: With a message that says what is wrong.
    """
    if isinstance(value, bool):
        raise InvalidAmount(f"Amount must be a number, not {value!r}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > _MAX_TEXT:
            raise InvalidAmount(f"Amount is not a number: {quoted(value)}")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise InvalidAmount(f"Amount is not a number: {quoted(value)}") from None
    else:
        raise InvalidAmount(f"Amount must be a decimal string, not {type(value).__name__}")

    if not amount.is_finite():
        raise InvalidAmount(f"Amount must be finite, got {clipped(repr(value))}")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidAmount(f"Amount must be greater than zero, got {clipped(str(amount))}")
    # The bound first: quantizing a huge amount to cents overflows the
    # decimal context (found by the property tests).
    if amount > MAX_AMOUNT:
        raise InvalidAmount(
            f"Amount exceeds the maximum of {MAX_AMOUNT:,.2f}: {clipped(str(amount))}"
        )
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(PLACES):
        raise InvalidAmount(f"Amount has more than two decimal places: {clipped(str(amount))}")
    return amount.quantize(PLACES)


def to_minor(amount: Decimal) -> int:
    """Amount -> integer minor units (cents). Exact; the amount is already validated."""
    return int(amount.quantize(PLACES) * MINOR_UNITS)


def from_minor(units: int) -> Decimal:
    """Integer minor units (cents) -> amount with two places."""
    return (Decimal(units) / MINOR_UNITS).quantize(PLACES)


def format_amount(amount: Decimal) -> str:
    """Two places, no grouping: the form amounts are shown and stored as text."""
    return f"{amount:.2f}"
