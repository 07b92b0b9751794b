"""Text for people: balance tables, saga states, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from app.when import format_instant
from ledger import Account, AccountKind, Receipt, shown_amount

if TYPE_CHECKING:  # annotations only: `accounts list` renders without loading Temporal
    from app.fleet import Stats, TransferRow
    from app.transfers import TransferOutcome
    from ledger.audit import AuditReport, BanksAuditReport
    from workflows.contract import StepState, TransferRequest, TransferState


def balance_table(accounts: list[Account], bank: str | None = None) -> str:
    """Customer accounts first, then the system accounts, then the zero-sum check.

    With `bank`, a Bank column leads (several banks: one table per bank).
    """
    order = {AccountKind.CUSTOMER: 0, AccountKind.CLEARING: 1, AccountKind.EXTERNAL: 2}
    rows = sorted(accounts, key=lambda a: (order[a.kind], a.id, a.currency))
    width = max([len(a.owner) for a in rows] + [5])
    lead = "" if bank is None else f"{bank:<8} "
    blank = "" if bank is None else " " * 9
    head = "" if bank is None else f"{'Bank':<8} "
    lines = [f"  {head}{'Owner':<{width}}  {'Account':<12} {'Kind':<9} {'Balance':>14} Currency"]
    for a in rows:
        flag = "" if a.status == "open" else f"  ({a.status})"
        lines.append(
            f"  {lead}{a.owner:<{width}}  {a.id:<12} {a.kind:<9} {a.balance:>14,} "
            f"{a.currency}{flag}"
        )
    # Each currency sums to zero on its own: one sum per currency.
    for currency in sorted({a.currency for a in accounts}):
        total = sum((a.balance for a in accounts if a.currency == currency), Decimal(0))
        lines.append(f"  {blank}{'':<{width}}  {'':<12} {'sum':<9} {total:>14,} {currency}")
    return "\n".join(lines)


def receipt_text(receipt: Receipt) -> str:
    """`150.00 ACC-001 -> CLEARING`, or `void of <key>` for a void."""
    if receipt.kind == "void":
        return f"void of {receipt.reverses} (it never applied; now it never will)"
    amount = shown_amount(receipt.amount, receipt.currency, grouped=True)
    text = f"{amount} {receipt.from_account} -> {receipt.to_account}"
    return text + (" (replayed)" if receipt.replayed else "")


def step_line(step: StepState) -> str:
    """One step: name, status, what it did or why it failed, attempts."""
    if step.result is not None:
        detail = receipt_text(step.result)
    elif step.error is not None:
        detail = f"{step.error.type}: {step.error.message}"
    else:
        detail = ""
    attempts = f"  [attempt {step.attempts}]" if step.attempts > 1 else ""
    return f"    {step.name:<15} {step.status:<12} {detail}{attempts}"


_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def relative(when: datetime, now: datetime) -> str:
    """How far `when` is from `now`, in its two largest units: `in 23d 4h`, `3m 5s ago`."""
    seconds = round((when - now).total_seconds())
    if seconds == 0:
        return "now"
    parts: list[str] = []
    left = abs(seconds)
    for unit, size in _UNITS:
        count, left = divmod(left, size)
        if count and len(parts) < 2:
            parts.append(f"{count}{unit}")
        elif parts:
            break  # `1d 0h 5m` would read as more precise than it is: `1d`
    shown = " ".join(parts)
    return f"in {shown}" if seconds > 0 else f"{shown} ago"


def moment(when: datetime, now: datetime) -> str:
    """`2026-12-24T09:00:00Z (in 23d 4h)`: to whole seconds, in UTC, and how far from now."""
    return f"{format_instant(when.replace(microsecond=0))} ({relative(when, now)})"


def scheduled_text(
    transfer_id: str, request: TransferRequest, due: datetime, *, attached: bool, now: datetime
) -> str:
    """What `transfer --at/--in` prints once the dated transfer has started (or was there)."""
    verb = "Attached to existing" if attached else "Scheduled"
    return (
        f"{verb} transfer {transfer_id}: {shown_amount(request.amount, request.currency)} "
        f"{request.source_account} -> "
        f"{request.destination_account} at {moment(due, now)}\n"
        f"  Nothing moves until then: `python starter.py status {transfer_id}` follows it, "
        f"`python starter.py cancel {transfer_id}` calls it off"
    )


def _retry_lines(state: TransferState, now: datetime) -> list[str]:
    """Since when a parked transfer waits, its automatic retries, and whether it is overdue."""
    if state.parked_since is None:
        return []  # parked before automatic retries existed: operators only
    lines = [f"  Parked since {moment(state.parked_since, now)}"]
    tried = f"{state.automatic_retries} so far"
    until = moment(state.retry_until, now) if state.retry_until else "unknown"
    if state.overdue:
        lines.append(
            f"  Overdue: automatic retries ({tried}) ended at {until}; only an operator "
            "can settle it now"
        )
    elif state.settlement_begun:
        lines.append(f"  Automatic retries ({tried}) stopped: a settlement by hand has begun")
    elif state.next_retry_at is not None:
        lines.append(
            f"  Automatic retries: {tried}; next at {moment(state.next_retry_at, now)}; "
            f"until {until}"
        )
    else:
        lines.append(f"  Automatic retries: {tried}, one running now; until {until}")
    return lines


def state_text(state: TransferState, now: datetime | None = None) -> str:
    """The saga state as the `status` command and the demo print it (times relative to `now`)."""
    now = now or datetime.now(UTC)
    request = state.request
    lines = [
        f"Transfer {state.transfer_id}: "
        f"{shown_amount(request.amount, request.currency, grouped=True)} "
        f"{request.source_account} -> {request.destination_account}",
        f"  Saga status: {state.status}",
    ]
    due = state.request.execute_at
    if state.status == "scheduled" and due is not None:
        lines.append(f"  Scheduled for {moment(due, now)}: nothing is posted until then")
    if state.error is not None:
        lines.append(f"  Reason: {state.error.message} [{state.error.type}]")
    for error in state.compensation_errors:
        lines.append(f"  Compensation error: {error.message} [{error.type}]")
    if state.status == "needs_attention" and state.settlement_begun:
        lines.append(
            "  Waiting for an operator: a settlement by hand has begun and may have posted."
        )
        lines.append(f"  Finish it with `starter.py resolve {state.transfer_id} --note ...`")
    elif state.status == "needs_attention":
        pending = ", ".join(state.pending_compensations)
        lines.append(f"  Waiting for an operator: pending {pending}.")
        lines.append(
            f"  Fix the cause, then `starter.py retry {state.transfer_id}`, or settle by hand"
            f" with `starter.py resolve {state.transfer_id} --note ...`"
        )
    if state.status == "needs_attention":
        lines += _retry_lines(state, now)
    for action in state.operator_actions:
        by = f" by {action.operator}" if action.operator else ""
        note = f" ({action.note})" if action.note else ""
        lines.append(f"  Operator {action.action}{by}{note}: {action.outcome}")
    lines.append("  Steps:")
    lines.extend(step_line(s) for s in state.steps)
    return "\n".join(lines)


def outcome_line(outcome: TransferOutcome) -> str:
    """One line: how the transfer ended."""
    if outcome.ok and outcome.result is not None:
        r = outcome.result
        return (
            f"Transfer {outcome.transfer_id} completed: "
            f"{shown_amount(r.amount, r.debit.currency, grouped=True)} "
            f"{r.source_account} -> {r.destination_account}"
        )
    return (
        f"Transfer {outcome.transfer_id} {outcome.status}: {outcome.error_message}"
        f" [{outcome.error_type}]"
    )


def transfer_table(rows: list[TransferRow], *, parked: bool = False) -> str:
    """The `list` command's table; `parked` (`list --overdue`): since when, retried until when."""
    if not rows:
        return "No transfers match."
    times = f"{'Parked since':<20} Retried until" if parked else "Started"
    lines = [f"{'Transfer':<28} {'Status':<16} {'Amount':>12}  {'From':<12} {'To':<12} {times}"]
    for r in rows:
        amount = f"{r.amount:,.2f}" if r.amount is not None else "?"
        if parked:
            shown = f"{_table_time(r.parked_since):<20} {_table_time(r.retry_until)}"
        else:
            shown = _table_time(r.started)
        lines.append(
            f"{r.transfer_id:<28} {r.status:<16} {amount:>12}  "
            f"{r.source_account or '?':<12} {r.destination_account or '?':<12} {shown}"
        )
    return "\n".join(lines)


