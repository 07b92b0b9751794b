"""`transfer`, `status` and `cancel`: start a transfer, read its saga state, undo it."""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from app import render
from app.cli.commands import Args, CommandParser, add_command
from app.cli.output import (
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CommandError,
    Output,
    warn,
)
from app.config import Settings
from workflows.status import DEFAULT_DEADLINE_SECONDS, TransferStatus

if TYPE_CHECKING:  # Temporal is imported by the handlers that use it, not by `--help`
    from temporalio.service import RPCError

    from app.transfers import TransferOutcome


@dataclass(frozen=True, kw_only=True)
class StartTransfer(Args):
    """`transfer --from ID --to ID --amount AMOUNT [--id REF] ...`."""

    source: str
    destination: str
    amount: str
    transfer_id: str | None
    deadline: int
    no_wait: bool
    low_latency: bool


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
    transfer.add_argument("--id", dest="transfer_id", help="your reference (default: generated)")
    transfer.add_argument(
        "--deadline",
        type=int,
        default=DEFAULT_DEADLINE_SECONDS,
        metavar="SECONDS",
        help=f"compensate if not complete by then (default {DEFAULT_DEADLINE_SECONDS})",
    )
    transfer.add_argument("--no-wait", action="store_true", help="start it and return at once")
    transfer.add_argument(
        "--low-latency",
        action="store_true",
        help="run the steps as local activities (README: low-latency mode)",
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

    from app.temporal import connect
    from app.transfers import describe_request, start_transfer
    from workflows.contract import TransferRequest

    out = Output(args.json)
    if args.low_latency and settings.multi_bank:
        raise CommandError(
            "--low-latency runs the steps on the workflow's own worker, which holds no "
            "bank's ledger: it cannot serve TRANSFER_BANKS",
            EXIT_USAGE,
        )
    routing = (
        {
            "source_bank": settings.bank_of(args.source),
            "destination_bank": settings.bank_of(args.destination),
        }
        if settings.multi_bank
        else {}
    )
    request = TransferRequest(
        source_account=args.source,
        destination_account=args.destination,
        amount=args.amount,
        deadline_seconds=args.deadline,
        **routing,
    )
    transfer_id = args.transfer_id or f"transfer-{uuid.uuid4().hex[:12]}"
    client = await connect()
    try:
        handle, attached = await start_transfer(
            client,
            request,
            transfer_id=transfer_id,
            task_queue=settings.task_queue,
            low_latency=args.low_latency,
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
    verb = "Attached to existing" if attached else "Started"
    started = f"{verb} transfer {transfer_id}: {describe_request(request)}\n  Web UI: {url}"
    if args.no_wait:
        out.result(
            started, {"transfer_id": transfer_id, "attached": attached, "url": url}, indent=None
        )
        return EXIT_OK
    # Before waiting, whatever the output format: a caller interrupted while
    # waiting must still know which transfer is running.
    out.note(started)
    outcome = await wait_saying_when_parked(handle)
    out.result(render.outcome_line(outcome), outcome_json(outcome, attached, url))
    return EXIT_OK if outcome.ok else EXIT_NOT_COMPLETED


async def wait_saying_when_parked(handle: Any, every: float = 2.0) -> TransferOutcome:
    """The transfer's outcome; if it parks for an operator meanwhile, say so once (stderr).

    A parked transfer waits for `retry` or `resolve`, which may be days away:
    a caller left waiting in silence cannot tell that from a hang.
    """
    import asyncio

    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError

    from app.transfers import wait_outcome
    from workflows.transfer import TransferWorkflow

    waiting = asyncio.ensure_future(wait_outcome(handle))
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=every)
            if done:
                break
            try:
                state = await handle.query(TransferWorkflow.state, rpc_timeout=timedelta(seconds=5))
            except (RPCError, WorkflowQueryFailedError):
                continue  # no worker just now: keep waiting for the outcome
            if state.status == TransferStatus.NEEDS_ATTENTION:
                warn(
                    f"Transfer {handle.id} is parked for an operator (needs_attention): "
                    f"waiting for `starter.py retry {handle.id}` or `resolve`. Ctrl-C stops "
                    "waiting, not the transfer."
                )
                break
        return await waiting
    finally:
        waiting.cancel()


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


async def _cancel(settings: Settings, args: OneTransfer) -> int:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from app.temporal import connect
    from workflows.transfer import TransferWorkflow

    client = await connect()
    handle = client.get_workflow_handle_for(TransferWorkflow.run, args.transfer_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        raise not_found(args.transfer_id, err) from err
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "closed"
        raise CommandError(
            f"Transfer {args.transfer_id} has already ended ({status}); cancelling changes nothing",
            EXIT_NOT_COMPLETED,
        )
    state = await handle.query(TransferWorkflow.state, rpc_timeout=timedelta(seconds=10))
    if state.status == TransferStatus.NEEDS_ATTENTION:
        raise CommandError(
            f"Transfer {args.transfer_id} is already compensating and waits for an operator "
            f"(needs_attention); use `retry` or `resolve`",
            EXIT_USAGE,
        )
    await handle.cancel()
    outcome = await wait_saying_when_parked(handle)
    url = settings.workflow_url(client.namespace, args.transfer_id)
    Output(args.json).result(render.outcome_line(outcome), outcome_json(outcome, True, url))
    return EXIT_OK if outcome.status == "cancelled" else EXIT_NOT_COMPLETED
