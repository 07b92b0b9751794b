"""`schedule create|list|describe|pause|unpause|trigger|delete`: standing orders.

A standing order is a transfer repeated on a Temporal Schedule
(`app.schedules`; docs/operating.md#standing-orders). Everything a person
can get wrong is refused in one line before anything is created.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from app.cli.accounts import in_its_currency, routing
from app.cli.commands import Args, CommandParser, add_command, flag_type
from app.cli.output import EXIT_NOT_COMPLETED, EXIT_OK, EXIT_USAGE, CommandError, Output, warn
from app.cli.schedule_output import describe_text, instant_text, list_text, order_json, order_line
from app.config import Settings
from app.when import format_duration, format_instant, parse_duration, parse_instant
from ledger import validate_memo
from ledger.shown import quoted

if TYPE_CHECKING:  # Temporal is imported by the handlers, not by `--help`
    from app.schedules import Timing

#: Like an account number: it becomes part of every run's transfer id and ledger keys.
ORDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Longer periods are a calendar's business (`--cron`).
MAX_EVERY = timedelta(days=365)


@dataclass(frozen=True, kw_only=True)
class CreateOrder(Args):
    """`schedule create ID --from A --to B --amount X (--every D | --cron C) ...`."""

    order_id: str
    source: str
    destination: str
    amount: str
    every: timedelta | None
    cron: str | None
    start_at: datetime | None
    end_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class OneOrder(Args):
    """`schedule describe|unpause|trigger|delete ID`."""

    order_id: str


@dataclass(frozen=True, kw_only=True)
class PauseOrder(Args):
    """`schedule pause ID [--note TEXT]`."""

    order_id: str
    note: str | None


def add_commands(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `schedule` and its actions."""
    group = commands.add_parser("schedule", help="standing orders: a transfer on a schedule")
    actions = group.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    create = add_command(
        actions, "create", CreateOrder, _create, help="a transfer repeated on a schedule"
    )
    create.add_argument("order_id", metavar="ID", help="the order's id; runs are ID-<time>")
    create.add_argument("--from", dest="source", required=True, metavar="ACCOUNT")
    create.add_argument("--to", dest="destination", required=True, metavar="ACCOUNT")
    create.add_argument("--amount", required=True, help="a decimal such as 150.00")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--every",
        type=flag_type(parse_duration),
        metavar="DURATION",
        help="such as 30s, 2h, 1d, 1h30m (at least 1s)",
    )
    when.add_argument(
        "--cron", metavar="EXPR", help='minute hour day month weekday, in UTC: "0 9 1 * *"'
    )
    for flag, what in (("--start-at", "before"), ("--end-at", "after")):
        create.add_argument(
            flag,
            type=flag_type(parse_instant),
            metavar="TIME",
            help=f"no run {what} it; ISO 8601 with Z or an offset (2027-01-01T09:00:00Z)",
        )
    add_command(actions, "list", Args, _list, help="every standing order and its last run")
    describe = add_command(
        actions, "describe", OneOrder, _describe, help="spec, policy, next and recent runs"
    )
    describe.add_argument("order_id", metavar="ID")
    pause = add_command(actions, "pause", PauseOrder, _pause, help="stop the runs until unpaused")
    pause.add_argument("order_id", metavar="ID")
    pause.add_argument("--note", help="why, shown by describe")
    for name, handler, help_text in (
        ("unpause", _unpause, "resume the runs"),
        ("trigger", _trigger, "one run now, with its own transfer id"),
        ("delete", _delete, "remove the order (runs already started go on)"),
    ):
        action = add_command(actions, name, OneOrder, handler, help=help_text)
        action.add_argument("order_id", metavar="ID")


def validate_order_id(order_id: str) -> str:
    """The order id if it is 1-64 letters, digits, '-', '_' or '.' (a letter or digit first)."""
    if not ORDER_ID.fullmatch(order_id):
        raise CommandError(
            f"Invalid standing order id {quoted(order_id)}: use 1-64 letters, digits, "
            "'-', '_' or '.', starting with a letter or digit",
            EXIT_USAGE,
        )
    return order_id


def timing_of(args: CreateOrder) -> Timing:
    """The order's timing, checked: a 5-field cron, at most a year apart, an end after start."""
    from app.schedules import Timing

    if args.every is not None and args.every > MAX_EVERY:
        raise CommandError(
            f"--every is at most {format_duration(MAX_EVERY)}; for a yearly order use "
            '--cron such as "0 9 1 1 *"',
            EXIT_USAGE,
        )
    cron = None if args.cron is None else " ".join(args.cron.split())
    if cron is not None and len(cron.split()) != 5:
        raise CommandError(
            f"--cron takes 5 fields (minute hour day-of-month month day-of-week), such as "
            f'"0 9 1 * *"; got {quoted(args.cron or "")}',
            EXIT_USAGE,
        )
    if args.start_at and args.end_at and args.end_at <= args.start_at:
        raise CommandError("--end-at must be after --start-at", EXIT_USAGE)
    if args.end_at and args.end_at <= datetime.now(UTC):
        raise CommandError(
            f"--end-at {format_instant(args.end_at)} has passed: the order would never run",
            EXIT_USAGE,
        )
    return Timing(every=args.every, cron=cron, start_at=args.start_at, end_at=args.end_at)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """An order missing, taken or refused by Temporal: one line, exit 2."""
    from app.schedules import OrderExists, OrderNotFound, OrderRefused

    try:
        yield
    except (OrderExists, OrderNotFound, OrderRefused) as err:
        raise CommandError(str(err), EXIT_USAGE) from err


