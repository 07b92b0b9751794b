"""Time-skipping tests: how much simulated time each one covered, and in how much wall time.

`skipping(env, what)` measures a block; the suite prints every measurement
at the end of the run (tests/conftest.py), so a reader sees, say, thirty
simulated days pass in under a second of wall time.
"""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from app.temporal import register_search_attributes
from app.temporal import time_skipping_server as time_skipping_server_path
from tests.keys import TEST_CONVERTER


async def time_skipping_server() -> WorkflowEnvironment:
    """A new time-skipping test server (the installed binary, offline), ready for transfers."""
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_CONVERTER,
        test_server_existing_path=time_skipping_server_path(),
        interceptors=[LEFT_RUNNING],
    )
    await register_search_attributes(environment.client)
    return environment


#: (what, simulated time, wall seconds) of every measured block this run.
MEASURED: list[tuple[str, timedelta, float]] = []


class Clock:
    """The transfer a measured block follows (its own span is the simulated time)."""

    def __init__(self) -> None:
        self.handle: WorkflowHandle[Any, Any] | None = None

    def follow(self, handle: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
        """Measure this workflow's span, start to close, as the block's simulated time."""
        self.handle = handle
        return handle


@asynccontextmanager
async def skipping(env: WorkflowEnvironment, what: str) -> AsyncIterator[Clock]:
    """Measure the simulated and the wall time the block takes.

    The simulated time is the followed workflow's span from start to close
    (or to now): the server's own clock may jump far ahead once nothing is
    left to wait for, so the clock's difference would say less.
    """
    clock, wall = Clock(), time.monotonic()
    simulated_start = await env.get_current_time()
    yield clock
    wall = time.monotonic() - wall
    if clock.handle is None:
        simulated = await env.get_current_time() - simulated_start
    else:
        description = await clock.handle.describe()
        end = description.close_time or await env.get_current_time()
        simulated = end - description.start_time
    MEASURED.append((what, simulated, wall))


def report() -> list[str]:
    """One line per measured block: `what: 30d 0h 0m simulated in 0.84 s wall`."""
    lines = []
    for what, simulated, wall in MEASURED:
        minutes = round(simulated.total_seconds() / 60)
        days, minutes = divmod(minutes, 24 * 60)
        shown = f"{days}d {minutes // 60}h {minutes % 60}m"
        lines.append(f"{what}: {shown} simulated in {wall:.2f} s wall")
    return lines


class StartedWorkflows(Interceptor):
    """A client interceptor that remembers every workflow the client starts.

    The time-skipping server is shared by the session. A test that leaves a
    workflow running on a task queue whose worker it stopped (a transfer
    parked for an operator, say) would leave its timers behind: when they
    fire, a workflow task waits for a worker that never comes, and the
    server stops skipping time for every later test. So the suite
    terminates what each test left running (tests/conftest.py).
    """

    def __init__(self) -> None:
        self.started: list[tuple[str, str | None]] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Recording(next, self.started)

    async def terminate_running(self, client: Client) -> None:
        """Terminate every workflow started since the last call that is still running."""
        started, self.started[:] = list(self.started), []
        for workflow_id, run_id in started:
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            try:
                description = await handle.describe()
                if description.status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("left running by a test")
            except RPCError:
                pass  # gone already


class _Recording(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, started: list[tuple[str, str | None]]) -> None:
        super().__init__(next)
        self._started = started

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        handle = await super().start_workflow(input)
        self._started.append((handle.id, handle.result_run_id))
        return handle


#: What each test started on a time-skipping server (terminated after it).
LEFT_RUNNING = StartedWorkflows()
