"""What `starter.py status` and `list` tell an operator about a parked or a dated transfer."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.fleet import TransferRow
from app.render import relative, state_text, transfer_table
from ledger import PostingKind, Receipt, shown_amount
from workflows.contract import StepState, TransferRequest, TransferState, TransferStatus
from workflows.visibility import step_summary, transfer_summary

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _parked(
    status: TransferStatus = TransferStatus.NEEDS_ATTENTION,
    execute_at: datetime | None = None,
    **extra: object,
) -> TransferState:
    return TransferState(
        transfer_id="t-9",
        request=TransferRequest(
            source_account="ACC-001",
            destination_account="ACC-404",
            amount=Decimal("80"),
            execute_at=execute_at,
        ),
        status=status,
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


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (timedelta(days=23, hours=4, minutes=59, seconds=59), "in 23d 4h"),
        (timedelta(days=1, minutes=5), "in 1d"),
        (timedelta(minutes=4, seconds=12), "in 4m 12s"),
        (timedelta(seconds=42), "in 42s"),
        (timedelta(milliseconds=300), "now"),
        (-timedelta(hours=3, minutes=2), "3h 2m ago"),
    ],
)
def test_times_are_told_from_now_in_their_two_largest_units(delta: timedelta, shown: str) -> None:
    """`in 23d 4h`, `in 1d` (not `1d 0h`), `in 4m 12s`, `now`, `3h 2m ago`."""
    assert shown == relative(NOW + delta, NOW)


def test_a_scheduled_transfer_says_when_it_runs() -> None:
    """Status `scheduled`: the date in UTC, how far off, and that nothing is posted until then."""
    due = datetime(2026, 12, 24, 10, 30, 0, 250_000, tzinfo=UTC)
    text = state_text(_parked(TransferStatus.SCHEDULED, execute_at=due), now=NOW)
    assert (
        "  Scheduled for 2026-12-24T10:30:00Z (in 23d 1h): nothing is posted until then"
        in text.splitlines()
    )
    # Once it runs, the date is history: not shown.
    assert "Scheduled" not in state_text(_parked(TransferStatus.RUNNING, execute_at=due), now=NOW)


def test_a_parked_transfer_says_when_it_retries_by_itself_and_until_when() -> None:
    """Parked since, retries so far, the next one and the window's end, each from now."""
    state = _parked(
        pending_compensations=["reverse_debit"],
        parked_since=NOW - timedelta(minutes=6),
        retry_until=NOW + timedelta(days=2, hours=23, minutes=54),
        next_retry_at=NOW + timedelta(minutes=29),
        automatic_retries=2,
    )
    lines = state_text(state, now=NOW).splitlines()
    assert "  Parked since 2026-12-01T08:54:00Z (6m ago)" in lines
    assert (
        "  Automatic retries: 2 so far; next at 2026-12-01T09:29:00Z (in 29m); "
        "until 2026-12-04T08:54:00Z (in 2d 23h)"
    ) in lines
    assert "Overdue" not in "\n".join(lines)


def test_an_overdue_transfer_says_only_an_operator_can_settle_it() -> None:
    """Past its window: overdue, when the retries ended, and no next retry."""
    state = _parked(
        pending_compensations=["reverse_debit"],
        parked_since=NOW - timedelta(days=3, hours=2),
        retry_until=NOW - timedelta(hours=2),
        automatic_retries=9,
        overdue=True,
    )
    lines = state_text(state, now=NOW).splitlines()
    assert "  Parked since 2026-11-28T07:00:00Z (3d 2h ago)" in lines
    assert (
        "  Overdue: automatic retries (9 so far) ended at 2026-12-01T07:00:00Z (2h ago); "
        "only an operator can settle it now"
    ) in lines
    assert "next at" not in "\n".join(lines)


def test_a_transfer_parked_before_automatic_retries_existed_shows_none() -> None:
    """No `parked_since` (an older transfer): nothing about automatic retries is made up."""
    text = state_text(_parked(pending_compensations=["reverse_debit"]), now=NOW)
    assert "Automatic retries" not in text
    assert "Parked since" not in text


def test_list_overdue_shows_since_when_and_until_when() -> None:
    """`list --overdue`'s table: Parked since and Retried until columns instead of Started."""
    row = TransferRow(
        transfer_id="t-9",
        status="needs_attention",
        amount=80.0,
        source_account="ACC-001",
        destination_account="ACC-404",
        started=NOW - timedelta(days=4),
        closed=None,
        parked_since=NOW - timedelta(days=3),
        retry_until=NOW - timedelta(seconds=1),
    )
    header, line = transfer_table([row], parked=True).splitlines()
    assert header.endswith("To           Parked since         Retried until")
    assert line.endswith("ACC-404      2026-11-28 09:00:00  2026-12-01 08:59:59")
    assert transfer_table([row]).splitlines()[1].endswith("ACC-404      2026-11-27 09:00:00")


def _yen_receipt(step: str) -> Receipt:
    return Receipt(
        key=f"t-yen/{step}",
        kind=PostingKind.DEBIT,
        amount=Decimal("1500"),
        from_account="JPY-001",
        to_account="CLEARING",
        reverses=None,
        posted_at=NOW,
        currency="JPY",
    )


def test_amounts_are_shown_in_their_currencys_places() -> None:
    """Yen have no minor unit, dinars three places; without a currency, two as always."""
    request = TransferRequest(
        source_account="JPY-001", destination_account="JPY-002", amount="1500", currency="JPY"
    )
    debit = StepState(name="debit", kind="forward", result=_yen_receipt("debit"))
    state = TransferState(
        transfer_id="t-yen", request=request, status=TransferStatus.RUNNING, steps=[debit]
    )
    text = state_text(state, NOW)
    assert "Transfer t-yen: 1,500 JPY-001 -> JPY-002" in text
    assert "1,500 JPY-001 -> CLEARING" in text
    assert "1,500.00" not in text
    assert "Transfer 1500 JPY-001 -> JPY-002" == transfer_summary(request)
    assert "debit JPY-001 1500" == step_summary("debit", "JPY-001", Decimal("1500"), "JPY")
    assert "12.345" == shown_amount(Decimal("12.345"), "BHD")
    assert "80.00" == shown_amount(Decimal("80"))
