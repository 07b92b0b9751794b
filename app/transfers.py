"""Starting transfers and reading their outcome, for the CLI, the demo and tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    TerminatedError,
    TimeoutError,
    WorkflowAlreadyStartedError,
)

from ledger import shown_amount
from workflows import visibility
from workflows.contract import (
    LOW_LATENCY_WORKFLOW_NAME,
    WORKFLOW_NAME,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from workflows.low_latency import LowLatencyTransferWorkflow
from workflows.transfer import TransferWorkflow

TransferHandle = WorkflowHandle[Any, TransferResult]


class TransferIdConflict(Exception):
    """The transfer id is taken by a different transfer (or another workflow)."""


@dataclass(frozen=True)
class TransferOutcome:
    """How a transfer ended, in words for people and a stable status for programs.

    `status` is one of ``completed``, ``compensated`` (failed, every step
    undone), ``resolved`` (failed, a stuck compensation settled by an
    operator), ``rejected`` (invalid input, nothing ran), ``cancelled``,
    ``timed_out``, ``terminated`` or ``failed`` (anything else).
    """

    transfer_id: str
    status: str
    result: TransferResult | None = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the money moved."""
        return self.status == "completed"


def validation_message(err: ValidationError) -> str:
    """A pydantic error as one line: `field: reason; field: reason`."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


async def start_transfer(
    client: Client,
    request: TransferRequest,
    *,
    transfer_id: str,
    task_queue: str,
    low_latency: bool = False,
    eager: bool = False,
    relative_execute_at: bool = False,
) -> tuple[TransferHandle, bool]:
    """Start the transfer, or attach to the one already started under this id.

    The id is the client's reference: starting it again (even after it
    closed) never starts a second workflow, so money never moves twice.

    `low_latency` starts `LowLatencyTransferWorkflow` (steps as local
    activities). `eager` asks the server to hand the first workflow task
    straight back to a worker in this process, saving a round trip; it needs
    a worker for `task_queue` on this same client, and quietly falls back to
    a normal start otherwise.

    A transfer dated ahead (`execute_at` in the future) starts with status
    ``scheduled``. `relative_execute_at` says its `execute_at` was computed
    from now (`transfer --in 2h`): started again later under the same id,
    the request names another time, yet it is the same transfer, so one that
    differs only in `execute_at` is attached to rather than refused.

    Returns:
        The handle, and whether it was already there (attached).

    Raises:
        TransferIdConflict: The id belongs to a different transfer or workflow.
    """
    try:
        handle = await client.start_workflow(
            LowLatencyTransferWorkflow.run if low_latency else TransferWorkflow.run,
            request,
            id=transfer_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=visibility.search_attributes(request, initial_status(request).value),
            static_summary=visibility.transfer_summary(request),
            request_eager_start=eager,
        )
        return handle, False
    except WorkflowAlreadyStartedError:
        pass
    handle = client.get_workflow_handle_for(TransferWorkflow.run, transfer_id)
    desc = await handle.describe()
    if desc.workflow_type not in (WORKFLOW_NAME, LOW_LATENCY_WORKFLOW_NAME):
        raise TransferIdConflict(
            f"{transfer_id} is a {desc.workflow_type} workflow, not a transfer"
        )
    handle = client.get_workflow_handle_for(TransferWorkflow.run, transfer_id, run_id=desc.run_id)
    existing = await started_request(client, handle)
    if existing is not None and relative_execute_at and existing.execute_at is not None:
        existing = existing.model_copy(update={"execute_at": request.execute_at})
    if existing != request:
        raise TransferIdConflict(
            f"Transfer id {transfer_id} is already used by another transfer"
            + (f" ({describe_request(existing)})" if existing else "")
        )
    return handle, True


def initial_status(request: TransferRequest, now: datetime | None = None) -> TransferStatus:
    """The status a transfer starts with: ``scheduled`` if dated ahead, else ``running``."""
    due = request.execute_at
    if due is not None and due > (now or datetime.now(UTC)):
        return TransferStatus.SCHEDULED
    return TransferStatus.RUNNING


async def started_request(client: Client, handle: TransferHandle) -> TransferRequest | None:
    """The request a transfer was started with, read from its history (no worker needed)."""
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            break
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        try:
            [request] = await client.data_converter.decode(payloads, [TransferRequest])
        except (ValidationError, ValueError):
            return None
        return request if isinstance(request, TransferRequest) else None
    return None


def describe_request(request: TransferRequest) -> str:
    """`150.00 ACC-001 -> ACC-002`."""
    amount = shown_amount(request.amount, request.currency)
    return f"{amount} {request.source_account} -> {request.destination_account}"


async def wait_outcome(handle: TransferHandle) -> TransferOutcome:
    """Wait for the transfer to close and say how it ended."""
    try:
        result = await handle.result()
    except WorkflowFailureError as err:
        return _failure_outcome(handle.id, err)
    return TransferOutcome(transfer_id=handle.id, status="completed", result=result)


def _failure_outcome(transfer_id: str, err: WorkflowFailureError) -> TransferOutcome:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        error_type = cause.type or "ApplicationError"
        if error_type == "ValidationError":
            status = "rejected"
        elif cause.details and cause.details[0] in ("compensated", "resolved"):
            # The workflow puts its final status first in the failure's details.
            status = str(cause.details[0])
        else:
            status = "failed"
        return TransferOutcome(transfer_id, status, None, error_type, cause.message)
    if isinstance(cause, CancelledError):
        return TransferOutcome(
            transfer_id, "cancelled", None, "Cancelled", "Transfer was cancelled"
        )
    if isinstance(cause, TerminatedError):
        return TransferOutcome(transfer_id, "terminated", None, "Terminated", str(cause))
    if isinstance(cause, TimeoutError):
        return TransferOutcome(transfer_id, "timed_out", None, "Timeout", str(cause))
    return TransferOutcome(transfer_id, "failed", None, type(cause).__name__, str(cause))
