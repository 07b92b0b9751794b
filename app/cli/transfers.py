"""`transfer`, `status` and `cancel`: start a transfer, read its saga state, undo it."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from app import render
from app.cli import dated
from app.cli.accounts import in_its_currency, routing
from app.cli.commands import Args, CommandParser, add_command
from app.cli.output import (
    EXIT_INTERRUPTED,
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CommandError,
    Output,
)
from app.config import Settings
from workflows.status import (
    DEFAULT_DEADLINE_SECONDS,
    FINAL_STATUSES,
    TransferStatus,
)

if TYPE_CHECKING:  # Temporal is imported by the handlers that use it, not by `--help`
    from temporalio.client import WorkflowExecutionDescription
    from temporalio.service import RPCError

    from app.transfers import TransferOutcome


@dataclass(frozen=True, kw_only=True)
class StartTransfer(Args):
    """`transfer --from ID --to ID --amount AMOUNT [--id REF] ...`."""

    source: str
    destination: str
    amount: str
    currency: str | None
    transfer_id: str | None
    deadline: int
    no_wait: bool
    wait: bool
    low_latency: bool
    at: datetime | None
    after: timedelta | None
    retry_window: int | None


@dataclass(frozen=True, kw_only=True)
class OneTransfer(Args):
    """`status REF` and `cancel REF`."""

    transfer_id: str


def add_commands(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `transfer`, `status` and `cancel`."""
    transfer = add_command(
        commands, "transfer", StartTransfer, _transfer, help="move money between two accounts"
    )
    transfer.add_argument("--from", dest="source", required=True, metavar="ID")
    transfer.add_argument("--to", dest="destination", required=True, metavar="ID")
    transfer.add_argument("--amount", required=True, help="a decimal such as 150.00")
    transfer.add_argument(
        "--currency",
        metavar="CODE",
        help="the ISO 4217 currency you mean: refused unless both accounts are in it",
    )
    transfer.add_argument("--id", dest="transfer_id", help="your reference (default: generated)")
    transfer.add_argument(
        "--deadline",
        type=dated.deadline_seconds,
        default=DEFAULT_DEADLINE_SECONDS,
        metavar="SECONDS",
        help="compensate if not complete by then, counted from --at/--in if given "
        f"(default {DEFAULT_DEADLINE_SECONDS})",
    )
    waiting = transfer.add_mutually_exclusive_group()
    waiting.add_argument("--no-wait", action="store_true", help="start it and return at once")
    dated.add_options(transfer, waiting)
    transfer.add_argument(
        "--low-latency",
        action="store_true",
        help="run the steps as local activities (docs/performance.md: low-latency mode)",
    )
    status = add_command(
        commands, "status", OneTransfer, _status, help="the saga state of a transfer"
    )
    status.add_argument("transfer_id", metavar="REF")
    cancel = add_command(
        commands, "cancel", OneTransfer, _cancel, help="cancel a transfer: its steps are undone"
    )
    cancel.add_argument("transfer_id", metavar="REF")


