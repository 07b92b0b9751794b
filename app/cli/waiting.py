"""Waiting for a transfer to end, and saying why when it takes long: no worker, or parked.

A caller left waiting in silence cannot tell a transfer that waits for a
worker, or for an operator, from a hang. Both are told once, on stderr, from
what Temporal knows without a worker: the workflow's description says whether
a worker has started its pending workflow task.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from app.cli.output import warn
from app.transfers import TransferOutcome, wait_outcome
from workflows.contract import TransferStatus
from workflows.transfer import TransferWorkflow

#: How long a workflow task may wait unstarted before we say no worker runs it.
NO_WORKER_SECONDS = 5.0
#: How often a waiting command looks at the transfer.
LOOK_EVERY_SECONDS = 2.0


def no_worker_message(task_queue: str) -> str:
    """What to do when no worker takes the transfer's tasks."""
    return f"no worker is polling task queue {task_queue}; start one with: python worker.py"


async def unstarted_task(handle: Any) -> datetime | None:
    """When the transfer's pending workflow task was scheduled, if no worker has started it."""
    try:
        raw = (await handle.describe()).raw_description
    except RPCError:
        return None
    if not raw.HasField("pending_workflow_task"):
        return None
    task = raw.pending_workflow_task
    if task.state != PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED:
        return None
    scheduled: datetime = task.scheduled_time.ToDatetime()
    return scheduled


class WorkerWatch:
    """Tells whether one pending workflow task has waited `quiet` seconds for a worker.

    Measured on this process's clock from when the watch began (or the task
    appeared), so a server whose clock differs cannot make it speak early.
    """

    def __init__(self, quiet: float = NO_WORKER_SECONDS) -> None:
        self.quiet = quiet
        self._task: datetime | None = None
        self._since = time.monotonic()

    async def no_worker(self, handle: Any) -> bool:
        """Whether the transfer's pending workflow task has waited unstarted that long."""
        scheduled = await unstarted_task(handle)
        now = time.monotonic()
        if scheduled != self._task:
            if self._task is not None:  # another task: count from now
                self._since = now
            self._task = scheduled
        return scheduled is not None and now - self._since >= self.quiet


async def wait_saying_why(handle: Any, task_queue: str) -> TransferOutcome:
    """The transfer's outcome; meanwhile say once if no worker takes it, and once if it parks.

    `task_queue` is the transfer's, named when no worker polls it.
    """
    outcome = await _wait(handle, task_queue, NO_WORKER_SECONDS, until_no_worker=False)
    assert outcome is not None  # it waits for a worker, however long
    return outcome


async def wait_unless_no_worker(
    handle: Any, task_queue: str, quiet: float = NO_WORKER_SECONDS
) -> TransferOutcome | None:
    """As `wait_saying_why`, but None once a workflow task has waited `quiet` s unstarted."""
    return await _wait(handle, task_queue, quiet, until_no_worker=True)


async def _wait(
    handle: Any,
    task_queue: str,
    quiet: float,
    *,
    until_no_worker: bool,
    every: float = LOOK_EVERY_SECONDS,
) -> TransferOutcome | None:
    waiting = asyncio.ensure_future(wait_outcome(handle))
    watch = WorkerWatch(quiet)
    said_no_worker = False
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=every)
            if done:
                break
            if await watch.no_worker(handle):
                if until_no_worker:
                    return None
                if not said_no_worker:
                    warn(
                        f"Transfer {handle.id} is waiting for a worker: "
                        f"{no_worker_message(task_queue)} (still waiting; Ctrl-C stops "
                        "waiting, not the transfer)"
                    )
                    said_no_worker = True
                continue  # no worker would answer a query either
            try:
                state = await handle.query(TransferWorkflow.state, rpc_timeout=timedelta(seconds=5))
            except (RPCError, WorkflowQueryFailedError):
                continue  # no worker just now: keep waiting for the outcome
            if state.status == TransferStatus.NEEDS_ATTENTION:
                # It waits for `retry` or `resolve`, which may be days away.
                warn(
                    f"Transfer {handle.id} is parked for an operator (needs_attention): "
                    f"waiting for `starter.py retry {handle.id}` or `resolve`. Ctrl-C stops "
                    "waiting, not the transfer."
                )
                break
        return await waiting
    finally:
        waiting.cancel()
