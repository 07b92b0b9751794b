"""Small helpers and activity doubles shared by the workflow tests."""

import asyncio
import uuid
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError

from activities import LedgerActivities, StepInput, StepResult
from ledger import LedgerStore
from workflows.contract import TransferRequest, TransferState, TransferStatus
from workflows.transfer import TransferWorkflow


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


def freezing_credit(store: LedgerStore, account_to_freeze: str = "ACC-001") -> Any:
    """The real credit, but first it freezes the source, so the refund will be refused."""
    real = LedgerActivities(store)

    @activity.defn(name="credit")
    def credit(step: StepInput) -> StepResult:
        if store.get_account(account_to_freeze).status == "open":
            store.freeze_account(account_to_freeze)
        return real.credit(step)

    return credit


def hanging_credit() -> tuple[Any, asyncio.Event]:
    """A credit that hangs until cancelled, and the event set when it starts."""
    started = asyncio.Event()

    @activity.defn(name="credit")
    async def credit(step: StepInput) -> StepResult:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    return credit, started


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
