"""Low-latency mode: the same saga with local activities, and eager workflow start."""

from decimal import Decimal
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from app.transfers import TransferOutcome, start_transfer, wait_outcome
from ledger import LedgerStore
from tests.support.doubles import freezing_credit, hanging_step
from tests.support.ledgers import balances, opening_balances
from tests.support.transfers import new_id, postings_of, request, wait_for_status
from tests.support.workers import transfer_worker
from workflows.contract import (
    RetryRequest,
    StepStatus,
    TransferRequest,
    TransferState,
    TransferStatus,
)
from workflows.low_latency import LowLatencyTransferWorkflow


async def _run_low_latency(
    client: Client, task_queue: str, req: TransferRequest, transfer_id: str, *, eager: bool = False
) -> tuple[Any, TransferOutcome, TransferState]:
    """Start in low-latency mode; wait for the outcome; return handle, outcome and state."""
    handle, _ = await start_transfer(
        client, req, transfer_id=transfer_id, task_queue=task_queue, low_latency=True, eager=eager
    )
    outcome = await wait_outcome(handle)
    return handle, outcome, await handle.query(LowLatencyTransferWorkflow.state)


def _kinds(history: object) -> list[str]:
    return [
        EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        for e in history.events  # type: ignore[attr-defined]
    ]


async def test_a_low_latency_transfer_moves_the_money_in_one_workflow_task(
    client: Client, store: LedgerStore
) -> None:
    """Both steps run inside the first workflow task and are recorded as markers."""
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        handle, outcome, state = await _run_low_latency(
            client, tq, request("ACC-001", "ACC-002", "150"), transfer_id
        )
        history = await handle.fetch_history()
    assert outcome.ok
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    expected = opening_balances() | {"ACC-001": Decimal("850.00"), "ACC-002": Decimal("650.00")}
    assert expected == balances(store)
    assert [StepStatus.COMPLETED, StepStatus.COMPLETED] == [s.status for s in state.steps]
    kinds = _kinds(history)
    assert 2 == kinds.count("MARKER_RECORDED")
    assert not [k for k in kinds if k.startswith("ACTIVITY_TASK")]
    assert 1 == kinds.count("WORKFLOW_TASK_COMPLETED")


async def test_a_refused_credit_is_compensated_in_low_latency_mode(
    client: Client, store: LedgerStore
) -> None:
    """Credit to a missing account: the debit is reversed, balances as they were."""
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        _, outcome, state = await _run_low_latency(
            client, tq, request("ACC-001", "ACC-999", "200"), transfer_id
        )
    assert ("compensated", "AccountNotFound") == (outcome.status, outcome.error_type)
    assert TransferStatus.COMPENSATED == state.status
    assert [
        ("debit", "debit"),
        ("reverse_credit", "void"),
        ("reverse_debit", "reversal"),
    ] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


async def test_a_parked_low_latency_transfer_logs_the_operator_action_locally(
    client: Client, store: LedgerStore
) -> None:
    """The operator log entry is a local activity too, written before the retried refund."""
    transfer_id = new_id()
    async with transfer_worker(client, store, credit=freezing_credit(store)) as tq:
        handle, _ = await start_transfer(
            client,
            request("ACC-001", "ACC-404", "80"),
            transfer_id=transfer_id,
            task_queue=tq,
            low_latency=True,
        )
        await wait_for_status(handle, TransferStatus.NEEDS_ATTENTION)
        store.unfreeze_account("ACC-001")
        state = await handle.execute_update(
            LowLatencyTransferWorkflow.retry,
            RetryRequest(note="Unfrozen", operator="alice"),
            id="retry-1",
        )
    assert TransferStatus.COMPENSATED == state.status
    assert [(f"{transfer_id}/operator/retry-1", "alice", "Unfrozen")] == [
        (r.key, r.operator, r.note) for r in store.operator_actions(transfer_id)
    ]
    assert opening_balances() == balances(store)


async def test_a_hung_local_step_compensates_at_the_deadline(
    client: Client, store: LedgerStore
) -> None:
    """The deadline bounds a local activity's schedule-to-close too."""
    hung_debit, _ = hanging_step("debit")
    transfer_id = new_id()
    async with transfer_worker(client, store, debit=hung_debit) as tq:
        handle, _ = await start_transfer(
            client,
            request("ACC-001", "ACC-002", "30", deadline_seconds=3),
            transfer_id=transfer_id,
            task_queue=tq,
            low_latency=True,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, ApplicationError)
        assert "DeadlineExceeded" == failure.value.cause.type
        state = await handle.query(LowLatencyTransferWorkflow.state)
    assert TransferStatus.COMPENSATED == state.status
    assert [("reverse_debit", "void")] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


async def test_eager_start_hands_the_first_task_to_this_process(
    dev_env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """With a worker on the same client, the server returns the first task with the start."""
    client = dev_env.client
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        handle, outcome, _ = await _run_low_latency(
            client, tq, request("ACC-001", "ACC-002", "15"), transfer_id, eager=True
        )
        assert outcome.ok
    assert getattr(handle, "__temporal_eagerly_started", False), "the start was not eager"
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
