"""The Web UI's current details: one list item per step and per operator action, text escaped."""

from datetime import UTC, datetime
from decimal import Decimal

from ledger import PostingKind, Receipt
from workflows.contract import (
    OperatorAction,
    StepError,
    StepState,
    StepStatus,
    TransferRequest,
    TransferState,
    TransferStatus,
)
from workflows.visibility import current_details


def resolved_state() -> TransferState:
    """A transfer parked by a failed refund, retried once, then settled by hand."""
    settlement = Receipt(
        key="t-1/settle_manually",
        kind=PostingKind.MANUAL,
        amount=Decimal("150.00"),
        from_account="CLEARING",
        to_account="EXTERNAL",
        reverses=None,
        posted_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    return TransferState(
        transfer_id="t-1",
        request=TransferRequest(
            source_account="ACC-001", destination_account="ACC-002", amount="150"
        ),
        status=TransferStatus.RESOLVED,
        steps=[
            StepState(name="debit", kind="forward", status=StepStatus.COMPLETED, attempts=1),
            StepState(
                name="reverse_debit",
                kind="compensation",
                status=StepStatus.FAILED,
                attempts=3,
                error=StepError(type="AccountFrozen", message="Account ACC-001 is *frozen*"),
            ),
            StepState(
                name="settle_manually",
                kind="operator",
                status=StepStatus.COMPLETED,
                result=settlement,
                attempts=1,
            ),
        ],
        operator_actions=[
            OperatorAction(
                action="retry", note=None, outcome="reverse_debit failed", operator="bob"
            ),
            OperatorAction(
                action="resolve",
                note="refunded by cheque | #42",
                outcome="settled by hand",
                operator="alice@ops",
            ),
        ],
    )


def test_each_step_is_a_list_item_with_its_parts_apart() -> None:
    """Name, status, what it did and attempts read apart (a table's cells ran together)."""
    details = current_details(resolved_state())
    assert "- **debit**: completed" in details.splitlines()
    assert "- **settle_manually**: completed, 150.00 CLEARING → EXTERNAL" in details.splitlines()
    assert (
        "- **reverse_debit**: failed, AccountFrozen: Account ACC-001 is \\*frozen\\* (attempt 3)"
        in details.splitlines()
    )
    assert "|" not in details.replace("\\|", "")


def test_operator_actions_name_who_what_why_and_how_it_went() -> None:
    """Every retry and resolve is listed with the operator, the note and the outcome."""
    details = current_details(resolved_state())
    assert details.endswith(
        "**Operator actions:**\n\n"
        "- **retry** by bob → reverse\\_debit failed\n"
        "- **resolve** by alice@ops: “refunded by cheque \\| #42” → settled by hand"
    )


def test_a_transfer_without_operator_actions_lists_none() -> None:
    """No operator section until an operator acts."""
    state = resolved_state().model_copy(update={"operator_actions": []})
    assert "Operator actions" not in current_details(state)
