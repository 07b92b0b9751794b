"""The transfer's deadline: when the forward steps must be done, and what stopping there means.

There is no timer: the deadline bounds each forward step's schedule-to-close
timeout, so the happy path records no extra event (and, below, no patch
marker either: only a transfer that waited for a worker records one).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import patches
    from workflows.contract import StepError, TransferRequest

#: A first workflow task this long after the start waited for a worker: the
#: deadline then counts from the start. Under it, from the first task, as
#: before `patches.DEADLINE_FROM_START` (at most this much later).
WAITED_FOR_A_WORKER = timedelta(seconds=1)


class DeadlinePassed(Exception):
    """The deadline passed between two forward steps."""


def deadline_of(request: TransferRequest) -> datetime:
    """`deadline_seconds` after the client started the transfer (not after a worker took it).

    After `execute_at` for a transfer dated ahead (`workflows.scheduled`).
    """
    started, first_task = workflow.info().workflow_start_time, workflow.now()
    if request.execute_at is not None and request.execute_at > started:
        return request.execute_at + timedelta(seconds=request.deadline_seconds)
    if first_task - started > WAITED_FOR_A_WORKER and workflow.patched(patches.DEADLINE_FROM_START):
        return started + timedelta(seconds=request.deadline_seconds)
    return first_task + timedelta(seconds=request.deadline_seconds)


def deadline_exceeded(request: TransferRequest) -> StepError:
    """The reason a transfer stopped at its deadline."""
    return StepError(
        type="DeadlineExceeded",
        message=f"Transfer did not complete within {request.deadline_seconds}s",
    )


def never_scheduled(name: str) -> StepError | None:
    """Why a step the deadline stopped before it was scheduled has nothing to undo.

    Never scheduled, so no attempt can apply late: nothing to void. None for
    a transfer from before `patches.DEADLINE_FROM_START`, which voided it.
    """
    if not workflow.patched(patches.DEADLINE_FROM_START):
        return None
    return StepError(
        type="NeverScheduled",
        message=f"The deadline passed before the {name} was scheduled: nothing to undo",
    )
