"""The saga helper inside real workflows on the time-skipping server."""

import asyncio
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import workflows.saga
from workflows.saga import Saga

ONCE = RetryPolicy(maximum_attempts=1)
TIMEOUT = timedelta(seconds=30)


class Journal:
    """What the test activities did, in order, and the events a test waits on."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started: dict[str, asyncio.Event] = {}
        self.release = asyncio.Event()

    def event(self, name: str) -> asyncio.Event:
        return self.started.setdefault(name, asyncio.Event())


JOURNAL = Journal()


@activity.defn
async def step(name: str) -> None:
    """A forward step: `fail...` fails for good, `hang...` runs until cancelled."""
    JOURNAL.calls.append(name)
    JOURNAL.event(name).set()
    if name.startswith("fail"):
        raise ApplicationError(f"{name} refused", non_retryable=True)
    if name.startswith("hang"):
        await asyncio.Event().wait()


@activity.defn
async def undo(name: str) -> None:
    """A compensation: one whose name holds `slow` waits for the test's release."""
    JOURNAL.calls.append(name)
    JOURNAL.event(name).set()
    if "slow" in name:
        await asyncio.wait_for(JOURNAL.release.wait(), 20)


@activity.defn
async def undo_together(name: str) -> None:
    """A compensation that finishes only once all three have started (parallel mode)."""
    JOURNAL.calls.append(name)
    JOURNAL.event(name).set()
    everyone = [JOURNAL.event(f"together{i}") for i in (1, 2, 3)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in everyone)), 10)


def _compensation(activity_fn: Callable[[str], Any], name: str) -> Callable[[], Any]:
    return lambda: workflow.execute_activity(
        activity_fn, name, start_to_close_timeout=TIMEOUT, retry_policy=ONCE
    )


@workflow.defn(sandboxed=False)
class ThreeSteps:
    """Three steps, each compensation registered first; unwinds on any failure or cancel.

    A step whose name holds ``slow`` gets a compensation that waits for the test's release.
    """

    @workflow.run
    async def run(self, steps: list[str], parallel: bool) -> list[str]:
        """Run `steps` in order; compensations are `undo<i>` (or run together if parallel)."""
        saga = Saga(parallel=parallel)
        try:
            for i, name in enumerate(steps, start=1):
                if parallel:
                    saga.add_compensation(name, _compensation(undo_together, f"together{i}"))
                else:
                    saga.add_compensation(name, _compensation(undo, f"undo-{name}"))
                await workflow.execute_activity(
                    step, name, start_to_close_timeout=TIMEOUT, retry_policy=ONCE
                )
        except BaseException:
            await saga.compensate()
            raise
        return steps


@asynccontextmanager
async def running(client: Client, *workflows_: type, activities: list[Any]) -> AsyncIterator[str]:
    """A worker for the given workflows and activities; yields its task queue."""
    global JOURNAL
    JOURNAL = Journal()
    queue = f"saga-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=list(workflows_),
        activities=activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield queue


async def scheduled_and_cancelled(handle: WorkflowHandle[Any, Any]) -> tuple[list[str], int]:
    """The activity types the workflow scheduled, and how many it asked to cancel."""
    scheduled, cancel_requests = [], 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
            cancel_requests += 1
    return scheduled, cancel_requests


async def test_a_workflow_cancelled_mid_step_runs_every_compensation_in_reverse(
    client: Client,
) -> None:
    """Cancelling while the third step runs undoes all three, newest first, then ends cancelled."""
    async with running(client, ThreeSteps, activities=[step, undo]) as queue:
        handle = await client.start_workflow(
            ThreeSteps.run, args=[["step1", "step2", "hang3"], False], id=f"saga-{uuid.uuid4()}",
            task_queue=queue,
        )  # fmt: skip
        await asyncio.wait_for(JOURNAL.event("hang3").wait(), 20)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 30)
    assert isinstance(failure.value.cause, CancelledError)
    # hang3's compensation is registered before it runs: it may have half-happened.
    assert ["step1", "step2", "hang3", "undo-hang3", "undo-step2", "undo-step1"] == JOURNAL.calls


