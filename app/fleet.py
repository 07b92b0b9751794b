"""Transfers as a fleet: listing and statistics from Temporal's visibility store."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecution

from ledger import validate_account_id
from workflows import visibility
from workflows.contract import LOW_LATENCY_WORKFLOW_NAME, WORKFLOW_NAME, TransferStatus

#: Outcomes in which the money did not (or not only) move forward.
_UNDONE = (
    TransferStatus.COMPENSATED,
    TransferStatus.CANCELLED,
    TransferStatus.NEEDS_ATTENTION,
    TransferStatus.RESOLVED,
)


@dataclass(frozen=True)
class TransferRow:
    """One transfer as visibility sees it."""

    transfer_id: str
    status: str
    amount: float | None
    source_account: str | None
    destination_account: str | None
    started: datetime | None
    closed: datetime | None
    #: Parked: since when, and when its automatic retries end (or ended).
    parked_since: datetime | None = None
    retry_until: datetime | None = None


def transfer_query(
    *, status: str | None = None, account: str | None = None, overdue_at: datetime | None = None
) -> str:
    """A visibility query over transfers; inputs are validated, never pasted raw.

    With `overdue_at`, only transfers parked for an operator whose automatic
    retries had ended by then (their `RetryUntil` is earlier).
    """
    clauses = [f"WorkflowType IN ('{WORKFLOW_NAME}', '{LOW_LATENCY_WORKFLOW_NAME}')"]
    if status is not None:
        clauses.append(f"TransferStatus = '{TransferStatus(status).value}'")
    if account is not None:
        account = validate_account_id(account)
        clauses.append(f"(SourceAccount = '{account}' OR DestinationAccount = '{account}')")
    if overdue_at is not None:
        when = overdue_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        clauses.append(f"TransferStatus = '{TransferStatus.NEEDS_ATTENTION.value}'")
        clauses.append(f"{visibility.RETRY_UNTIL.name} < '{when}'")
    return " AND ".join(clauses)


def _row(execution: WorkflowExecution) -> TransferRow:
    attributes = execution.typed_search_attributes
    return TransferRow(
        transfer_id=execution.id,
        status=attributes.get(visibility.TRANSFER_STATUS) or "unknown",
        amount=attributes.get(visibility.TRANSFER_AMOUNT),
        source_account=attributes.get(visibility.SOURCE_ACCOUNT),
        destination_account=attributes.get(visibility.DESTINATION_ACCOUNT),
        started=execution.start_time,
        closed=execution.close_time,
        parked_since=attributes.get(visibility.PARKED_SINCE),
        retry_until=attributes.get(visibility.RETRY_UNTIL),
    )


async def list_transfers(
    client: Client,
    *,
    status: str | None = None,
    account: str | None = None,
    overdue: bool = False,
    limit: int = 50,
) -> list[TransferRow]:
    """The newest transfers matching the filters.

    `overdue`: parked for an operator longer than their retry window, that
    is whose automatic retries have ended (``RetryUntil`` has passed).
    """
    overdue_at = datetime.now(UTC) if overdue else None
    query = transfer_query(status=status, account=account, overdue_at=overdue_at)
    return [_row(e) async for e in client.list_workflows(query, limit=limit)]


@dataclass
class Stats:
    """Counts by status, compensation rate and durations of closed transfers."""

    window_hours: float
    total: int
    by_status: dict[str, int]
    compensation_rate: float | None
    closed_in_window: int
    mean_seconds: float | None
    p95_seconds: float | None
    sampled: int = field(default=0)

    def as_json(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


async def transfer_stats(
    client: Client, *, window: timedelta = timedelta(hours=24), sample_limit: int = 10_000
) -> Stats:
    """Counts of every status, and mean/p95 duration of transfers closed within `window`."""
    by_status: dict[str, int] = {}
    for status in TransferStatus:
        count = await client.count_workflows(transfer_query(status=status.value))
        by_status[status.value] = count.count
    total = (await client.count_workflows(transfer_query())).count
    outcomes = by_status[TransferStatus.COMPLETED] + sum(by_status[s] for s in _UNDONE)
    rate = sum(by_status[s] for s in _UNDONE) / outcomes if outcomes else None

    since = (datetime.now(UTC) - window).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = f"{transfer_query()} AND CloseTime > '{since}'"
    durations = [
        (e.close_time - e.start_time).total_seconds()
        async for e in client.list_workflows(query, limit=sample_limit)
        if e.close_time is not None and e.start_time is not None
    ]
    durations.sort()
    closed = (await client.count_workflows(query)).count
    return Stats(
        window_hours=window.total_seconds() / 3600,
        total=total,
        by_status=by_status,
        compensation_rate=rate,
        closed_in_window=closed,
        mean_seconds=sum(durations) / len(durations) if durations else None,
        p95_seconds=_percentile(durations, 0.95),
        sampled=len(durations),
    )


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