async def _transfer(settings: Settings, args: StartTransfer) -> int:
    from temporalio.service import RPCError

    from app.cli.waiting import wait_saying_why
    from app.temporal import connect
    from app.transfers import describe_request, start_transfer, started_request
    from workflows.contract import TransferRequest

    out = Output(args.json)
    if args.low_latency and settings.multi_bank:
        raise CommandError(
            "--low-latency runs the steps on the workflow's own worker, which holds no "
            "bank's ledger: it cannot serve TRANSFER_BANKS",
            EXIT_USAGE,
        )
    request = TransferRequest(
        source_account=args.source,
        destination_account=args.destination,
        amount=args.amount,
        deadline_seconds=args.deadline,
        **dated.timing(args.at, args.after, args.retry_window),
        **routing(settings, args.source, args.destination),
    )
    # The workflow checks them too, but only at the debit (or after it): refuse
    # now, before a saga starts. Both accounts must be in one currency.
    request = in_its_currency(settings, request, args.amount, args.currency)
    transfer_id = args.transfer_id or f"transfer-{uuid.uuid4().hex[:12]}"
    client = await connect()
    try:
        handle, attached = await start_transfer(
            client,
            request,
            transfer_id=transfer_id,
            task_queue=settings.task_queue,
            low_latency=args.low_latency,
            relative_execute_at=args.after is not None,
        )
    except RPCError as err:
        # The server may have started it before the reply was lost: say which
        # id to look at, and that starting it again under that id is safe.
        raise CommandError(
            f"Starting transfer {transfer_id} failed: {err.message}. It may have started "
            f"anyway: `starter.py status {transfer_id}` tells; to try again, start it with "
            f"`--id {transfer_id}` (the same id attaches, it never moves money twice)",
            EXIT_UNAVAILABLE,
        ) from err
    url = settings.workflow_url(client.namespace, transfer_id)
    if attached and args.after is not None:  # started earlier: its own time, not ours
        request = await started_request(client, handle) or request
    # Dated ahead: by default, say when it runs and return (it may be months away).
    scheduled = dated.scheduled(transfer_id, request, attached=attached, url=url)
    if scheduled is not None and not args.wait:
        out.result(scheduled.text, scheduled.data, indent=None)
        return EXIT_OK
    verb = "Attached to existing" if attached else "Started"
    started = f"{verb} transfer {transfer_id}: {describe_request(request)}\n  Web UI: {url}"
    if args.no_wait:
        out.result(
            started, {"transfer_id": transfer_id, "attached": attached, "url": url}, indent=None
        )
        return EXIT_OK
    # Before waiting, whatever the output format: a caller interrupted while
    # waiting must still know which transfer is running.
    out.note(started if scheduled is None else scheduled.waiting)
    try:
        outcome = await wait_saying_why(handle, settings.task_queue)
    except asyncio.CancelledError:
        # Ctrl-C: asyncio cancels the command, not the transfer.
        raise CommandError(
            f"Interrupted: transfer {transfer_id} keeps running; follow it with "
            f"`python starter.py status {transfer_id}`",
            EXIT_INTERRUPTED,
        ) from None
    out.result(render.outcome_line(outcome), outcome_json(outcome, attached, url))
    return EXIT_OK if outcome.ok else EXIT_NOT_COMPLETED


def outcome_json(outcome: TransferOutcome, attached: bool, url: str) -> dict[str, Any]:
    """How a transfer ended, as `transfer --json` and `cancel --json` print it."""
    return {
        "transfer_id": outcome.transfer_id,
        "status": outcome.status,
        "attached": attached,
        "result": outcome.result.model_dump(mode="json") if outcome.result else None,
        "error": (
            {"type": outcome.error_type, "message": outcome.error_message}
            if outcome.error_type
            else None
        ),
        "url": url,
    }


def not_found(transfer_id: str, err: RPCError) -> CommandError:
    """The error for an RPC about one transfer: no such transfer, or Temporal refused."""
    from temporalio.service import RPCStatusCode

    if err.status == RPCStatusCode.NOT_FOUND:
        return CommandError(f"No transfer with id {transfer_id}", EXIT_USAGE)
    return CommandError(f"Temporal refused the call: {err.message}", EXIT_UNAVAILABLE)


async def _status(settings: Settings, args: OneTransfer) -> int:
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from app.temporal import connect
    from workflows.transfer import TransferWorkflow

    client = await connect()
    handle = client.get_workflow_handle_for(TransferWorkflow.run, args.transfer_id)
    waiting = await _waiting_for_a_worker(handle)
    if waiting is not None:
        # The state query needs a worker: say so now rather than after its timeout.
        raise CommandError(
            f"Transfer {args.transfer_id} is waiting for a worker, so its saga state cannot be "
            f"read yet: {waiting}",
            EXIT_UNAVAILABLE,
        )
    try:
        state = await handle.query(TransferWorkflow.state, rpc_timeout=timedelta(seconds=10))
    except WorkflowQueryFailedError as err:
        raise CommandError(f"Query failed: {err}", EXIT_UNAVAILABLE) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise not_found(args.transfer_id, err) from err
        raise CommandError(
            f"No worker answered the state query ({err.message}); is `python worker.py` running?",
            EXIT_UNAVAILABLE,
        ) from err
    url = settings.workflow_url(client.namespace, args.transfer_id)
    Output(args.json).result(f"{render.state_text(state)}\n  Web UI: {url}", state)
    return EXIT_OK


