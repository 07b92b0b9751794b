"""Transfers in tests: requests, ids, running one, its postings, waiting for a status."""

import asyncio
import uuid
from typing import Any

from temporalio.client import Client, WorkflowFailureError

from ledger import LedgerStore
from workflows.contract import TransferRequest, TransferState, TransferStatus
from workflows.transfer import TransferWorkflow


def request(source: str, destination: str, amount: str, **extra: Any) -> TransferRequest:
    """A transfer request between two accounts of one ledger."""
    return TransferRequest(
        source_account=source, destination_account=destination, amount=amount, **extra
    )


def new_id() -> str:
    """A transfer id of its own."""
    return f"transfer-{uuid.uuid4()}"


def postings_of(store: LedgerStore, transfer_id: str) -> list[tuple[str, str]]:
    """(step, kind) of every posting and void this transfer made, in order."""
    return [
        (r.key.rsplit("/", 1)[1], r.kind.value)
        for r in store.receipts()
        if r.key.startswith(f"{transfer_id}/")
    ]


async def run(
    client: Client, task_queue: str, req: TransferRequest, transfer_id: str | None = None
) -> tuple[Any, TransferState]:
    """Execute a transfer; return (result or failure, final state)."""
    handle = await client.start_workflow(
        TransferWorkflow.run, req, id=transfer_id or new_id(), task_queue=task_queue
    )
    try:
        outcome: Any = await handle.result()
    except WorkflowFailureError as err:
        outcome = err
    return outcome, await handle.query(TransferWorkflow.state)


async def wait_for_status(handle: Any, status: TransferStatus) -> TransferState:
    """Poll the state query until the transfer reaches `status` (at most 30 s)."""
    for _ in range(300):
        state: TransferState = await handle.query(TransferWorkflow.state)
        if state.status == status:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"transfer never reached {status}; last {state.status}")


async def park(client: Client, store: LedgerStore, task_queue: str, transfer_id: str) -> Any:
    """Start Alice -> ACC-404 80.00 on a worker with `freezing_credit`; wait until parked.

    The credit freezes Alice and fails, so her refund is refused: needs_attention.
    """
    handle = await client.start_workflow(
        TransferWorkflow.run,
        request("ACC-001", "ACC-404", "80"),
        id=transfer_id,
        task_queue=task_queue,
    )
    await wait_for_status(handle, TransferStatus.NEEDS_ATTENTION)
    return handle
