"""Time that passes: transfers dated ahead and compensations that keep trying, in simulated time.

Every test runs on the time-skipping test server: days of waiting on
workflow timers pass in well under a second of wall time. The end of the
run prints each test's simulated and wall time (tests/support/skipping.py),
and each test fails if it takes more than `WALL_LIMIT` seconds of wall time.
"""

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from ledger import LedgerStore
from tests.support.doubles import freezing_credit
from tests.support.ledgers import balances, opening_balances
from tests.support.skipping import Clock, skipping, time_skipping_server
from tests.support.transfers import new_id, park, postings_of, request, wait_for_status
from tests.support.workers import transfer_worker
from workflows.contract import (
    ResolveRequest,
    StepStatus,
    TransferRequest,
    TransferResult,
    TransferState,
    TransferStatus,
)
from workflows.retries import BACKOFF, THEN_EVERY
from workflows.transfer import TransferWorkflow
from workflows.visibility import PARKED_SINCE, RETRY_UNTIL

#: The wall time any of these may take (each takes about a second).
WALL_LIMIT = 20
pytestmark = pytest.mark.timeout(WALL_LIMIT)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own.

    The session's shared one can stop skipping for good: an activity that
    a test left hanging when it cancelled or terminated its workflow keeps
    the server's clock locked (a quirk of the test server).
    """
    environment = await time_skipping_server()
    try:
        yield environment
    finally:
        await environment.shutdown()


async def _start(
    env: WorkflowEnvironment, clock: Clock, task_queue: str, req: TransferRequest, transfer_id: str
) -> WorkflowHandle[Any, Any]:
    """Start `req` as `transfer_id` on `task_queue`: the transfer whose span the clock measures."""
    return clock.follow(
        await env.client.start_workflow(
            TransferWorkflow.run, req, id=transfer_id, task_queue=task_queue
        )
    )


async def _state(handle: object) -> TransferState:
    state: TransferState = await handle.query(TransferWorkflow.state)  # type: ignore[attr-defined]
    return state


async def test_a_transfer_dated_30_days_ahead_is_scheduled_then_completes_on_its_date(
    env: WorkflowEnvironment, store: LedgerStore
) -> None:
    transfer_id = new_id()
    async with skipping(env, "dated 30 days ahead, then completed") as clock:
        due = await env.get_current_time() + timedelta(days=30)
        async with transfer_worker(env.client, store) as tq:
            handle = await _start(
                env, clock, tq, request("ACC-001", "ACC-002", "150", execute_at=due), transfer_id
            )
            scheduled = await wait_for_status(handle, TransferStatus.SCHEDULED)
            assert [] == postings_of(store, transfer_id)
            assert opening_balances() == balances(store)
            assert all(step.status == StepStatus.PENDING for step in scheduled.steps)

            result = await handle.result()
            closed = (await handle.describe()).close_time

    assert isinstance(result, TransferResult)
    assert closed is not None
    assert closed >= due
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    expected = opening_balances()
    expected["ACC-001"] -= Decimal("150")
    expected["ACC-002"] += Decimal("150")
    assert expected == balances(store)


async def test_a_transfer_cancelled_while_scheduled_moves_nothing(
    env: WorkflowEnvironment, store: LedgerStore
) -> None:
    transfer_id = new_id()
    async with skipping(env, "cancelled while scheduled") as clock:
        due = await env.get_current_time() + timedelta(days=30)
        async with transfer_worker(env.client, store) as tq:
            handle = await _start(
                env, clock, tq, request("ACC-001", "ACC-002", "150", execute_at=due), transfer_id
            )
            await wait_for_status(handle, TransferStatus.SCHEDULED)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            state = await _state(handle)

    assert isinstance(failure.value.cause, CancelledError)
    assert TransferStatus.CANCELLED == state.status
    assert {StepStatus.SKIPPED} == {step.status for step in state.steps}
    assert [] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


async def test_the_deadline_counts_from_execute_at(
    env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """A one-minute deadline, dated 30 days ahead: from the start it would long have passed."""
    async with skipping(env, "deadline from execute_at") as clock:
        due = await env.get_current_time() + timedelta(days=30)
        async with transfer_worker(env.client, store) as tq:
            handle = await _start(
                env,
                clock,
                tq,
                request("ACC-001", "ACC-002", "10", execute_at=due, deadline_seconds=60),
                new_id(),
            )
            result = await handle.result()
    assert isinstance(result, TransferResult)


async def test_a_transfer_dated_too_far_ahead_fails_before_anything_moves(
    env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """A hand-written start dated beyond the bound (the starter refuses it before starting)."""
    transfer_id = new_id()
    async with skipping(env, "dated too far ahead") as clock:
        due = await env.get_current_time() + timedelta(days=400)
        async with transfer_worker(env.client, store) as tq:
            handle = await _start(
                env, clock, tq, request("ACC-001", "ACC-002", "10", execute_at=due), transfer_id
            )
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert "ScheduledTooFarAhead" == cause.type
    assert "366 days" in cause.message
    assert [] == postings_of(store, transfer_id)


async def test_a_refused_refund_retries_by_itself_and_completes_once_the_account_is_unfrozen(
    env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """Frozen for two simulated days, then unfrozen: the refund goes through with no operator."""
    transfer_id = new_id()
    async with (
        skipping(env, "refund retried by itself for 2 days, then completed") as clock,
        transfer_worker(env.client, store, credit=freezing_credit(store)) as tq,
    ):
        handle = clock.follow(await park(env.client, store, tq, transfer_id))
        parked = await _state(handle)
        attributes = (await handle.describe()).typed_search_attributes

        await env.sleep(timedelta(days=2))
        waiting = await _state(handle)
        store.unfreeze_account("ACC-001")
        with pytest.raises(WorkflowFailureError):
            await handle.result()  # compensated: fails with the credit's reason
        final = await _state(handle)

    assert parked.parked_since is not None
    assert parked.parked_since + timedelta(days=3) == parked.retry_until
    assert parked.parked_since + BACKOFF[0] == parked.next_retry_at
    assert parked.parked_since == attributes.get(PARKED_SINCE)
    assert parked.retry_until == attributes.get(RETRY_UNTIL)
    # 1 min, 5 min, 30 min, 2 h, then every 6 h: 11 retries in two days.
    assert TransferStatus.NEEDS_ATTENTION == waiting.status
    assert 11 == waiting.automatic_retries
    assert not waiting.overdue
    assert TransferStatus.COMPENSATED == final.status
    assert [] == final.operator_actions
    assert [] == final.pending_compensations
    assert StepStatus.COMPENSATED == final.step("debit").status
    assert ("reverse_debit", "reversal") in postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


async def test_never_unfrozen_it_becomes_overdue_and_an_operator_still_resolves_it(
    env: WorkflowEnvironment, store: LedgerStore
) -> None:
    transfer_id = new_id()
    async with (
        skipping(env, "overdue after 3 days, then resolved") as clock,
        transfer_worker(env.client, store, credit=freezing_credit(store)) as tq,
    ):
        handle = clock.follow(await park(env.client, store, tq, transfer_id))
        await env.sleep(timedelta(days=3, hours=1))
        overdue = await _state(handle)
        await handle.execute_update(
            TransferWorkflow.resolve, ResolveRequest(note="Paid by cheque", operator="alice")
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await _state(handle)

    assert TransferStatus.NEEDS_ATTENTION == overdue.status
    assert overdue.overdue
    assert overdue.next_retry_at is None
    # 4 backed-off retries, one every 6 h after that, and a last one as the window closes.
    every_six_hours = (timedelta(days=3) - sum(BACKOFF, timedelta())) // THEN_EVERY
    assert len(BACKOFF) + every_six_hours + 1 == overdue.automatic_retries
    assert TransferStatus.RESOLVED == final.status
    assert ["alice"] == [action.operator for action in final.operator_actions]


async def test_a_transfer_with_no_retry_window_is_overdue_as_soon_as_it_parks(
    env: WorkflowEnvironment, store: LedgerStore
) -> None:
    async with (
        skipping(env, "no retry window") as clock,
        transfer_worker(env.client, store, credit=freezing_credit(store)) as tq,
    ):
        handle = await _start(
            env,
            clock,
            tq,
            request("ACC-001", "ACC-404", "80", compensation_retry_window_seconds=0),
            new_id(),
        )
        parked = await wait_for_status(handle, TransferStatus.NEEDS_ATTENTION)
        await env.sleep(timedelta(days=1))
        later = await _state(handle)
        await handle.terminate("test over")
    assert parked.overdue
    assert parked.next_retry_at is None
    assert 0 == later.automatic_retries
