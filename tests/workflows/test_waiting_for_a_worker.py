"""A transfer started while no worker serves its queue: its deadline counts from its start.

On the dev server, in real time: the time-skipping server does not skip time
while a workflow task waits for a worker.
"""

import asyncio
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from ledger import LedgerStore
from tests.keys import TEST_CONVERTER
from tests.support.ledgers import balances, opening_balances
from tests.support.transfers import new_id, postings_of, request
from tests.support.workers import transfer_worker
from workflows.contract import StepStatus, TransferStatus
from workflows.transfer import TransferWorkflow


async def test_a_deadline_that_passed_before_a_worker_came_moves_no_money(
    dev_env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """Deadline 2 s, first worker 3 s later: compensated, DeadlineExceeded, no posting; replays."""
    transfer_id, task_queue = new_id(), f"test-{new_id()}"
    handle = await dev_env.client.start_workflow(
        TransferWorkflow.run,
        request("ACC-001", "ACC-002", "30", deadline_seconds=2),
        id=transfer_id,
        task_queue=task_queue,
    )
    await asyncio.sleep(3)  # no worker polls the queue meanwhile
    async with transfer_worker(dev_env.client, store, task_queue=task_queue):
        try:
            await handle.result()
            raise AssertionError("the transfer completed after its deadline")
        except WorkflowFailureError as err:
            failure = err
        state = await handle.query(TransferWorkflow.state)
        history = await handle.fetch_history()

    assert isinstance(failure.cause, ApplicationError)
    assert ("DeadlineExceeded", "Transfer did not complete within 2s") == (
        failure.cause.type,
        failure.cause.message,
    )
    assert TransferStatus.COMPENSATED == state.status
    assert StepStatus.SKIPPED == state.step("debit").status
    reverse_debit = state.step("reverse_debit")
    assert (StepStatus.SKIPPED, "NeverScheduled") == (
        reverse_debit.status,
        reverse_debit.error.type if reverse_debit.error else None,
    )
    assert [] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)
    replayer = Replayer(workflows=[TransferWorkflow], data_converter=TEST_CONVERTER)
    assert (await replayer.replay_workflow(history)).replay_failure is None


async def test_time_spent_waiting_for_a_worker_counts_against_the_deadline(
    dev_env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """Deadline 30 s, first worker 3 s later: the debit gets at most the 27 s left."""
    transfer_id, task_queue = new_id(), f"test-{new_id()}"
    handle = await dev_env.client.start_workflow(
        TransferWorkflow.run,
        request("ACC-001", "ACC-002", "30", deadline_seconds=30),
        id=transfer_id,
        task_queue=task_queue,
    )
    await asyncio.sleep(3)
    async with transfer_worker(dev_env.client, store, task_queue=task_queue):
        await handle.result()
        history = await handle.fetch_history()

    [debit, _credit] = [
        e.activity_task_scheduled_event_attributes.schedule_to_close_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert debit <= timedelta(seconds=27)
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
