"""Transfers dated ahead: wait on a durable timer until `execute_at`, posting nothing.

A transfer whose request carries a future `execute_at` is ``scheduled`` until
then: one workflow timer, no activity, so a worker restart loses nothing and
Temporal's time-skipping test server skips the wait. Cancelled while it
waits, it moves nothing and ends ``cancelled``. Its deadline counts from
`execute_at` (`workflows.deadline`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contract import (
        MAX_SCHEDULE_AHEAD_DAYS,
        StepStatus,
        TransferState,
        TransferStatus,
    )
    from workflows.steps import CANCELLED

#: How far after its start a transfer may be dated.
MAX_AHEAD = timedelta(days=MAX_SCHEDULE_AHEAD_DAYS)


async def wait_until_due(
    state: TransferState, set_status: Callable[[TransferStatus], None]
) -> None:
    """Return at the request's `execute_at` (at once if it is absent or past).

    Raises:
        ApplicationError: Dated more than `MAX_AHEAD` after the transfer started
            (a hand-written start; the starter refuses it before starting).
        asyncio.CancelledError: Cancelled while scheduled; nothing was posted and
            the transfer's status is ``cancelled``.
    """
    due = state.request.execute_at
    if due is None or due <= workflow.now():
        return
    if due - workflow.info().workflow_start_time > MAX_AHEAD:
        raise ApplicationError(
            f"execute_at {due.isoformat()} is more than {MAX_SCHEDULE_AHEAD_DAYS} days ahead",
            type="ScheduledTooFarAhead",
            non_retryable=True,
        )
    set_status(TransferStatus.SCHEDULED)
    workflow.logger.info("Transfer scheduled for %s", due.isoformat())
    try:
        await workflow.sleep(due - workflow.now(), summary=f"scheduled for {due.isoformat()}")
    except asyncio.CancelledError:
        for step in state.steps:
            step.status = StepStatus.SKIPPED
        state.error = CANCELLED
        set_status(TransferStatus.CANCELLED)
        workflow.logger.info("Cancelled while scheduled: nothing was posted")
        raise