def schedule_url(settings: Settings, namespace: str, order_id: str) -> str:
    """The order's page in the Web UI."""
    return f"{settings.ui_url}/namespaces/{quote(namespace)}/schedules/{quote(order_id, safe='')}"


async def _create(settings: Settings, args: CreateOrder) -> int:
    from app.schedules import create_order, describe_order
    from app.temporal import connect
    from workflows.contract import TransferRequest

    order_id = validate_order_id(args.order_id)
    timing = timing_of(args)
    request = TransferRequest(
        source_account=args.source,
        destination_account=args.destination,
        amount=args.amount,
        **routing(settings, args.source, args.destination),
    )
    # Both accounts in one currency (and the amount in its places), as `transfer` checks.
    request = in_its_currency(settings, request, args.amount, None)
    client = await connect()
    with _one_line_errors():
        await create_order(client, order_id, request, timing, task_queue=settings.task_queue)
        order = await describe_order(client, order_id, runs=0)
    if not order.next_runs:
        warn(f"Standing order {order_id} has no run to come: check --cron, --start-at, --end-at")
    url = schedule_url(settings, client.namespace, order_id)
    Output(args.json).result(
        f"Created standing order {order_id}: {order_line(order)}\n"
        f"  Next run: {instant_text(order.next_runs[0]) if order.next_runs else 'none'}\n"
        f"  Web UI: {url}",
        order_json(order) | {"url": url},
    )
    return EXIT_OK


async def _list(settings: Settings, args: Args) -> int:
    from app.schedules import list_orders
    from app.temporal import connect

    orders = await list_orders(await connect())
    Output(args.json).result(list_text(orders), [order_json(o) for o in orders])
    return EXIT_OK


async def _describe(settings: Settings, args: OneOrder) -> int:
    from app.schedules import describe_order
    from app.temporal import connect

    client = await connect()
    with _one_line_errors():
        order = await describe_order(client, args.order_id)
    url = schedule_url(settings, client.namespace, order.order_id)
    Output(args.json).result(
        f"{describe_text(order)}\n  Web UI: {url}", order_json(order) | {"url": url}
    )
    return EXIT_OK


async def _pause(settings: Settings, args: PauseOrder) -> int:
    from app.schedules import order_handle
    from app.temporal import connect

    note = validate_memo(args.note) if args.note is not None else "paused from the command line"
    with _one_line_errors():
        handle, _ = await order_handle(await connect(), args.order_id)
    await handle.pause(note=note)
    Output(args.json).result(
        f"Paused standing order {args.order_id} ({note}); `schedule unpause` resumes it",
        {"order_id": args.order_id, "paused": True, "note": note},
    )
    return EXIT_OK


async def _unpause(settings: Settings, args: OneOrder) -> int:
    from app.schedules import order_handle
    from app.temporal import connect

    with _one_line_errors():
        handle, _ = await order_handle(await connect(), args.order_id)
    await handle.unpause(note="unpaused from the command line")
    Output(args.json).result(
        f"Unpaused standing order {args.order_id}: periods missed while paused are not run",
        {"order_id": args.order_id, "paused": False},
    )
    return EXIT_OK


async def _trigger(settings: Settings, args: OneOrder) -> int:
    from app.schedules import trigger_order
    from app.temporal import connect

    with _one_line_errors():
        done = await trigger_order(await connect(), args.order_id)
    text = {
        "started": f"Triggered {args.order_id}: started transfer {done.transfer_id}",
        "waiting": f"Triggered {args.order_id}: it runs when transfer {done.transfer_id} ends "
        "(one run at a time)",
        "skipped": f"Trigger of {args.order_id} skipped: transfer {done.transfer_id} is still "
        "running and another run already waits (one run at a time)",
        "recorded": f"Trigger of {args.order_id} recorded; no run has started yet "
        f"(`schedule describe {args.order_id}` shows when it does)",
    }[done.outcome]
    if done.repeat:
        text += " (an earlier run this same second had that id: this one pays nothing)"
    Output(args.json).result(
        text,
        {"order_id": args.order_id, "outcome": done.outcome, "transfer_id": done.transfer_id}
        | {"repeat": done.repeat},
    )
    return EXIT_NOT_COMPLETED if done.outcome == "skipped" else EXIT_OK


async def _delete(settings: Settings, args: OneOrder) -> int:
    from app.schedules import order_handle
    from app.temporal import connect

    with _one_line_errors():
        handle, description = await order_handle(await connect(), args.order_id)
    await handle.delete()
    going = [getattr(r, "workflow_id", "") for r in description.info.running_actions]
    Output(args.json).result(
        f"Deleted standing order {args.order_id}"
        + (f"; transfer {', '.join(going)} still runs to its end" if going else ""),
        {"order_id": args.order_id, "deleted": True, "running": going},
    )
    return EXIT_OK
