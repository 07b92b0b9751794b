"""Messages quote a bounded prefix of what they were given, however long the input."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.transfers import validation_message
from ledger import InvalidAccountId, InvalidAmount, parse_amount, validate_account_id
from ledger.shown import quoted
from workflows.contract import ResolveRequest, TransferRequest

MEGABYTE = 1_000_000


def test_quoted_cuts_long_text_and_says_how_long_it_was() -> None:
    """Short text is its repr; long text its first 40 characters and its length."""
    assert "'abc'" == quoted("abc")
    assert f"{'x' * 40!r}... (1,000,000 characters)" == quoted("x" * MEGABYTE)


@pytest.mark.parametrize(
    "amount",
    [
        "x" + " " * MEGABYTE,
        "1" + " " * MEGABYTE + "2",
        Decimal("9" * 50_000),
        Decimal("-" + "9" * 50_000),
        Decimal("1." + "1" * 50_000),
        10**5000,
    ],
    ids=["x-and-spaces", "digits-around-spaces", "huge", "huge-negative", "many-places", "int"],
)
def test_an_amount_error_quotes_a_bounded_prefix(amount: object) -> None:
    """parse_amount's message stays short whatever the amount (a megabyte of spaces included)."""
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(amount)
    assert len(str(caught.value)) < 200


def test_an_account_number_error_quotes_a_bounded_prefix() -> None:
    """A megabyte account number is refused with its first characters and its length."""
    with pytest.raises(InvalidAccountId, match=r"\(1,000,001 characters\)") as caught:
        validate_account_id("A" * MEGABYTE + "!")
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    "extra",
    [
        {"amount": "x" + " " * MEGABYTE},
        {"source_account": "A" * MEGABYTE},
        {"z" * MEGABYTE: 1},
        {"deadline_seconds": "9" * MEGABYTE},
    ],
    ids=["amount", "account", "unknown-field-name", "deadline"],
)
def test_a_hand_written_requests_validation_error_is_bounded(extra: dict[str, object]) -> None:
    """str(ValidationError) (the failed workflow's message) and the CLI's line stay short."""
    request = {"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "1"}
    with pytest.raises(ValidationError) as caught:
        TransferRequest.model_validate(request | extra)
    assert len(str(caught.value)) < 1_000
    assert len(validation_message(caught.value)) < 300


def test_an_update_with_an_unknown_field_names_it_briefly() -> None:
    """An operator update with a huge unknown field is refused naming a prefix of it."""
    with pytest.raises(ValidationError, match="Unknown field 'zzz") as caught:
        ResolveRequest.model_validate({"note": "n", "z" * MEGABYTE: 1})
    assert len(str(caught.value)) < 1_000
