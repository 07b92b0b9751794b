"""TransferRequest: the workflow's input contract, validated before any money moves."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.transfers import validation_message
from workflows.contract import TransferRequest


def test_decimal_string_amount_is_accepted() -> None:
    """A JSON start from the plain `temporal` CLI sends the amount as a string."""
    request = TransferRequest.model_validate_json(
        '{"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "150.00"}'
    )
    assert Decimal("150.00") == request.amount


def test_json_number_amount_is_taken_by_its_decimal_text() -> None:
    """A JSON number 150.1 is 150.10, not 150.099999... (no binary float arithmetic)."""
    request = TransferRequest.model_validate_json(
        '{"source_account": "ACC-001", "destination_account": "ACC-002", "amount": 150.1}'
    )
    assert Decimal("150.10") == request.amount


def test_amount_serializes_as_an_exact_string() -> None:
    """On the wire the amount is a decimal string, never a float."""
    request = TransferRequest(source_account="A-1", destination_account="B-2", amount="0.10")
    assert '"amount":"0.10"' in request.model_dump_json()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "abc"}, "amount: Amount is not a number"),
        ({"amount": "-1"}, "amount: Amount must be greater than zero"),
        ({"amount": "0"}, "amount: Amount must be greater than zero"),
        ({"amount": "1.0001"}, "amount: Amount has more than three decimal places"),
        (
            {"amount": "1.001", "currency": "USD"},
            "Amount has more than two decimal places (USD has two)",
        ),
        ({"amount": "NaN"}, "amount: Amount must be finite"),
        ({"amount": "500000000000"}, "amount: Amount exceeds the maximum"),
        ({"amount": "5000000000", "currency": "USD"}, "Amount exceeds the maximum"),
        ({"source_account": ""}, "source_account: Invalid account number"),
        ({"source_account": "ACC 001"}, "source_account: Invalid account number"),
        ({"destination_account": "x'; DROP TABLE accounts;--"}, "Invalid account number"),
        ({"destination_account": "A" * 65}, "Invalid account number"),
        ({"destination_account": "ACC-001"}, "same account: ACC-001"),
        ({"memo": "hi"}, "Unknown field 'memo'; the fields are source_account,"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(fields: dict[str, str], message: str) -> None:
    """Every kind of bad input fails validation, and the one-line message says why."""
    data = {"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "10"} | fields
    with pytest.raises(ValidationError) as info:
        TransferRequest.model_validate(data)
    assert message in validation_message(info.value)
    assert "\n" not in validation_message(info.value)


def test_missing_fields_are_named() -> None:
    """A request without its amount says which field is missing."""
    with pytest.raises(ValidationError) as info:
        TransferRequest.model_validate({"source_account": "A", "destination_account": "B"})
    assert "amount: Field required" == validation_message(info.value)
