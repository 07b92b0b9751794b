"""What `starter.py status` tells an operator about a parked transfer."""

from decimal import Decimal

from app.render import state_text
from workflows.contract import StepState, TransferRequest, TransferState, TransferStatus


def _parked(**extra: object) -> TransferState:
    return TransferState(
        transfer_id="t-9",
        request=TransferRequest(
            source_account="ACC-001", destination_account="ACC-404", amount=Decimal("80")
        ),
        status=TransferStatus.NEEDS_ATTENTION,
        steps=[StepState(name="debit", kind="forward"), StepState(name="credit", kind="forward")],
        **extra,  # type: ignore[arg-type]
    )


def test_a_parked_transfer_offers_retry_and_resolve() -> None:
    """Pending compensations: the operator may retry them or settle by hand."""
    text = state_text(_parked(pending_compensations=["reverse_debit"]))
    assert "Waiting for an operator: pending reverse_debit." in text
    assert "`starter.py retry t-9`" in text
    assert "`starter.py resolve t-9 --note ...`" in text


def test_a_transfer_being_settled_by_hand_offers_only_resolve() -> None:
    """After a resolve failed part-way, retrying would refund twice: only resolve is offered."""
    text = state_text(_parked(settlement_begun=True))
    assert "a settlement by hand has begun and may have posted" in text
    assert "Finish it with `starter.py resolve t-9 --note ...`" in text
    assert "retry" not in text
