"""How standing orders read: text for `schedule describe` and `list`, and their JSON."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.when import format_duration, format_instant
from ledger import shown_amount

if TYPE_CHECKING:  # annotations only: the handlers import Temporal, not `--help`
    from app.schedules import Order, Run


def instant_text(instant: datetime | None) -> str:
    """An instant to the second, in UTC: `2025-01-01T09:00:00Z`; `-` for none."""
    return format_instant(instant.replace(microsecond=0)) if instant else "-"


def _when(order: Order) -> str:
    """`every 1d` or `cron "0 9 1 * *" (UTC)`, with its bounds."""
    timing = order.timing
    when = f"every {order.every_text}" if order.every_text else f'cron "{timing.cron}" (UTC)'
    if timing.start_at:
        when += f" from {instant_text(timing.start_at)}"
    if timing.end_at:
        when += f" until {instant_text(timing.end_at)}"
    return when


def order_line(order: Order) -> str:
    """`150.00 ACC-001 -> ACC-002, every 1d`."""
    request = order.request
    amount = shown_amount(request.amount, request.currency, grouped=True)
    amount = f"{amount} {request.source_account} -> {request.destination_account}"
    return f"{amount}, {_when(order)}"


def _outcome(run: Run) -> str:
    """`completed`, `compensated: Insufficient funds: ... [InsufficientFunds]`."""
    text = run.status
    if run.error_type:
        text += f": {run.error_message} [{run.error_type}]"
    if run.repeat:
        text += " (a repeat of this period: it replayed the first run's receipts, paid nothing)"
    return text


def describe_text(order: Order) -> str:
    """The order as `schedule describe` prints it."""
    from app.schedules import CATCHUP_WINDOW

    state = f"paused ({order.note})" if order.paused else "active"
    lines = [
        f"Standing order {order.order_id}: {order_line(order)}",
        f"  State: {state}",
        "  Policy: one run at a time (a period due while one runs waits for it; while one "
        f"waits, later periods are skipped); a period missed within "
        f"{format_duration(CATCHUP_WINDOW)} still runs once",
        f"  Next runs: {', '.join(instant_text(t) for t in order.next_runs[:3]) or 'none'}",
        f"  Runs: {order.actions} started, {order.skipped} skipped (a run was going), "
        f"{order.missed} missed (past the catch-up window), {order.waiting} waiting",
    ]
    if order.runs:
        lines.append("  Recent runs (oldest first):")
        lines += [
            f"    {instant_text(run.scheduled_at)}  {run.transfer_id}  {_outcome(run)}"
            for run in order.runs
        ]
    return "\n".join(lines)


def list_text(orders: list[Order]) -> str:
    """One line per order: id, amount and accounts, when, state, last run."""
    if not orders:
        return "No standing orders (create one with `schedule create`)"
    width = max(len(o.order_id) for o in orders)
    lines = []
    for order in orders:
        state = "paused" if order.paused else "active"
        last = order.runs[-1] if order.runs else None
        last_text = f"{last.transfer_id} {_outcome(last)}" if last else "no run yet"
        lines.append(
            f"  {order.order_id:<{width}}  {state:<6}  {order_line(order)}; last: {last_text}"
        )
    return "\n".join(lines)


def _run_json(run: Run) -> dict[str, Any]:
    return {
        "scheduled_at": instant_text(run.scheduled_at),
        "started_at": format_instant(run.started_at),
        "transfer_id": run.transfer_id,
        "status": run.status,
        "error": {"type": run.error_type, "message": run.error_message} if run.error_type else None,
        "repeat": run.repeat,
    }


def order_json(order: Order) -> dict[str, Any]:
    """An order as `--json` prints it: the same shape from create, list and describe."""
    from app.schedules import CATCHUP_WINDOW, OVERLAP

    timing, request = order.timing, order.request
    return {
        "order_id": order.order_id,
        "source_account": request.source_account,
        "destination_account": request.destination_account,
        "amount": shown_amount(request.amount, request.currency),
        "every": order.every_text,
        "cron": timing.cron,
        "start_at": instant_text(timing.start_at) if timing.start_at else None,
        "end_at": instant_text(timing.end_at) if timing.end_at else None,
        "policy": {
            "overlap": OVERLAP.name.lower(),
            "catchup_window": format_duration(CATCHUP_WINDOW),
        },
        "paused": order.paused,
        "note": order.note,
        "next_runs": [instant_text(t) for t in order.next_runs],
        "counts": {
            "started": order.actions,
            "skipped": order.skipped,
            "missed": order.missed,
            "waiting": order.waiting,
        },
        "running": list(order.running),
        "runs": [_run_json(run) for run in order.runs],
    }
