"""The currencies the ledger keeps: ISO 4217 codes and their minor units.

The codes we support are listed here; how many decimal places each has
comes from the standard's own table (the `iso4217` package ships the list
ISO publishes), never from memory. A yen has no minor unit, a Bahraini
dinar has three places.
"""

from __future__ import annotations

from decimal import Decimal

import iso4217

from ledger.errors import UnknownCurrency
from ledger.shown import quoted

#: The currencies accounts may be opened in. Adding one is adding its code:
#: its places come from the ISO table.
SUPPORTED_CODES = (
    "USD",
    "EUR",
    "GBP",
    "CHF",
    "JPY",
    "BHD",
    "KWD",
    "CAD",
    "AUD",
    "SEK",
    "NOK",
    "DKK",
    "PLN",
    "CZK",
    "KRW",
    "ISK",
    "OMR",
    "JOD",
    "TND",
)

#: The currency of an account opened without one, and of every account a
#: ledger had before it knew currencies (unless the upgrade is told otherwise).
DEFAULT_CURRENCY = "USD"

#: The largest amount of one posting, in minor units of any currency: far
#: above any real transfer, far below where a sum of many could overflow a
#: 64-bit integer. Per currency that is 1,000,000,000.00 USD,
#: 100,000,000,000 JPY or 100,000,000.000 BHD.
MAX_MINOR_UNITS = 100_000_000_000


def _places(code: str) -> int:
    exponent = iso4217.Currency(code).exponent
    if exponent is None:  # pragma: no cover - the table's funds and metals have none
        raise ValueError(f"ISO 4217 gives {code} no minor unit")
    return exponent


#: Code -> decimal places, from the ISO table.
PLACES: dict[str, int] = {code: _places(code) for code in SUPPORTED_CODES}


def validate_currency(code: object) -> str:
    """Return a supported ISO 4217 code (upper case), else raise UnknownCurrency in one line."""
    if isinstance(code, str) and code.strip().upper() in PLACES:
        return code.strip().upper()
    shown = quoted(code) if isinstance(code, str) else type(code).__name__
    raise UnknownCurrency(
        f"Unknown currency {shown}: use an ISO 4217 code this ledger keeps "
        f"({', '.join(SUPPORTED_CODES)})"
    )


def places(currency: str) -> int:
    """How many decimal places the currency's amounts have (0 for JPY, 3 for BHD)."""
    return PLACES[validate_currency(currency)]


def quantum(currency: str) -> Decimal:
    """The smallest amount of the currency: ``1``, ``0.01`` or ``0.001``."""
    return Decimal(1).scaleb(-places(currency))


def max_amount(currency: str) -> Decimal:
    """The largest single amount in the currency (`MAX_MINOR_UNITS` of its minor unit)."""
    return (Decimal(MAX_MINOR_UNITS) * quantum(currency)).quantize(quantum(currency))
