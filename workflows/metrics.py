"""The transfer's own metrics, on the SDK's meter (exported with the worker's `--metrics-port`).

Counters for transfers started and for each outcome, the time from start to
the final status and from the first compensation to the end, and the money
moved by completed transfers, in minor units per currency (a ``currency``
attribute: cents and yen never add up). The SDK does not record metrics while a
workflow replays, so a worker restart counts nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ledger import places
    from workflows.contract import FINAL_STATUSES, TransferState, TransferStatus


class TransferMetrics:
    """One transfer's metrics; `record` each status it enters."""

    def __init__(self) -> None:
        meter = workflow.metric_meter()
        # Entering `running` is a transfer starting; the rest are outcomes.
        names = {TransferStatus.RUNNING: "started"} | {
            status: status.value
            for status in (
                TransferStatus.SCHEDULED,
                TransferStatus.COMPLETED,
                TransferStatus.COMPENSATED,
                TransferStatus.NEEDS_ATTENTION,
                TransferStatus.CANCELLED,
                TransferStatus.RESOLVED,
            )
        }
        self._counters = {
            status: meter.create_counter(f"transfer_{name}", f"Transfers {name}")
            for status, name in names.items()
        }
        self._duration = meter.create_histogram_timedelta(
            "transfer_duration", "From start to the final status"
        )
        self._compensation_duration = meter.create_histogram_timedelta(
            "transfer_compensation_duration", "From the first compensation to the end"
        )
        self._amount_moved = meter.create_counter(
            "transfer_amount_moved",
            "Money moved by completed transfers, per currency (attribute currency)",
            "minor units",
        )
        self._compensating_since: datetime | None = None

    def record(self, status: TransferStatus, state: TransferState) -> None:
        """Count the transfer entering `status`; at the end, its durations and amount."""
        request = state.request
        now = workflow.now()
        if status in self._counters:
            self._counters[status].add(1)
        if status == TransferStatus.COMPENSATING and self._compensating_since is None:
            self._compensating_since = now
        if status in FINAL_STATUSES:
            # From the client's start (or the date it was due, if dated
            # ahead), time spent waiting for a worker included.
            began = workflow.info().workflow_start_time
            if request.execute_at is not None:
                began = max(began, request.execute_at)
            self._duration.record(now - began)
            if self._compensating_since is not None:
                self._compensation_duration.record(now - self._compensating_since)
        currency = state.currency
        if status == TransferStatus.COMPLETED and currency is not None:
            units = int(request.amount.scaleb(places(currency)))
            self._amount_moved.with_additional_attributes({"currency": currency}).add(units)
