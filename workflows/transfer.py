"""The money-transfer saga: debit the source, credit the destination, undo on failure.

The workflow holds no money and touches no database: it decides which ledger
step runs next, and Temporal's history remembers what happened, so a worker
can die between any two lines and the transfer still settles exactly once.

Read `TransferWorkflow.run`, then `_forward_steps` and `_unwind`: that is the
whole pattern. Every transfer ends completed, compensated, cancelled (and
compensated), or resolved by an operator: a compensation that cannot succeed
parks it in ``needs_attention``, retrying by itself (`retries`) until an
operator acts (`operators`). Elsewhere: `contract` (what clients see), `steps`
(timeouts, retries, where a step runs), `saga` (the compensation stack),
`scheduled` (dated ahead), `deadline`, `patches`, `metrics`, `visibility`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import LedgerActivities, StepInput, StepResult
    from ledger import PostingKind
    from workflows import patches, visibility
    from workflows.contract import (
        WORKFLOW_NAME,
        ResolveRequest,
        RetryRequest,
        StepError,
        StepState,
        StepStatus,
        TransferRequest,
        TransferResult,
        TransferState,
        TransferStatus,
    )
    from workflows.deadline import DeadlinePassed, deadline_exceeded, deadline_of, never_scheduled
    from workflows.metrics import TransferMetrics
    from workflows.operators import OperatorDesk, PendingAction, current_update_id
    from workflows.saga import Saga, run_shielded
    from workflows.scheduled import wait_until_due
    from workflows.steps import (
        CANCELLED,
        FORWARD,
        RemoteSteps,
        StepFailed,
        StepRunner,
        StepTracker,
        nothing_to_undo,
    )


class StopReason(StrEnum):
    """Why the forward steps stopped short of completing."""

    STEP_FAILED = "step_failed"
    DEADLINE = "deadline"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Stop:
    """The forward steps stopped: why, as the state shows it, and what raised."""

    reason: StopReason
    error: StepError
    cause: BaseException


@workflow.defn(name=WORKFLOW_NAME, failure_exception_types=[ValidationError])
class TransferWorkflow:
    """Debit, then credit; on failure, deadline or cancellation, undo in reverse order.

    Input that fails validation (from a hand-written JSON start, say) fails
    the workflow with a `ValidationError` before any step is scheduled.
    """

    #: Where the ledger steps run: activity tasks on each bank's queue.
    runner: StepRunner = RemoteSteps()

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
        # Compensations depend on each other (the debit's refund comes out of
        # clearing only after the credit went back into it), so stop at the
        # first one that fails and leave the rest pending.
        self._saga = Saga(continue_on_failure=False, catch=(StepFailed,))
        self._steps = StepTracker(self._state, self.runner)
        self._desk = OperatorDesk(self._state, self._saga, self._steps, self._set_status)
        self._metrics = TransferMetrics()
        #: Forward steps whose compensation has nothing to undo, and why
        #: (NeverScheduled, NeverStarted, ForeignPostings: see `nothing_to_undo`).
        self._nothing_to_undo: dict[str, StepError] = {}

    @workflow.run
    async def run(self, request: TransferRequest) -> TransferResult:
        """Move `request.amount` from source to destination, exactly once or not at all."""
        self._deadline = deadline_of(request)
        await wait_until_due(self._state, self._set_status)  # dated ahead: scheduled until then
        self._set_status(TransferStatus.RUNNING)
        try:
            debit, credit = await self._forward_steps(request)
        except (StepFailed, asyncio.CancelledError, DeadlinePassed) as err:
            stop = self._stop(err)
            await self._unwind(stop)
            if stop.reason is StopReason.CANCELLED and (
                self._state.status == TransferStatus.CANCELLED
                or not workflow.patched(patches.RESOLVED_AFTER_CANCEL)
            ):
                # Re-raising a cancellation ends the workflow as cancelled.
                raise asyncio.CancelledError() from stop.cause
            # Compensated, or resolved by an operator (even after a cancel:
            # the balances are not as they were, so it must not read cancelled).
            raise self._final_failure(stop.error) from stop.cause

        self._set_status(TransferStatus.COMPLETED)
        workflow.logger.info("Transfer completed")
        return TransferResult(
            transfer_id=self._state.transfer_id,
            source_account=request.source_account,
            destination_account=request.destination_account,
            amount=request.amount,
            debit=debit.receipt,
            credit=credit.receipt,
        )

    async def _forward_steps(self, request: TransferRequest) -> tuple[StepResult, StepResult]:
        """Debit, then credit, each compensation registered before its step runs."""
        source, at_source, at_destination = request.debit_step(), *request.banks
        self._saga.add_compensation(
            "reverse_debit",
            lambda: self._compensate("debit", LedgerActivities.reverse_debit, source, at_source),
        )
        debit = await self._forward("debit", LedgerActivities.debit, source, at_source)
        # Out of the clearing of the currency the debit moved (the request may name none).
        destination = request.credit_step(debit.receipt.currency)
        self._saga.add_compensation(
            "reverse_credit",
            lambda: self._compensate(
                "credit", LedgerActivities.reverse_credit, destination, at_destination
            ),
        )
        credit = await self._forward("credit", LedgerActivities.credit, destination, at_destination)
        return debit, credit

    def _stop(self, err: BaseException) -> Stop:
        """Why the forward steps stopped: a step's failure, the deadline, or a cancel."""
        deadline = deadline_exceeded(self._state.request)
        if isinstance(err, DeadlinePassed):
            return Stop(StopReason.DEADLINE, deadline, err)
        if isinstance(err, StepFailed) and not err.cancelled:
            if err.timed_out and workflow.now() >= self._deadline:
                return Stop(StopReason.DEADLINE, deadline, err.failure)
            return Stop(StopReason.STEP_FAILED, err.error, err.failure)
        return Stop(StopReason.CANCELLED, CANCELLED, getattr(err, "failure", err))

    async def _unwind(self, stop: Stop) -> None:
        """Run the compensations to the end, shielded from cancellation.

        A compensation that fails for good parks the transfer in
        ``needs_attention`` until an operator retries or resolves it.
        """
        for step in self._state.steps:
            if step.status == StepStatus.PENDING:
                step.status = StepStatus.SKIPPED
            elif step.status == StepStatus.FAILED and stop.reason is StopReason.DEADLINE:
                step.error = stop.error  # the step the deadline interrupted
        self._state.error = stop.error
        self._set_status(TransferStatus.COMPENSATING)
        workflow.logger.info("Compensating: %s", stop.error.message)
        await run_shielded(
            self._desk.compensate_until_settled,
            on_cancel=lambda: workflow.logger.info(
                "Cancellation requested while compensating: finishing first"
            ),
        )
        # Still parked if an automatic retry settled it (`workflows.retries`).
        if self._state.status in (TransferStatus.COMPENSATING, TransferStatus.NEEDS_ATTENTION):
            cancelled = stop.reason is StopReason.CANCELLED
            self._set_status(TransferStatus.CANCELLED if cancelled else TransferStatus.COMPENSATED)
        # Let update callers receive their answers before the workflow closes.
        await workflow.wait_condition(workflow.all_handlers_finished)

    # -- steps --------------------------------------------------------------------

    async def _forward(
        self, name: str, activity: Any, step: StepInput, bank: str | None = None
    ) -> StepResult:
        left = self._deadline - workflow.now()
        if left <= timedelta(0):
            why = never_scheduled(name)
            if why is not None:
                self._nothing_to_undo[name] = why
            raise DeadlinePassed()
        try:
            result: StepResult = await self._steps.run(
                self._state.step(name), activity, step, FORWARD.within(left), bank
            )
        except StepFailed as failed:
            why = nothing_to_undo(name, failed)
            if why is not None:
                self._nothing_to_undo[name] = why
            raise
        return result

    async def _compensate(
        self, undoes: str, activity: Any, step: StepInput, bank: str | None = None
    ) -> None:
        name = f"reverse_{undoes}"
        # A retried compensation reuses its step entry.
        existing = [s for s in self._state.steps if s.name == name]
        state = existing[0] if existing else StepState(name=name, kind="compensation")
        if not existing:
            self._state.steps.append(state)
        skipped = self._nothing_to_undo.get(undoes)
        if skipped is not None:
            state.status = StepStatus.SKIPPED
            state.error = skipped
            self._steps.refresh_details()
            return
        options = self._steps.compensation
        result: StepResult = await self._steps.run(state, activity, step, options, bank)
        if result.receipt.kind != PostingKind.VOID:
            # A void means the step never applied: it stays failed (or
            # skipped). A real reversal means it had applied: now undone.
            self._state.step(undoes).status = StepStatus.COMPENSATED

    def _final_failure(self, reason: StepError) -> ApplicationError:
        """The workflow's failure: the business reason, with the final status as detail."""
        message = reason.message
        if self._state.status == TransferStatus.RESOLVED:
            message += "; resolved by an operator"
        return ApplicationError(
            message, self._state.status.value, type=reason.type, non_retryable=True
        )

    # -- what the outside sees ----------------------------------------------------

    def _set_status(self, status: TransferStatus) -> None:
        """Change status everywhere it shows: state, search attribute, details, metrics.

        Our clients start a transfer with its search attributes (status
        ``running``, or ``scheduled``), so a completed transfer upserts once, at
        the end; one started without them sets them all when it starts.
        """
        self._state.status = status
        shown = workflow.info().typed_search_attributes.get(visibility.TRANSFER_STATUS)
        if status not in (TransferStatus.RUNNING, TransferStatus.SCHEDULED) or (
            shown is not None and shown != status.value
        ):
            workflow.upsert_search_attributes([visibility.TRANSFER_STATUS.value_set(status.value)])
        elif shown is None:
            workflow.upsert_search_attributes(
                visibility.search_attribute_updates(self._state.request, status)
            )
        self._metrics.record(status, self._state)
        self._steps.refresh_details()

    @workflow.query(name="state")
    def state(self) -> TransferState:
        """The transfer's status and every step's status, result, error and attempts."""
        return self._state

    @workflow.update(name="retry")
    async def retry(self, request: RetryRequest) -> TransferState:
        """Run the pending compensations again (after an account was unfrozen, say)."""
        return await self._desk.submit(PendingAction("retry", request, current_update_id()))

    @retry.validator
    def _validate_retry(self, request: RetryRequest) -> None:
        self._desk.require_attention("retry")

    @workflow.update(name="resolve")
    async def resolve(self, request: ResolveRequest) -> TransferState:
        """Settle a parked transfer by hand: move its clearing money and record why."""
        return await self._desk.submit(PendingAction("resolve", request, current_update_id()))

    @resolve.validator
    def _validate_resolve(self, request: ResolveRequest) -> None:
        self._desk.validate_resolve(request)
