"""The hard cases: cancellation, stuck compensations and operators, deadlines, late arrivals."""

import asyncio
import contextlib
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities import LedgerActivities, StepInput, StepResult
from activities.ledger_activities import OperatorActionInput, OperatorActionResult
from app.transfers import wait_outcome
from ledger import LedgerStore, PostingKind, StepVoided
from tests.support.doubles import freezing_credit, hanging_step, stalled_step
from tests.support.ledgers import balances, opening_balances
from tests.support.transfers import (
    new_id,
    park,
    postings_of,
    request,
    run,
    wait_for_status,
)
from tests.support.workers import transfer_worker
from workflows.contract import ResolveRequest, RetryRequest, StepStatus, TransferStatus
from workflows.operators import UNKNOWN_OPERATOR
from workflows.transfer import TransferWorkflow

REFUND_ALL = [("debit", "debit"), ("reverse_credit", "void"), ("reverse_debit", "reversal")]


# -- cancellation -----------------------------------------------------------------


async def test_a_cancelled_transfer_an_operator_settled_closes_as_resolved(
    dev_env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """Cancelled, refund refused, resolved by hand: the money is not back, so not 'cancelled'."""
    client = dev_env.client
    credit, started = hanging_step("credit")
    transfer_id = new_id()
    async with transfer_worker(client, store, credit=credit) as tq:
        handle = await client.start_workflow(
            TransferWorkflow.run,
            request("ACC-001", "ACC-002", "80"),
            id=transfer_id,
            task_queue=tq,
        )
        await asyncio.wait_for(started.wait(), 30)
        store.freeze_account("ACC-001")  # the refund will be refused
        await handle.cancel()
        await wait_for_status(handle, TransferStatus.NEEDS_ATTENTION)
        await handle.execute_update(
            TransferWorkflow.resolve, ResolveRequest(note="Cheque 77", operator="op")
        )
        outcome = await wait_outcome(handle)
        description = await handle.describe()
    assert ("resolved", "Cancelled") == (outcome.status, outcome.error_type)
    assert "resolved by an operator" in (outcome.error_message or "")
    assert WorkflowExecutionStatus.FAILED == description.status
    assert [
        ("debit", "debit"),
        ("reverse_credit", "void"),
        ("settle_manually", "manual"),
    ] == postings_of(store, transfer_id)
    assert Decimal("920.00") == balances(store)["ACC-001"]


async def test_cancel_before_the_debit_moves_nothing_and_voids_the_debit(
    client: Client, store: LedgerStore
) -> None:
    """Cancelled before any worker ran it: the debit key is voided, nothing moves."""
    transfer_id, task_queue = new_id(), f"test-{uuid.uuid4()}"
    handle = await client.start_workflow(
        TransferWorkflow.run,
        request("ACC-001", "ACC-002", "70"),
        id=transfer_id,
        task_queue=task_queue,
    )
    await handle.cancel()
    async with transfer_worker(client, store, task_queue=task_queue):
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 60)
        state = await handle.query(TransferWorkflow.state)
    assert isinstance(info.value.cause, CancelledError)
    assert TransferStatus.CANCELLED == state.status
    assert [("reverse_debit", "void")] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