async def cancel_processed(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the workflow has run a workflow task since its cancel was requested."""
    seen_cancel = False
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            seen_cancel = True
        elif seen_cancel and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return True
    return False


async def test_a_cancel_that_arrives_while_compensating_does_not_stop_the_compensations(
    client: Client,
) -> None:
    """The stack is shielded: a cancel during the first compensation lets it and the rest finish."""
    async with running(client, ThreeSteps, activities=[step, undo]) as queue:
        handle = await client.start_workflow(
            ThreeSteps.run, args=[["step1", "step2", "fail-slow3"], False],
            id=f"saga-{uuid.uuid4()}", task_queue=queue,
        )  # fmt: skip
        # The first compensation is in flight (held until released) when the cancel
        # arrives; it is released only once the workflow has taken the cancel in.
        await asyncio.wait_for(JOURNAL.event("undo-fail-slow3").wait(), 20)
        await handle.cancel()
        for _ in range(200):
            if await cancel_processed(handle):
                break
            await asyncio.sleep(0.05)
        JOURNAL.release.set()
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 30)
        scheduled, cancel_requests = await scheduled_and_cancelled(handle)
    # Every compensation ran to the end, in reverse; none was asked to stop.
    assert ["step1", "step2", "fail-slow3", "undo-fail-slow3", "undo-step2", "undo-step1"] == (
        JOURNAL.calls
    )
    assert ["step", "step", "step", "undo", "undo", "undo"] == scheduled
    assert 0 == cancel_requests
    # Once the stack is unwound, the cancellation takes effect.
    assert isinstance(failure.value.cause, CancelledError)


async def test_parallel_mode_runs_every_compensation_at_once_inside_a_workflow(
    client: Client,
) -> None:
    """Each parallel compensation waits until all three have started: only together can they end."""
    async with running(client, ThreeSteps, activities=[step, undo_together]) as queue:
        handle = await client.start_workflow(
            ThreeSteps.run, args=[["step1", "step2", "fail3"], True], id=f"saga-{uuid.uuid4()}",
            task_queue=queue,
        )  # fmt: skip
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 30)
        scheduled, _ = await scheduled_and_cancelled(handle)
    assert ["step"] * 3 + ["undo_together"] * 3 == scheduled
    assert {"together1", "together2", "together3"} == set(JOURNAL.calls[3:])
    assert "fail3 refused" in str(failure.value.cause.cause)  # type: ignore[union-attr]


def _docstring_example() -> str:
    """The usage example in `workflows.saga`'s docstring, as a reader would paste it."""
    doc = workflows.saga.__doc__ or ""
    block = doc.split("::\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


async def test_the_usage_example_in_the_docstring_works_when_pasted(client: Client) -> None:
    """The documented BookTrip saga books the car, fails the hotel, and cancels both in reverse."""
    calls: list[str] = []

    def recorder(name: str, fail: bool = False) -> Any:
        @activity.defn(name=name)
        async def record(trip: str) -> None:
            calls.append(f"{name} {trip}")
            if fail:
                raise ApplicationError("No rooms", non_retryable=True)

        return record

    namespace: dict[str, Any] = {"__name__": "pasted_example"}
    exec(_docstring_example(), namespace)
    book_trip = namespace["BookTrip"]
    activities = [
        recorder("book_car"),
        recorder("book_hotel", fail=True),
        recorder("cancel_hotel"),
        recorder("cancel_car"),
    ]
    async with running(client, book_trip, activities=activities) as queue:
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                book_trip.run, "rome", id=f"trip-{uuid.uuid4()}", task_queue=queue
            )
    expected = ["book_car rome", "book_hotel rome", "cancel_hotel rome", "cancel_car rome"]
    assert expected == calls
    assert "No rooms" in str(failure.value.cause.cause)  # type: ignore[union-attr]
