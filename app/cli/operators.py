"""`retry`, `resolve` and `operator-log`: an operator acts on a parked transfer, on record."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app import render
from app.cli.commands import Args, CommandParser, add_command
from app.cli.output import (
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Output,
    warn,
)
from app.cli.transfers import not_found, transfer_status
from app.config import Settings
from ledger import EXTERNAL_ACCOUNT
from workflows.status import FINAL_STATUSES

if TYPE_CHECKING:  # Temporal is imported by the handlers that use it, not by `--help`
    from workflows.contract import ResolveRequest, RetryRequest

#: How long `retry`/`resolve` wait in silence before saying no worker has acted.
UPDATE_QUIET_SECONDS = 10.0

_OPERATOR_HELP = (
    "who acts, for the ledger's operator log and Temporal's history "
    "(default: $TRANSFER_OPERATOR, else <login>@<host>)"
)


@dataclass(frozen=True, kw_only=True)
class Retry(Args):
    """`retry REF [--note TEXT] [--operator NAME]`; `command` is the update's name."""

    transfer_id: str
    command: str
    note: str | None
    operator: str | None


@dataclass(frozen=True, kw_only=True)
class Resolve(Retry):
    """`resolve REF --note TEXT [--settle-to ID] [--operator NAME]`."""

    settle_to: str


@dataclass(frozen=True, kw_only=True)
class OperatorLog(Args):
    """`operator-log [REF]`."""

    transfer_id: str | None


def add_commands(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `retry` and `resolve`."""
    retry = add_command(
        commands, "retry", Retry, _retry, help="run a parked transfer's pending compensations again"
    )
    retry.add_argument("transfer_id", metavar="REF")
    retry.add_argument("--note", help="why, for the record")
    retry.add_argument("--operator", metavar="NAME", help=_OPERATOR_HELP)
    resolve = add_command(
        commands,
        "resolve",
        Resolve,
        _resolve,
        help="settle a parked transfer by hand: move its clearing money, record why",
    )
    resolve.add_argument("transfer_id", metavar="REF")
    resolve.add_argument("--note", required=True, help="what was done by hand, and why")
    resolve.add_argument(
        "--settle-to",
        default=EXTERNAL_ACCOUNT,
        metavar="ID",
        help="where the clearing money goes (default EXTERNAL: it left the ledger by hand)",
    )
    resolve.add_argument("--operator", metavar="NAME", help=_OPERATOR_HELP)


def add_log_command(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `operator-log`."""
    log = add_command(
        commands,
        "operator-log",
        OperatorLog,
        _operator_log,
        help="who retried or resolved what, and why (the ledger's operator log)",
    )
    log.add_argument("transfer_id", nargs="?", metavar="REF", help="one transfer only")


def _operator_identity(operator: str | None) -> str:
    """Who runs `retry` or `resolve`: --operator, else $TRANSFER_OPERATOR, else login@host."""
    if operator is not None:
        return operator
    if os.environ.get("TRANSFER_OPERATOR"):
        return os.environ["TRANSFER_OPERATOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment or the password database
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def _retry(settings: Settings, args: Retry) -> int:
    from workflows.contract import RetryRequest

    request = RetryRequest(note=args.note, operator=_operator_identity(args.operator))
    return await _operate(settings, args, request)


async def _resolve(settings: Settings, args: Resolve) -> int:
    from workflows.contract import ResolveRequest

    request = ResolveRequest(
        note=args.note, settle_to=args.settle_to, operator=_operator_identity(args.operator)
    )
    return await _operate(settings, args, request)


async def _operate(settings: Settings, args: Retry, request: RetryRequest | ResolveRequest) -> int:
    """`retry` and `resolve`: an operator's update on a parked transfer.

    The operator named in the request is also the client's identity, so the
    update's events in Temporal's history name the same person as the
    ledger's operator log.
    """
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError
    from temporalio.service import RPCError, RPCStatusCode

    from app.temporal import connect
    from workflows.contract import TransferState
    from workflows.transfer import TransferWorkflow

    client = await connect(identity=request.operator)
    handle = client.get_workflow_handle_for(TransferWorkflow.run, args.transfer_id)
    update = asyncio.ensure_future(
        handle.execute_update(args.command, request, result_type=TransferState)
    )
    try:
        done, _ = await asyncio.wait({update}, timeout=UPDATE_QUIET_SECONDS)
        if not done:
            # An update waits until a worker runs it; with none running it
            # waits indefinitely, which looks like a hang.
            warn(
                f"No worker has carried out the {args.command} after "
                f"{UPDATE_QUIET_SECONDS:.0f} s; still waiting (is `python worker.py` running?)"
            )
        state = await update
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise CommandError(message, EXIT_USAGE) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise await _closed_or_missing(handle, args.command) from err
        raise not_found(args.transfer_id, err) from err
    url = settings.workflow_url(client.namespace, args.transfer_id)
    lines = (
        [f"{args.command}: {state.operator_actions[-1].outcome}"] if state.operator_actions else []
    )
    lines += [render.state_text(state), f"  Web UI: {url}"]
    Output(args.json).result("\n".join(lines), state)
    return EXIT_OK if state.status in FINAL_STATUSES else EXIT_NOT_COMPLETED


async def _closed_or_missing(handle: Any, action: str) -> CommandError:
    """Why an update found no workflow: the transfer has ended, or there is none."""
    from temporalio.service import RPCError

    try:
        description = await handle.describe()
    except RPCError:
        return CommandError(f"No transfer with id {handle.id}", EXIT_USAGE)
    return CommandError(
        f"Transfer {handle.id} has already ended ({transfer_status(description)}); "
        f"{action} is only for a transfer in needs_attention",
        EXIT_USAGE,
    )


async def _operator_log(settings: Settings, args: OperatorLog) -> int:
    """`operator-log [REF]`: the ledger's append-only record of retry and resolve, per bank."""
    banks: list[str | None] = list(settings.banks) if settings.multi_bank else [None]
    rows = [
        (bank, record)
        for bank in banks
        for record in settings.open_ledger(bank).operator_actions(args.transfer_id)
    ]
    rows.sort(key=lambda row: row[1].recorded_at)
    lines = [
        f"{r.recorded_at:%Y-%m-%d %H:%M:%S} {r.transfer_id} {r.action.value}"
        f"{f' at {bank}' if bank else ''} by {r.operator}{f': {r.note}' if r.note else ''}"
        for bank, r in rows
    ]
    if not rows:
        what = f" for {args.transfer_id}" if args.transfer_id else ""
        lines = [f"No operator actions recorded{what}"]
    data: list[dict[str, Any]] = [
        ({"bank": bank} if bank else {})
        | {
            "key": r.key,
            "transfer_id": r.transfer_id,
            "action": r.action.value,
            "operator": r.operator,
            "note": r.note,
            "recorded_at": r.recorded_at.isoformat(),
        }
        for bank, r in rows
    ]
    Output(args.json).result("\n".join(lines), data)
    return EXIT_OK
