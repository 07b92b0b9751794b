"""The money-transfer saga: debit the source, credit the destination, undo on failure.

The workflow holds no money and touches no database: it decides which ledger
step runs next and remembers what happened. Temporal's history is its
memory, so a worker can die between any two lines and the transfer still
settles exactly once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities import LedgerActivities, StepInput, StepResult
    from activities.ledger_activities import AccountId, Amount
    from ledger import PostingKind, Receipt, SameAccount
    from workflows.saga import CompensationError, Saga

WORKFLOW_NAME = "TransferWorkflow"


@dataclass(frozen=True)
class StepOptions:
    """Timeouts and retries for one kind of step."""

    start_to_close: timedelta
    schedule_to_close: timedelta
    retry: RetryPolicy


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


class TransferRequest(BaseModel):
    """What a client asks for. The amount may be a decimal string ("150.00")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_account: AccountId
    destination_account: AccountId
    amount: Amount

    @model_validator(mode="after")
    def _distinct_accounts(self) -> TransferRequest:
        if self.source_account == self.destination_account:
            raise SameAccount(self.source_account)
        return self


class TransferStatus(StrEnum):
    """Where a transfer stands."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    CANCELLED = "cancelled"  # cancelled by a client, compensations done
    FAILED = "failed"  # a compensation failed: money may be stuck in clearing


class StepStatus(StrEnum):
    """Where one step stands."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"  # a forward step that applied and was reversed
    SKIPPED = "skipped"  # a forward step that never ran: an earlier one failed


class StepError(BaseModel):
    """Why a step (or the transfer) failed: a stable type and a message."""

    type: str
    message: str


class StepState(BaseModel):
    """One forward step or compensation of a transfer."""

    name: str
    kind: Literal["forward", "compensation"]
    status: StepStatus = StepStatus.PENDING
    result: Receipt | None = None
    error: StepError | None = None
    attempts: int = 0


