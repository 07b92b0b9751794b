"""How a ledger step runs: its timeouts and retries, where it runs, and how it fails.

Every step of a transfer is an activity. `StepOptions` says how long an
attempt may take and how it is retried; the constants below are the
transfer's choices (forward steps give up quickly so the saga can undo;
compensations keep trying for a day). A `StepRunner` runs one step: on its
bank's task queue (`RemoteSteps`) or inside the workflow task as a local
activity (`LocalSteps`, the low-latency mode). Either way a step that fails
for good raises `StepFailed`, which says why in one `StepError`. A
`StepTracker` runs steps for a transfer and keeps each step's state (and the
Web UI's current details) up to date.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    TimeoutType,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities import StepInput
    from workflows import banks, patches, visibility
    from workflows.contract import StepError, StepState, StepStatus, TransferState


@dataclass(frozen=True)
class StepOptions:
    """Timeouts and retries for one kind of step."""

    start_to_close: timedelta
    schedule_to_close: timedelta
    retry: RetryPolicy

    def within(self, left: timedelta) -> StepOptions:
        """These options, with every attempt and retry ending by `left` from now."""
        return replace(self, schedule_to_close=min(self.schedule_to_close, left))

    def as_arguments(self, summary: str) -> dict[str, Any]:
        """The keyword arguments of `workflow.execute_activity` (or its local twin)."""
        return {
            "start_to_close_timeout": self.start_to_close,
            "schedule_to_close_timeout": self.schedule_to_close,
            "retry_policy": self.retry,
            "summary": summary,
        }


#: Forward steps: a few quick retries, then give up and compensate.
FORWARD = StepOptions(
    start_to_close=timedelta(seconds=10),
    schedule_to_close=timedelta(minutes=2),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=5,
    ),
)

#: Compensations: an unfinished compensation leaves money in clearing, so
#: they retry (with a longer backoff) until they succeed or fail for good.
COMPENSATION = StepOptions(
    start_to_close=timedelta(seconds=10),
    schedule_to_close=timedelta(days=1),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=0,  # unlimited, bounded by the schedule-to-close timeout
    ),
)

#: An operator's settlement: an operator is waiting on the answer.
SETTLEMENT = StepOptions(
    start_to_close=timedelta(seconds=10),
    schedule_to_close=timedelta(minutes=1),
    retry=RetryPolicy(maximum_attempts=5),
)

#: Recording an operator's action in the ledger: the operator waits on it,
#: and the action is carried out only once it is recorded.
OPERATOR_RECORD = StepOptions(
    start_to_close=timedelta(seconds=10),
    schedule_to_close=timedelta(minutes=1),
    retry=RetryPolicy(maximum_attempts=5),
)

#: Why a step (or the transfer) stopped when a client cancelled it.
CANCELLED = StepError(type="Cancelled", message="Transfer was cancelled")


class StepFailed(Exception):
    """A step failed for good: retries spent, timed out, refused, or cancelled.

    Attributes:
        error: Why, as the transfer's state shows it.
        failure: What Temporal raised (an `ActivityError`, or for a local
            activity the application error or timeout itself): the cause
            that the transfer's own failure chains to.
        never_started: No worker ever started an attempt (remote steps
            only): the step cannot apply late, so there is nothing to void.
    """

    def __init__(self, name: str, failure: BaseException, *, never_started: bool = False) -> None:
        self.error = describe_failure(failure)
        super().__init__(f"{name}: {self.error.message}")
        self.failure = failure
        self.never_started = never_started

    @property
    def cancelled(self) -> bool:
        """Whether the step was cancelled (the transfer is being cancelled)."""
        return is_cancelled_exception(self.failure)

    @property
    def timed_out(self) -> bool:
        """Whether the step ran out of time (a timeout, not a refusal)."""
        return isinstance(_reason(self.failure), ActivityTimeoutError)

    @property
    def attempts(self) -> int | None:
        """How many attempts the ledger saw, if the refusal says (its first detail)."""
        reason = _reason(self.failure)
        if isinstance(reason, ApplicationError) and reason.details:
            first = reason.details[0]
            return first if isinstance(first, int) else None
        return None


def describe_failure(err: BaseException) -> StepError:
    """The business reason behind a step's failure, or any other error's type and text."""
    if isinstance(err, StepFailed):
        return err.error
    reason = _reason(err)
    if isinstance(reason, ApplicationError):
        return StepError(type=reason.type or "ApplicationError", message=reason.message)
    if isinstance(reason, CancelledError):
        return CANCELLED
    if isinstance(reason, ActivityTimeoutError):
        kind = reason.type.name if reason.type else "unknown"
        return StepError(type="StepTimedOut", message=f"Step timed out ({kind})")
    return StepError(type=type(reason).__name__, message=str(reason))


def _reason(err: BaseException) -> BaseException:
    """An activity failure's cause (what the activity raised), or the error itself."""
    if isinstance(err, ActivityError) and err.cause is not None:
        return err.cause
    return err


