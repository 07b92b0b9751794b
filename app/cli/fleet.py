"""`list`, `stats`, `audit` and `setup`: every transfer at once, and the namespace they live in."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from app import render
from app.cli.commands import Args, CommandParser, add_command
from app.cli.output import EXIT_NOT_COMPLETED, EXIT_OK, Output
from app.config import Settings
from ledger.audit import (
    AuditReport,
    BanksAuditReport,
    audit,
    audit_banks,
    group_across_banks,
    group_by_transfer,
)
from workflows.status import TransferStatus

if TYPE_CHECKING:  # the handlers that talk to Temporal import it; `audit --no-temporal` never
    from app import fleet


@dataclass(frozen=True, kw_only=True)
class ListTransfers(Args):
    """`list [--status STATUS | --overdue] [--account ID] [--limit N]`."""

    status: str | None
    overdue: bool
    account: str | None
    limit: int


@dataclass(frozen=True, kw_only=True)
class Stats(Args):
    """`stats [--window HOURS]`."""

    window: float


@dataclass(frozen=True, kw_only=True)
class Audit(Args):
    """`audit [--no-temporal]`."""

    no_temporal: bool


def add_commands(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `list`, `stats`, `setup` and `audit`."""
    listing = add_command(
        commands, "list", ListTransfers, _list, help="transfers, newest first, from visibility"
    )
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--status", choices=[s.value for s in TransferStatus])
    which.add_argument(
        "--overdue",
        action="store_true",
        help="parked for an operator longer than their retry window (automatic retries ended)",
    )
    listing.add_argument("--account", metavar="ID", help="as source or destination")
    listing.add_argument("--limit", type=int, default=50)
    stats = add_command(
        commands, "stats", Stats, _stats, help="counts by status, compensation rate, durations"
    )
    stats.add_argument(
        "--window", type=float, default=24, metavar="HOURS", help="for durations (default 24)"
    )
    add_command(
        commands,
        "setup",
        Args,
        _setup,
        help="register the search attributes on the namespace (once per cluster)",
    )
    auditing = add_command(
        commands, "audit", Audit, _audit, help="reconcile the ledger; exit 1 on any finding"
    )
    auditing.add_argument(
        "--no-temporal",
        action="store_true",
        help="skip checking that transfers holding money in clearing are still running",
    )


async def _list(settings: Settings, args: ListTransfers) -> int:
    from app import fleet
    from app.temporal import connect

    client = await connect(need_key=False)
    rows = await fleet.list_transfers(
        client, status=args.status, account=args.account, overdue=args.overdue, limit=args.limit
    )
    text = render.transfer_table(rows, parked=args.overdue)
    Output(args.json).result(text, [_row_json(r) for r in rows])
    return EXIT_OK


def _row_json(row: fleet.TransferRow) -> dict[str, Any]:
    data = asdict(row)
    for key in ("started", "closed", "parked_since", "retry_until"):
        data[key] = data[key].isoformat() if data[key] else None
    data["amount"] = f"{row.amount:.2f}" if row.amount is not None else None
    return data


async def _stats(settings: Settings, args: Stats) -> int:
    from app import fleet
    from app.temporal import connect

    client = await connect(need_key=False)
    stats = await fleet.transfer_stats(client, window=timedelta(hours=args.window))
    Output(args.json).result(render.stats_text(stats), stats.as_json())
    return EXIT_OK


async def _setup(settings: Settings, args: Args) -> int:
    from app.temporal import connect, register_search_attributes

    client = await connect(need_key=False)
    added, existing = await register_search_attributes(client)
    lines = []
    if added:
        lines.append(f"Registered search attributes on {client.namespace}: {', '.join(added)}")
    if existing:
        lines.append(f"Already registered on {client.namespace}: {', '.join(existing)}")
    Output(args.json).result(
        "\n".join(lines),
        {"namespace": client.namespace, "registered": added, "already_registered": existing},
    )
    return EXIT_OK


async def _audit(settings: Settings, args: Audit) -> int:
    report: AuditReport | BanksAuditReport
    if settings.multi_bank:
        snapshots = {b: settings.open_ledger(b).snapshot() for b in settings.banks}
        report = audit_banks(snapshots)
        transfers = group_across_banks(snapshots)
    else:
        accounts, receipts = settings.open_ledger().snapshot()
        report = audit(accounts, receipts)
        transfers = group_by_transfer(receipts)
    checked_temporal = False
    if not args.no_temporal:
        in_flight = sorted(t for t, group in transfers.items() if group.in_clearing != 0)
        checked_temporal = await _check_running(in_flight, report.findings)
    text = (
        render.banks_audit_text(report, checked_temporal=checked_temporal)
        if isinstance(report, BanksAuditReport)
        else render.audit_text(report, checked_temporal=checked_temporal)
    )
    Output(args.json).result(text, asdict(report) | {"ok": report.ok})
    return EXIT_OK if report.ok else EXIT_NOT_COMPLETED


async def _check_running(transfer_ids: list[str], findings: list[str]) -> bool:
    """Each transfer holding money in clearing must still be running; False if none to check."""
    if not transfer_ids:
        return False
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from app.temporal import connect

    client = await connect(need_key=False)
    for transfer_id in transfer_ids:
        try:
            status = (await client.get_workflow_handle(transfer_id).describe()).status
        except RPCError:
            status = None
        if status != WorkflowExecutionStatus.RUNNING:
            findings.append(
                f"{transfer_id}: holds money in clearing but its workflow is "
                f"{status.name.lower() if status else 'missing'}"
            )
    return True