async def test_cancel_between_debit_and_credit_refunds_the_debit(
    dev_env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """The cancel lands right as the debit commits: the debit is refunded, the credit voided."""
    # On the dev server: the time-skipping server rejects the workflow's
    # cancel-activity command when it races the activity's completion
    # ("ACTIVITY_UNKNOWN") and then never schedules another workflow task.
    client = dev_env.client
    real = LedgerActivities(store)
    transfer_id = new_id()

    @activity.defn(name="debit")
    async def debit_then_cancel(step: StepInput) -> StepResult:
        result = await asyncio.to_thread(real.debit, step)
        await client.get_workflow_handle(transfer_id).cancel()
        return result

    async with transfer_worker(client, store, debit=debit_then_cancel) as tq:
        failure, state = await run(client, tq, request("ACC-001", "ACC-002", "70"), transfer_id)
    assert isinstance(failure, WorkflowFailureError)
    assert isinstance(failure.cause, CancelledError)
    assert TransferStatus.CANCELLED == state.status
    # Whether the cancel reached the workflow just before or just after the
    # debit's completion, the debit is refunded and the credit never applies.
    postings = postings_of(store, transfer_id)
    assert [("debit", "debit"), ("reverse_debit", "reversal")] == [
        p for p in postings if p[0] != "reverse_credit"
    ]
    assert set(postings) - set(REFUND_ALL) == set()
    assert opening_balances() == balances(store)


async def test_cancel_while_the_credit_is_in_flight_refunds_the_debit(
    client: Client, store: LedgerStore
) -> None:
    """Cancel while the credit hangs: the debit is refunded and the credit voided."""
    stuck_credit, credit_started = hanging_step("credit")

    transfer_id = new_id()
    async with transfer_worker(client, store, credit=stuck_credit) as tq:
        handle = await client.start_workflow(
            TransferWorkflow.run, request("ACC-001", "ACC-002", "40"), id=transfer_id, task_queue=tq
        )
        await asyncio.wait_for(credit_started.wait(), 30)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 60)
        state = await handle.query(TransferWorkflow.state)

    assert isinstance(info.value.cause, CancelledError)
    assert TransferStatus.CANCELLED == state.status
    assert REFUND_ALL == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


async def test_cancelling_a_completed_transfer_changes_nothing(
    client: Client, store: LedgerStore
) -> None:
    """The server refuses the cancel; the money stays moved and the result stands."""
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        result, _ = await run(client, tq, request("ACC-001", "ACC-002", "10"), transfer_id)
        handle = client.get_workflow_handle_for(TransferWorkflow.run, transfer_id)
        with contextlib.suppress(RPCError):  # a real server refuses; the test server ignores it
            await handle.cancel()
        assert result == await handle.result()
        assert TransferStatus.COMPLETED == (await handle.query(TransferWorkflow.state)).status
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    assert Decimal("990.00") == balances(store)["ACC-001"]


# -- a compensation that cannot succeed ---------------------------------------------


async def test_a_refused_refund_parks_the_transfer_with_the_money_in_clearing(
    client: Client, store: LedgerStore
) -> None:
    """Source frozen before its refund: needs_attention, reason recorded, money visible."""
    transfer_id = new_id()
    async with transfer_worker(client, store, credit=freezing_credit(store, "ACC-001")) as tq:
        handle = await park(client, store, tq, transfer_id)
        state = await handle.query(TransferWorkflow.state)  # type: ignore[attr-defined]
        await handle.terminate("test over")  # type: ignore[attr-defined]

    assert TransferStatus.NEEDS_ATTENTION == state.status
    assert "AccountNotFound" == state.error.type  # type: ignore[union-attr]
    assert [("AccountFrozen", "Account is frozen: ACC-001")] == [
        (e.type, e.message) for e in state.compensation_errors
    ]
    assert ["reverse_debit"] == state.pending_compensations
    assert StepStatus.FAILED == state.step("reverse_debit").status
    assert [("debit", "debit"), ("reverse_credit", "void")] == postings_of(store, transfer_id)
    after = balances(store)
    assert (Decimal("80.00"), Decimal("920.00")) == (after["CLEARING"], after["ACC-001"])