def _table_time(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when else ""


def stats_text(stats: Stats) -> str:
    """The `stats` command's report."""
    lines = [f"Transfers: {stats.total}"]
    lines += [f"  {status:<16} {count:>8}" for status, count in stats.by_status.items() if count]
    rate = "n/a" if stats.compensation_rate is None else f"{stats.compensation_rate:.1%}"
    lines.append(f"Compensation rate: {rate} (of transfers with an outcome)")
    window = f"last {stats.window_hours:g} h"
    if stats.mean_seconds is None or stats.p95_seconds is None:
        lines.append(f"Closed in the {window}: none")
    else:
        lines.append(
            f"Closed in the {window}: {stats.closed_in_window}; duration mean "
            f"{stats.mean_seconds:.3f} s, p95 {stats.p95_seconds:.3f} s"
        )
    return "\n".join(lines)


def audit_text(report: AuditReport, *, checked_temporal: bool) -> str:
    """The `audit` command's report."""
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "none"
    lines = [
        f"Accounts: {report.accounts}; postings: {report.postings}; transfers: {report.transfers}",
        f"Transfers by ledger outcome: {outcomes}",
        "Clearing: "
        + (", ".join(f"{held:,} {cur}" for cur, held in sorted(report.clearing.items())) or "-"),
        "In-flight transfers checked against Temporal: "
        + ("yes" if checked_temporal else "no (none in flight, or --no-temporal)"),
    ]
    if report.ok:
        lines.append("OK: the ledger sums to zero, no customer is negative, every transfer's")
        lines.append("    postings are valid, and clearing matches the transfers in flight.")
    else:
        lines.append(f"{len(report.findings)} finding(s):")
        lines += [f"  - {finding}" for finding in report.findings]
    return "\n".join(lines)


def banks_audit_text(report: BanksAuditReport, *, checked_temporal: bool) -> str:
    """The `audit` command's report over several banks: each bank's position, then findings."""
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "none"
    lines = [
        f"Transfers: {report.transfers} (by ledger outcome: {outcomes})",
        f"  {'Bank':<8} {'Accounts':>8} {'Postings':>8} {'Clearing':>14} "
        f"{'Completed net':>14} {'In flight':>14} Currency",
    ]
    for p in report.positions:
        lines.append(
            f"  {p.bank:<8} {p.accounts:>8} {p.postings:>8} {p.clearing:>14,} "
            f"{p.completed_net:>14,} {p.in_flight:>14,} {p.currency}"
        )
    lines.append(
        "In-flight transfers checked against Temporal: "
        + ("yes" if checked_temporal else "no (none in flight, or --no-temporal)")
    )
    if report.ok:
        lines.append("OK: every ledger sums to zero with no negative customer, every transfer's")
        lines.append("    postings are valid across banks, and each bank's clearing is the net of")
        lines.append("    its completed cross-bank transfers plus what is in flight.")
    else:
        lines.append(f"{len(report.findings)} finding(s):")
        lines += [f"  - {finding}" for finding in report.findings]
    return "\n".join(lines)
