"""Small helpers shared by the workflow tests."""

import uuid
from typing import Any

from temporalio.client import Client, WorkflowFailureError

from ledger import LedgerStore
from workflows.transfer import TransferRequest, TransferState, TransferWorkflow


def request(source: str, destination: str, amount: str, **extra: Any) -> TransferRequest:
    return TransferRequest(
        source_account=source, destination_account=destination, amount=amount, **extra
    )


def new_id() -> str:
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