class TransferState(BaseModel):
    """The `state` query: the transfer and every step, at this moment."""

    transfer_id: str
    request: TransferRequest
    status: TransferStatus
    steps: list[StepState]
    error: StepError | None = None
    compensation_errors: list[StepError] = []

    def step(self, name: str) -> StepState:
        """The step called `name` (KeyError if it has not been added)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


class TransferResult(BaseModel):
    """A completed transfer: what moved, with both ledger receipts."""

    transfer_id: str
    source_account: str
    destination_account: str
    amount: Decimal
    debit: Receipt
    credit: Receipt


_CANCELLED = StepError(type="Cancelled", message="Transfer was cancelled")


@workflow.defn(name=WORKFLOW_NAME, failure_exception_types=[ValidationError])
class TransferWorkflow:
    """Debit, then credit; on failure or cancellation, undo in reverse order.

    Input that fails validation (from a hand-written JSON start, say) fails
    the workflow with a `ValidationError` before any step is scheduled.
    """

    @workflow.init
    def __init__(self, request: TransferRequest) -> None:
        self._state = TransferState(
            transfer_id=workflow.info().workflow_id,
            request=request,
            status=TransferStatus.PENDING,
            steps=[
                StepState(name="debit", kind="forward"),
                StepState(name="credit", kind="forward"),
            ],
        )

    @workflow.query(name="state")
    def state(self) -> TransferState:
        """The transfer's status and every step's status, result, error and attempts."""
        return self._state

    @workflow.run
    async def run(self, request: TransferRequest) -> TransferResult:
        """Move `request.amount` from source to destination, exactly once or not at all."""
        self._state.status = TransferStatus.RUNNING
        source = StepInput(account_id=request.source_account, amount=request.amount)
        destination = StepInput(account_id=request.destination_account, amount=request.amount)
        saga = Saga(catch=(ActivityError,))
        try:
            saga.add_compensation(
                "reverse_debit",
                lambda: self._compensate("debit", LedgerActivities.reverse_debit, source),
            )
            debit = await self._forward("debit", LedgerActivities.debit, source)
            saga.add_compensation(
                "reverse_credit",
                lambda: self._compensate("credit", LedgerActivities.reverse_credit, destination),
            )
            credit = await self._forward("credit", LedgerActivities.credit, destination)
        except ActivityError as err:
            if is_cancelled_exception(err):
                # The workflow was cancelled while a step ran: undo, then end
                # as cancelled (re-raising a cancellation marks it so).
                await self._unwind(saga, _CANCELLED)
                raise
            reason = _describe(err)
            await self._unwind(saga, reason)
            raise ApplicationError(reason.message, type=reason.type, non_retryable=True) from err
        except asyncio.CancelledError:
            await self._unwind(saga, _CANCELLED)
            raise

        self._state.status = TransferStatus.COMPLETED
        workflow.logger.info("Transfer completed")
        return TransferResult(
            transfer_id=self._state.transfer_id,
            source_account=request.source_account,
            destination_account=request.destination_account,
            amount=request.amount,
            debit=debit.receipt,
            credit=credit.receipt,
        )

    async def _forward(self, name: str, activity: Any, step: StepInput) -> StepResult:
        return await self._run_step(self._state.step(name), activity, step, FORWARD)

    async def _compensate(self, undoes: str, activity: Any, step: StepInput) -> None:
        state = StepState(name=f"reverse_{undoes}", kind="compensation")
        self._state.steps.append(state)
        result = await self._run_step(state, activity, step, COMPENSATION)
        if result.receipt.kind != PostingKind.VOID:
            # A void means the step never applied: it stays failed (or
            # skipped). A real reversal means it had applied: now undone.
            self._state.step(undoes).status = StepStatus.COMPENSATED

    async def _run_step(
        self, state: StepState, activity: Any, step: StepInput, options: StepOptions
    ) -> StepResult:
        """Run one activity and keep its step state current: running, then done or failed."""
        state.status = StepStatus.RUNNING
        try:
            result: StepResult = await workflow.execute_activity(
                activity,
                step,
                start_to_close_timeout=options.start_to_close,
                schedule_to_close_timeout=options.schedule_to_close,
                retry_policy=options.retry,
            )
        except ActivityError as err:
            _record_failure(state, err)
            raise
        except asyncio.CancelledError:
            state.status = StepStatus.FAILED
            state.error = _CANCELLED
            raise
        state.status = StepStatus.COMPLETED
        state.result = result.receipt
        state.attempts = result.attempt
        return result

    async def _unwind(self, saga: Saga, reason: StepError) -> None:
        """Run the compensations; fail loudly with every error if any of them fails."""
        self._state.status = TransferStatus.COMPENSATING
        self._state.error = reason
        for step in self._state.steps:
            if step.status == StepStatus.PENDING:
                step.status = StepStatus.SKIPPED
        workflow.logger.info("Compensating: %s", reason.message)
        try:
            await saga.compensate()
        except CompensationError as err:
            self._state.status = TransferStatus.FAILED
            self._state.compensation_errors = [
                _describe(f.error) if isinstance(f.error, ActivityError) else _plain(f.error)
                for f in err.failures
            ]
            details = "; ".join(f"{e.type}: {e.message}" for e in self._state.compensation_errors)
            raise ApplicationError(
                f"{reason.message}; compensation failed: {details}",
                type="CompensationFailed",
                non_retryable=True,
            ) from err
        cancelled = reason is _CANCELLED
        self._state.status = TransferStatus.CANCELLED if cancelled else TransferStatus.COMPENSATED


def _describe(err: ActivityError) -> StepError:
    """The business reason behind an activity failure."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return StepError(type=cause.type or "ApplicationError", message=cause.message)
    if isinstance(cause, CancelledError):
        return _CANCELLED
    if isinstance(cause, TimeoutError):
        return StepError(
            type="StepTimedOut",
            message=f"Step timed out ({cause.type.name if cause.type else 'unknown'})",
        )
    return _plain(cause or err)


def _plain(err: BaseException) -> StepError:
    return StepError(type=type(err).__name__, message=str(err))


def _record_failure(state: StepState, err: ActivityError) -> None:
    state.status = StepStatus.FAILED
    state.error = _describe(err)
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], int):
        state.attempts = cause.details[0]