async def _waiting_for_a_worker(handle: Any) -> str | None:
    """What to do, if no worker has taken the transfer's pending workflow task for a while."""
    from datetime import UTC, datetime

    from app.cli.waiting import NO_WORKER_SECONDS, no_worker_message, unstarted_task

    scheduled = await unstarted_task(handle)
    if scheduled is None:
        return None
    waited = datetime.now(UTC) - scheduled.replace(tzinfo=UTC)
    if waited < timedelta(seconds=NO_WORKER_SECONDS):
        return None  # a worker may be about to take it: ask it
    description = await handle.describe()
    return no_worker_message(description.task_queue)


def transfer_status(description: WorkflowExecutionDescription) -> str:
    """Where a transfer stands, in our words: its TransferStatus, else Temporal's status.

    A transfer that ended without setting its final status (terminated,
    timed out, refused as invalid) has only Temporal's word for it.
    """
    from temporalio.client import WorkflowExecutionStatus

    from workflows import visibility

    ours = description.typed_search_attributes.get(visibility.TRANSFER_STATUS)
    running = description.status == WorkflowExecutionStatus.RUNNING
    if ours is not None and (running or ours in FINAL_STATUS_VALUES):
        return ours
    if description.status is None:
        return "closed"
    return {WorkflowExecutionStatus.CANCELED: "cancelled"}.get(
        description.status, description.status.name.lower()
    )


#: The final statuses, as the TransferStatus search attribute spells them.
FINAL_STATUS_VALUES = frozenset(status.value for status in FINAL_STATUSES)

#: How long `cancel` waits for the transfer to end before reporting the request recorded.
CANCEL_WAIT_SECONDS = 5.0


async def _cancel(settings: Settings, args: OneTransfer) -> int:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from app.cli.waiting import no_worker_message, wait_unless_no_worker
    from app.temporal import connect
    from workflows.transfer import TransferWorkflow

    client = await connect()
    handle = client.get_workflow_handle_for(TransferWorkflow.run, args.transfer_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        raise not_found(args.transfer_id, err) from err
    # Everything below reads what Temporal knows without a worker.
    status = transfer_status(description)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise CommandError(
            f"Transfer {args.transfer_id} has already ended ({status}); cancelling changes nothing",
            EXIT_NOT_COMPLETED,
        )
    if status == TransferStatus.NEEDS_ATTENTION:
        raise CommandError(
            f"Transfer {args.transfer_id} is already compensating and waits for an operator "
            f"(needs_attention); use `retry` or `resolve`",
            EXIT_USAGE,
        )
    # Temporal records the request even when no worker runs the transfer.
    await handle.cancel()
    outcome = await wait_unless_no_worker(handle, description.task_queue, CANCEL_WAIT_SECONDS)
    url = settings.workflow_url(client.namespace, args.transfer_id)
    out = Output(args.json)
    if outcome is None:
        out.result(
            f"Cancel recorded for transfer {args.transfer_id}; the transfer will be undone "
            f"when a worker runs it ({no_worker_message(description.task_queue)})",
            {"transfer_id": args.transfer_id, "status": "cancel_recorded", "url": url},
        )
        return EXIT_OK
    out.result(render.outcome_line(outcome), outcome_json(outcome, True, url))
    return EXIT_OK if outcome.status == "cancelled" else EXIT_NOT_COMPLETED
