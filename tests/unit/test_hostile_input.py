"""Hostile input, generated: no input crashes a validator, and what passes round-trips exactly."""

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger import (
    InvalidAccountId,
    InvalidAmount,
    InvalidOwner,
    LedgerStore,
    format_amount,
    open_store,
    parse_amount,
    validate_account_id,
)
from ledger.models import ACCOUNT_ID_PATTERN, validate_owner
from ledger.money import MAX_AMOUNT
from workflows.contract import TransferRequest

#: Text as users and attackers type it: any Unicode, SQL and shell metacharacters.
HOSTILE = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from("0123456789.,-+eE_ NnaIifty'\";%\\\x00\n")),
    st.sampled_from(["'; DROP TABLE accounts; --", "1 OR 1=1", "NaN", "-0", "1e999", "0x10"]),
)


@given(HOSTILE)
@example("1234567890123456789012345678.123")  # 32 characters, 31 digits: once crashed
def test_any_text_is_an_amount_or_an_invalid_amount(text: str) -> None:
    """Never another exception; an accepted amount is positive, bounded, two places."""
    try:
        amount = parse_amount(text, currency="USD")
    except InvalidAmount:
        return
    assert Decimal("0.01") <= amount <= MAX_AMOUNT
    assert amount == amount.quantize(Decimal("0.01"))


@given(st.integers(min_value=1, max_value=int(MAX_AMOUNT * 100)))
def test_every_valid_amount_round_trips_exactly(cents: int) -> None:
    """Cents -> text -> amount -> text: no rounding anywhere."""
    text = format_amount(Decimal(cents) / 100, "USD")
    assert Decimal(cents) / 100 == parse_amount(text, currency="USD")
    assert text == format_amount(parse_amount(text, currency="USD"), "USD")


@given(st.decimals(allow_nan=True, allow_infinity=True))
@example(Decimal("22142857142857142857142857050.143"))  # once overflowed the quantize
def test_any_decimal_is_an_amount_or_an_invalid_amount(value: Decimal) -> None:
    """Decimals from code (not text): the same rules, no crash."""
    try:
        amount = parse_amount(value, currency="USD")
    except InvalidAmount:
        return
    assert amount == value
    assert Decimal("0.01") <= amount <= MAX_AMOUNT


@given(HOSTILE)
def test_any_text_is_an_account_number_or_refused(text: str) -> None:
    """Accepted numbers are exactly the pattern, unchanged; everything else is refused."""
    if ACCOUNT_ID_PATTERN.fullmatch(text) is None:
        with pytest.raises(InvalidAccountId, match="Invalid account number"):
            validate_account_id(text)
    else:
        assert text == validate_account_id(text)


@given(
    st.dictionaries(
        st.sampled_from(
            ["source_account", "destination_account", "amount", "deadline_seconds", "x"]
        ),
        st.one_of(HOSTILE, st.integers(), st.none()),
    )
)
def test_any_request_is_valid_or_a_validation_error(data: dict[str, object]) -> None:
    """A hand-written start request never crashes validation: valid, or a ValidationError."""
    try:
        request = TransferRequest.model_validate(data)
    except ValidationError:
        return
    assert request.source_account != request.destination_account


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerStore]:
    """One SQLite ledger for the generated owners (hypothesis reruns the test many times)."""
    store = open_store(str(Path(tmp_path_factory.mktemp("hostile")) / "ledger.db"))
    yield store
    store.close()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owner=HOSTILE, number=st.integers(min_value=0, max_value=10**9))
def test_owner_names_are_refused_or_stored_verbatim(
    hostile_store: LedgerStore, owner: str, number: int
) -> None:
    """Quotes, SQL and odd Unicode in an owner change no query: stored and read back as typed."""
    try:
        expected = validate_owner(owner)
    except InvalidOwner:
        with pytest.raises(InvalidOwner):
            hostile_store.open_account(f"H-{number}", owner)
        return
    account_id = f"H-{number}"
    if any(a.id == account_id for a in hostile_store.list_accounts()):
        return
    opened = hostile_store.open_account(account_id, owner, Decimal("1.00"))
    assert expected == opened.owner == hostile_store.get_account(account_id).owner
    assert sum(a.balance for a in hostile_store.list_accounts()) == 0