class StepRunner(Protocol):
    """Runs one step's activity; raises `StepFailed` if it fails for good."""

    async def run(
        self,
        name: str,
        activity: Any,
        arg: BaseModel,
        options: StepOptions,
        summary: str,
        bank: str | None,
    ) -> Any:
        """Run `activity(arg)` with `options`, at `bank` if given; return its result."""
        ...


class RemoteSteps:
    """Each step an activity task, on its bank's task queue (or the workflow's own)."""

    async def run(
        self,
        name: str,
        activity: Any,
        arg: BaseModel,
        options: StepOptions,
        summary: str,
        bank: str | None,
    ) -> Any:
        """Run `activity(arg)` on its bank's queue; see `StepRunner.run`."""
        queue = None if bank is None else banks.bank_task_queue(bank, workflow.info().task_queue)
        try:
            return await workflow.execute_activity(
                activity, arg, task_queue=queue, **options.as_arguments(summary)
            )
        except ActivityError as err:
            raise StepFailed(name, err, never_started=_never_started(err)) from err


class LocalSteps:
    """Each step a local activity, run by the worker that runs the workflow task."""

    async def run(
        self,
        name: str,
        activity: Any,
        arg: BaseModel,
        options: StepOptions,
        summary: str,
        bank: str | None,
    ) -> Any:
        """Run `activity(arg)` in this workflow task; see `StepRunner.run`."""
        try:
            return await workflow.execute_local_activity(
                activity, arg, **options.as_arguments(summary)
            )
        # A local activity's failure may arrive bare: the application error
        # or timeout itself rather than wrapped in an ActivityError.
        except FailureError as err:
            raise StepFailed(name, err) from err


def nothing_to_undo(name: str, failed: StepFailed) -> StepError | None:
    """Why a failed forward step's compensation has nothing to undo, if it provably has not.

    A step that no worker ever started, or whose key holds another transfer's
    posting (this id used before, for another transfer), gets no compensation.
    """
    if failed.never_started:
        # No worker ever took the step, and the server hands out no task
        # after its timeout: it cannot apply late, so there is nothing to
        # void. (A bank whose worker is down need not come back first.)
        return StepError(
            type="NeverStarted", message=f"No worker ever started the {name}: nothing to undo"
        )
    if failed.error.type == "IdempotencyConflict" and workflow.patched(patches.FOREIGN_POSTINGS):
        # A second run under a closed transfer's id, for another transfer:
        # reversing that key would undo the first transfer.
        return StepError(
            type="ForeignPostings",
            message=f"The {name} key holds an earlier transfer's posting under "
            "this id: nothing of this run's to undo",
        )
    return None


def _never_started(err: ActivityError) -> bool:
    """Whether an activity timed out with no attempt ever started by a worker.

    No started event, and no earlier attempt's failure behind the timeout.
    """
    cause = err.cause
    return (
        err.started_event_id == 0
        and isinstance(cause, ActivityTimeoutError)
        and cause.type in (TimeoutType.SCHEDULE_TO_CLOSE, TimeoutType.SCHEDULE_TO_START)
        and cause.cause is None
    )


class StepTracker:
    """Runs a transfer's steps and keeps each one's `StepState` current.

    Running, then completed (with its receipt and attempts) or failed (with
    why); the Web UI's current details are refreshed at every change.
    """

    def __init__(self, state: TransferState, runner: StepRunner) -> None:
        self.runner = runner
        self._state = state
        #: The options compensations run with now (an automatic retry of a
        #: parked transfer's compensations uses shorter ones).
        self.compensation = COMPENSATION

    def refresh_details(self) -> None:
        """Show the transfer's state in the Web UI's current details."""
        workflow.set_current_details(visibility.current_details(self._state))

    async def run(
        self,
        step: StepState,
        activity: Any,
        arg: BaseModel,
        options: StepOptions,
        bank: str | None = None,
    ) -> Any:
        """Run one step's activity; return its result or raise `StepFailed`."""
        step.status = StepStatus.RUNNING
        step.error = None
        self.refresh_details()
        if isinstance(arg, StepInput):
            summary = visibility.step_summary(step.name, arg.account_id, arg.amount, arg.currency)
        else:
            summary = step.name
        try:
            result = await self.runner.run(step.name, activity, arg, options, summary, bank)
        # No `finally` here: when a worker evicts a workflow it closes this
        # coroutine (GeneratorExit), and workflow calls are not allowed then.
        except StepFailed as failed:
            step.status = StepStatus.FAILED
            step.error = failed.error
            if failed.attempts is not None:
                step.attempts = failed.attempts
            self.refresh_details()
            raise
        except asyncio.CancelledError:
            step.status = StepStatus.FAILED
            step.error = CANCELLED
            self.refresh_details()
            raise
        step.status = StepStatus.COMPLETED
        step.result = result.receipt
        step.attempts = result.attempt
        self.refresh_details()
        return result