async def test_retry_after_unfreezing_completes_the_compensation(
    client: Client, store: LedgerStore
) -> None:
    """Retry while still frozen stays parked; after unfreeze the retry refunds and closes."""
    transfer_id = new_id()
    async with transfer_worker(client, store, credit=freezing_credit(store, "ACC-001")) as tq:
        handle = await park(client, store, tq, transfer_id)
        still = await handle.execute_update(  # type: ignore[attr-defined]
            TransferWorkflow.retry, RetryRequest(note="first try")
        )
        store.unfreeze_account("ACC-001")
        done = await handle.execute_update(  # type: ignore[attr-defined]
            TransferWorkflow.retry, RetryRequest(note="account unfrozen by fraud team")
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()  # type: ignore[attr-defined]

    assert TransferStatus.NEEDS_ATTENTION == still.status
    assert "Account is frozen: ACC-001" in still.operator_actions[0].outcome
    assert TransferStatus.COMPENSATED == done.status
    assert [("retry", "first try"), ("retry", "account unfrozen by fraud team")] == [
        (a.action, a.note) for a in done.operator_actions
    ]
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert ("AccountNotFound", ["compensated"]) == (cause.type, list(cause.details))
    assert REFUND_ALL == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


async def test_resolve_settles_the_clearing_money_by_hand_with_its_own_key(
    client: Client, store: LedgerStore
) -> None:
    """Resolve moves the stuck 80.00 out of clearing under `<id>/settle_manually`, with the note."""
    transfer_id = new_id()
    note = "Paid back by cheque 1234; account stays frozen"
    async with transfer_worker(client, store, credit=freezing_credit(store, "ACC-001")) as tq:
        handle = await park(client, store, tq, transfer_id)
        state = await handle.execute_update(  # type: ignore[attr-defined]
            TransferWorkflow.resolve, ResolveRequest(note=note)
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()  # type: ignore[attr-defined]

    assert TransferStatus.RESOLVED == state.status
    assert [] == state.pending_compensations
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert ("AccountNotFound", ["resolved"]) == (cause.type, list(cause.details))
    assert [("debit", "debit"), ("reverse_credit", "void"), ("settle_manually", "manual")] == (
        postings_of(store, transfer_id)
    )
    settlement = store.find_receipt(f"{transfer_id}/settle_manually")
    assert settlement is not None
    assert ("CLEARING", "EXTERNAL", Decimal("80.00"), note) == (
        settlement.from_account,
        settlement.to_account,
        settlement.amount,
        settlement.memo,
    )
    after = balances(store)
    assert (Decimal("0.00"), Decimal("920.00")) == (after["CLEARING"], after["ACC-001"])


async def test_a_parked_transfer_ignores_cancellation_until_an_operator_acts(
    client: Client, store: LedgerStore
) -> None:
    """Compensation is shielded: a cancel while parked neither ends it nor skips the refund."""
    transfer_id = new_id()
    async with transfer_worker(client, store, credit=freezing_credit(store, "ACC-001")) as tq:
        handle = await park(client, store, tq, transfer_id)
        await handle.cancel()  # type: ignore[attr-defined]
        await asyncio.sleep(0.5)
        parked = await handle.query(TransferWorkflow.state)  # type: ignore[attr-defined]
        store.unfreeze_account("ACC-001")
        done = await handle.execute_update(TransferWorkflow.retry, RetryRequest())  # type: ignore[attr-defined]
    assert TransferStatus.NEEDS_ATTENTION == parked.status
    assert TransferStatus.COMPENSATED == done.status
    assert opening_balances() == balances(store)


async def test_operator_actions_are_refused_unless_the_transfer_needs_attention(
    client: Client, store: LedgerStore
) -> None:
    """Retry or resolve on a running transfer is rejected before it reaches the history."""
    slow_credit, credit_started = hanging_step("credit")

    async with transfer_worker(client, store, credit=slow_credit) as tq:
        handle = await client.start_workflow(
            TransferWorkflow.run, request("ACC-001", "ACC-002", "5"), id=new_id(), task_queue=tq
        )
        await asyncio.wait_for(credit_started.wait(), 30)
        for update, arg in [
            (TransferWorkflow.retry, RetryRequest()),
            (TransferWorkflow.resolve, ResolveRequest(note="no")),
        ]:
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await handle.execute_update(update, arg)  # type: ignore[arg-type]
            cause = info.value.cause
            assert isinstance(cause, ApplicationError)
            assert "NotNeedsAttention" == cause.type
            assert "is running" in cause.message
        await handle.terminate("test over")


# -- the operator log ------------------------------------------------------------------


async def test_retry_and_resolve_are_logged_in_the_ledger_before_they_act(
    client: Client, store: LedgerStore
) -> None:
    """Each action is logged under `<id>/operator/<update id>`, who and why, before it runs."""
    real = LedgerActivities(store)
    seen: list[list[tuple[str, str]]] = []  # the transfer's postings as each entry was written

    @activity.defn(name="record_operator_action")
    def record(entry: OperatorActionInput) -> OperatorActionResult:
        seen.append(postings_of(store, activity.info().workflow_id or ""))
        return real.record_operator_action(entry)

    retried, resolved = new_id(), new_id()
    worker = transfer_worker(
        client, store, credit=freezing_credit(store, "ACC-001"), record_operator_action=record
    )
    async with worker as tq:
        handle = await park(client, store, tq, retried)
        store.unfreeze_account("ACC-001")
        after_retry = await handle.execute_update(
            TransferWorkflow.retry,
            RetryRequest(note="Unfrozen by the fraud team", operator="alice@ops"),
            id="retry-1",
        )
        handle = await park(client, store, tq, resolved)
        after_resolve = await handle.execute_update(
            TransferWorkflow.resolve,
            ResolveRequest(note="Paid by cheque 1234", operator="bob@ops"),
            id="resolve-1",
        )

    parked = [("debit", "debit"), ("reverse_credit", "void")]
    assert [parked, parked] == seen
    assert [
        (f"{retried}/operator/retry-1", retried, "retry", "alice@ops", "Unfrozen by the fraud team")
    ] == [
        (r.key, r.transfer_id, r.action, r.operator, r.note)
        for r in store.operator_actions(retried)
    ]
    assert [
        (f"{resolved}/operator/resolve-1", resolved, "resolve", "bob@ops", "Paid by cheque 1234")
    ] == [
        (r.key, r.transfer_id, r.action, r.operator, r.note)
        for r in store.operator_actions(resolved)
    ]
    assert (TransferStatus.COMPENSATED, TransferStatus.RESOLVED) == (
        after_retry.status,
        after_resolve.status,
    )
    assert [("alice@ops", "compensations completed")] == [
        (a.operator, a.outcome) for a in after_retry.operator_actions
    ]
    assert [("bob@ops", "settled by hand")] == [
        (a.operator, a.outcome) for a in after_resolve.operator_actions
    ]
    assert REFUND_ALL == postings_of(store, retried)
    assert [*parked, ("settle_manually", "manual")] == postings_of(store, resolved)


async def test_a_retried_attempt_to_log_an_action_writes_one_entry(
    client: Client, store: LedgerStore
) -> None:
    """The first attempt commits but its reply is lost; the second finds the entry: one row."""
    real = LedgerActivities(store)
    results: list[OperatorActionResult] = []

    @activity.defn(name="record_operator_action")
    def reply_lost(entry: OperatorActionInput) -> OperatorActionResult:
        result = real.record_operator_action(entry)
        results.append(result)
        if activity.info().attempt == 1:
            raise ApplicationError("Connection lost after the commit", type="OperationalError")
        return result

    transfer_id = new_id()
    worker = transfer_worker(
        client, store, credit=freezing_credit(store, "ACC-001"), record_operator_action=reply_lost
    )
    async with worker as tq:
        handle = await park(client, store, tq, transfer_id)
        state = await handle.execute_update(TransferWorkflow.retry, RetryRequest())
        await handle.terminate("test over")

    assert [(1, False), (2, True)] == [(r.attempt, r.record.replayed) for r in results]
    [entry] = store.operator_actions(transfer_id)
    assert ("retry", UNKNOWN_OPERATOR, None) == (entry.action, entry.operator, entry.note)
    assert [(UNKNOWN_OPERATOR, None)] == [(a.operator, a.note) for a in state.operator_actions]
    assert 1 == len(store.operator_actions())


async def test_an_action_the_ledger_cannot_log_is_not_carried_out(
    client: Client, store: LedgerStore
) -> None:
    """No entry in the operator log, no action: the refund does not run and the transfer waits."""

    @activity.defn(name="record_operator_action")
    def refused(entry: OperatorActionInput) -> OperatorActionResult:
        raise ApplicationError("Operator log refused", type="InvalidOperator", non_retryable=True)

    transfer_id = new_id()
    worker = transfer_worker(
        client, store, credit=freezing_credit(store, "ACC-001"), record_operator_action=refused
    )
    async with worker as tq:
        handle = await park(client, store, tq, transfer_id)
        store.unfreeze_account("ACC-001")
        state = await handle.execute_update(
            TransferWorkflow.retry, RetryRequest(note="unfrozen", operator="alice")
        )
        await handle.terminate("test over")

    assert TransferStatus.NEEDS_ATTENTION == state.status
    assert [
        (
            "alice",
            "not carried out: recording it in the ledger failed: Operator log refused",
        )
    ] == [(a.operator, a.outcome) for a in state.operator_actions]
    assert [("debit", "debit"), ("reverse_credit", "void")] == postings_of(store, transfer_id)
    assert Decimal("80.00") == balances(store)["CLEARING"]


# -- deadlines and late arrivals ------------------------------------------------------


async def test_a_hung_step_ends_in_compensation_within_the_deadline(
    client: Client, store: LedgerStore
) -> None:
    """The debit hangs forever; at the 4 s deadline the transfer compensates and says why."""
    hung_debit, _ = hanging_step("debit")
    transfer_id = new_id()
    async with transfer_worker(client, store, debit=hung_debit) as tq:
        failure, state = await run(
            client, tq, request("ACC-001", "ACC-002", "30", deadline_seconds=4), transfer_id
        )
        history = await client.get_workflow_handle(transfer_id).fetch_history()

    assert isinstance(failure, WorkflowFailureError)
    assert isinstance(failure.cause, ApplicationError)
    assert ("DeadlineExceeded", "Transfer did not complete within 4s") == (
        failure.cause.type,
        failure.cause.message,
    )
    assert TransferStatus.COMPENSATED == state.status
    assert "DeadlineExceeded" == state.step("debit").error.type  # type: ignore[union-attr]
    events = list(history.events)
    started, closed = events[0].event_time.ToDatetime(), events[-1].event_time.ToDatetime()
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED == events[-1].event_type
    assert closed - started < timedelta(seconds=4 + 5), "compensated well after the deadline"
    assert [("reverse_debit", "void")] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


async def test_a_late_debit_attempt_is_refused_after_its_compensation_voided_it(
    client: Client, store: LedgerStore
) -> None:
    """An attempt outlives its deadline, the saga voids it, then it commits: StepVoided."""
    real = LedgerActivities(store)
    release = threading.Event()
    outcomes: list[BaseException | StepResult] = []
    # Blocks past the deadline, like a stalled database call.
    slow_debit = stalled_step("debit", real.debit, release, outcomes, up_to=60)
    transfer_id = new_id()
    async with transfer_worker(client, store, debit=slow_debit) as tq:
        failure, state = await run(
            client, tq, request("ACC-001", "ACC-002", "45", deadline_seconds=2), transfer_id
        )
        assert [("reverse_debit", "void")] == postings_of(store, transfer_id)
        release.set()  # the stalled attempt now reaches the ledger
        for _ in range(100):
            if outcomes:
                break
            await asyncio.sleep(0.1)

    assert isinstance(failure, WorkflowFailureError)
    assert TransferStatus.COMPENSATED == state.status
    [late] = outcomes
    assert isinstance(late, ApplicationError)
    assert StepVoided.__name__ == late.type
    assert [("reverse_debit", "void")] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)
    assert all(r.kind != PostingKind.DEBIT for r in store.receipts())
