"""Money at the edges: `Decimal` with the currency's own places; integer minor units inside.

Every amount that enters the system goes through `parse_amount`, so there is
one place that says what an amount is. With its currency known, an amount
has at most that currency's places (`ledger.currency`: none for JPY, two for
USD, three for BHD) and at most its maximum. Before the currency is known (a
transfer request that names none), an amount is checked against every
supported currency at once, and the ledger checks it again against the
account's own.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ledger.currency import MAX_MINOR_UNITS, PLACES, max_amount, places, quantum
from ledger.errors import InvalidAmount
from ledger.shown import clipped, quoted

#: The largest amount in any supported currency (the bound of those with no
#: minor unit), for amounts whose currency is not known yet.
MAX_ANY = Decimal(MAX_MINOR_UNITS).scaleb(-min(PLACES.values()))
#: The most places any supported currency has.
MOST_PLACES = max(PLACES.values())
#: The largest amount in the default currency's places: kept for callers
#: that knew only two-place money.
MAX_AMOUNT = max_amount("USD")

_MAX_TEXT = 32


def parse_amount(
    value: object, *, allow_zero: bool = False, currency: str | None = None
) -> Decimal:
    """Turn user input into a validated amount.

    Args:
        value: A decimal string such as ``"150.00"``, a `Decimal`, or an int.
            A float is accepted only through its shortest repr (a JSON number
            such as ``150.5`` arrives as one), never through binary arithmetic.
        allow_zero: Accept ``0`` (opening balances); transfers never do.
        currency: The ISO 4217 code the amount is in. None: not known yet,
            so any supported currency's places and maximum are accepted.

    Returns:
        The amount, quantized to the currency's places (unknown: two places,
        or three when it needs them).

    Raises:
        InvalidAmount: With a message that says what is wrong.
        UnknownCurrency: `currency` is not one the ledger keeps.
    """
    amount = _decimal(value)
    if not amount.is_finite():
        raise InvalidAmount(f"Amount must be finite, got {clipped(repr(value))}")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidAmount(f"Amount must be greater than zero, got {clipped(str(amount))}")
    digits = MOST_PLACES if currency is None else places(currency)
    limit = MAX_ANY if currency is None else max_amount(currency)
    # The bound first: quantizing a huge amount overflows the decimal
    # context (found by the property tests).
    if amount > limit:
        shown = f"{limit:,.{digits}f}" + ("" if currency is None else f" {currency}")
        raise InvalidAmount(f"Amount exceeds the maximum of {shown}: {clipped(str(amount))}")
    step = Decimal(1).scaleb(-digits)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -digits and amount != amount.quantize(step):
        what = (
            "decimal places"
            if digits == 0
            else f"more than {_count(digits)} decimal place{'s' if digits > 1 else ''}"
        )
        where = "" if currency is None else f" ({currency} has {_count(digits)})"
        raise InvalidAmount(f"Amount has {what}{where}: {clipped(str(amount))}")
    if currency is not None:
        return amount.quantize(quantum(currency))
    # Unknown currency: two places as before currencies, three only if needed.
    two = Decimal("0.01")
    return amount.quantize(two) if amount == amount.quantize(two) else amount.quantize(step)


def _count(digits: int) -> str:
    return {0: "none", 1: "one", 2: "two", 3: "three"}.get(digits, str(digits))


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise InvalidAmount(f"Amount must be a number, not {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > _MAX_TEXT:
            raise InvalidAmount(f"Amount is not a number: {quoted(value)}")
        try:
            return Decimal(text)
        except InvalidOperation:
            raise InvalidAmount(f"Amount is not a number: {quoted(value)}") from None
    raise InvalidAmount(f"Amount must be a decimal string, not {type(value).__name__}")


def to_minor(amount: Decimal, currency: str) -> int:
    """Amount -> integer minor units of `currency` (cents, yen, fils). Exact: already validated."""
    return int(amount.quantize(quantum(currency)).scaleb(places(currency)))


def from_minor(units: int, currency: str) -> Decimal:
    """Integer minor units of `currency` -> the amount, with the currency's places."""
    return Decimal(units).scaleb(-places(currency)).quantize(quantum(currency))


def shown_amount(amount: Decimal, currency: str | None = None, *, grouped: bool = False) -> str:
    """An amount as people read it: in its currency's places (1,500 JPY, 12.345 BHD).

    Two places when the currency is not known (a request or receipt from
    before currencies); `grouped` adds thousands separators.
    """
    digits = places(currency) if currency is not None else 2
    return f"{amount:,.{digits}f}" if grouped else f"{amount:.{digits}f}"


def format_amount(amount: Decimal, currency: str | None = None) -> str:
    """The currency's places, no grouping: the form amounts are shown and stored as text.

    Without a currency: two places, or more if the amount has them.
    """
    if currency is not None:
        return f"{amount:.{places(currency)}f}"
    exponent = amount.as_tuple().exponent
    digits = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{amount:.{digits}f}"
