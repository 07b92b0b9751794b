"""The money-transfer saga: debit the source, credit the destination, undo on failure.

The workflow holds no money and touches no database: it decides which ledger
step runs next and remembers what happened. Temporal's history is its
memory, so a worker can die between any two lines and the transfer still
settles exactly once.

Every transfer ends in one of: completed, compensated, cancelled (and
compensated), or resolved by an operator. A compensation that cannot succeed
parks the transfer in ``needs_attention`` until an operator acts through the
``retry`` or ``resolve`` update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
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
    from activities import LedgerActivities, SettleInput, SettleResult, StepInput, StepResult
    from activities.ledger_activities import (
        AccountId,
        Amount,
        Note,
        Operator,
        OperatorActionInput,
    )
    from ledger import EXTERNAL_ACCOUNT, PostingKind, Receipt, SameAccount
    from workflows import banks, visibility
    from workflows.saga import CompensationError, Saga

WORKFLOW_NAME = "TransferWorkflow"
LOW_LATENCY_WORKFLOW_NAME = "LowLatencyTransferWorkflow"

#: How long a transfer may take, by default, before it gives up and compensates.
DEFAULT_DEADLINE_SECONDS = 300
MAX_DEADLINE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class StepOptions:
    """Timeouts and retries for one kind of step."""

    start_to_close: timedelta
    schedule_to_close: timedelta
    retry: RetryPolicy

    def within(self, left: timedelta) -> StepOptions:
        """These options, with every attempt and retry ending by `left` from now."""
        return replace(self, schedule_to_close=min(self.schedule_to_close, left))


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

#: Who the operator log names when a request did not say (one sent before
#: requests carried the operator, say).
UNKNOWN_OPERATOR = "unknown (not given)"

#: The `workflow.patched` id of recording operator actions in the ledger:
#: transfers parked before it existed replay without that activity.
OPERATOR_LOG_PATCH = "operator-log"

#: The `workflow.patched` id of refusing `retry` once a settlement by hand has
#: begun: transfers that retried after a failed resolve before it replay as they ran.
SETTLEMENT_BEGUN_PATCH = "retry-refused-after-settlement"

#: The `workflow.patched` id of leaving a step's compensation out when its key
#: holds another transfer's posting (an id used before for another transfer).
FOREIGN_KEYS_PATCH = "foreign-postings-left-alone"

#: The `workflow.patched` id of closing a cancelled transfer that an operator
#: then resolved as resolved (a failure saying so), not as cancelled.
RESOLVED_AFTER_CANCEL_PATCH = "resolved-after-cancel"

#: The steps whose postings a manual settlement looks at.
_LEDGER_STEPS = ["debit", "credit", "reverse_debit", "reverse_credit"]


BankName = Annotated[str, BeforeValidator(banks.validate_bank_name)]


class TransferRequest(BaseModel):
    """What a client asks for. The amount may be a decimal string ("150.00")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_account: AccountId
    destination_account: AccountId
    amount: Amount
    #: If the transfer has not completed this many seconds after it started,
    #: it stops and compensates.
    deadline_seconds: int = Field(default=DEFAULT_DEADLINE_SECONDS, ge=1, le=MAX_DEADLINE_SECONDS)
    #: With several banks: the bank of each account (named by its account
    #: number, see `workflows.banks`); each step runs on its bank's task
    #: queue. Without: every step runs on the workflow's own task queue.
    source_bank: BankName | None = None
    destination_bank: BankName | None = None

    @model_validator(mode="after")
    def _distinct_accounts(self) -> TransferRequest:
        if self.source_account == self.destination_account:
            raise SameAccount(self.source_account)
        if (self.source_bank is None) != (self.destination_bank is None):
            raise ValueError("source_bank and destination_bank go together: give both or neither")
        for account, bank in [
            (self.source_account, self.source_bank),
            (self.destination_account, self.destination_bank),
        ]:
            if bank is not None and banks.bank_code(account) != bank:
                raise ValueError(f"Account {account} is not at bank {bank}")
        return self

    @property
    def routed(self) -> bool:
        """Whether the steps run at the accounts' banks (several banks)."""
        return self.source_bank is not None

    @property
    def cross_bank(self) -> bool:
        """Whether the money leaves one bank for another."""
        return self.routed and self.source_bank != self.destination_bank


class TransferStatus(StrEnum):
    """Where a transfer stands."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    CANCELLED = "cancelled"  # cancelled by a client, compensations done
    NEEDS_ATTENTION = "needs_attention"  # a compensation failed for good: waits for an operator
    RESOLVED = "resolved"  # an operator settled it by hand


#: The statuses a transfer never leaves.
FINAL_STATUSES = frozenset(
    {
        TransferStatus.COMPLETED,
        TransferStatus.COMPENSATED,
        TransferStatus.CANCELLED,
        TransferStatus.RESOLVED,
    }
)


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
    """One forward step, compensation or operator settlement of a transfer."""

    name: str
    kind: Literal["forward", "compensation", "operator"]
    status: StepStatus = StepStatus.PENDING
    result: Receipt | None = None
    error: StepError | None = None
    attempts: int = 0


class RetryRequest(BaseModel):
    """The `retry` update: run the pending compensations again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    note: Note | None = None
    #: Who acts; recorded in each bank's operator log (optional only so that
    #: updates sent before it existed still validate).
    operator: Operator | None = None


class ResolveRequest(BaseModel):
    """The `resolve` update: an operator settled the transfer by hand.

    What the transfer left in clearing moves to `settle_to` (EXTERNAL when
    the money left the ledger by hand, such as a cheque) under the key
    ``<transfer id>/settle_manually``, with the note as its memo.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    note: Note
    settle_to: AccountId = EXTERNAL_ACCOUNT
    #: Who acts; recorded in each bank's operator log (optional only so that
    #: updates sent before it existed still validate).
    operator: Operator | None = None


class OperatorAction(BaseModel):
    """One operator action on a parked transfer, and how it went."""

    action: Literal["retry", "resolve"]
    note: str | None
    outcome: str
    #: Who acted, as the ledger's operator log names them.
    operator: str | None = None


class TransferState(BaseModel):
    """The `state` query: the transfer and every step, at this moment."""

    transfer_id: str
    request: TransferRequest
    status: TransferStatus
    steps: list[StepState]
    error: StepError | None = None
    compensation_errors: list[StepError] = []
    pending_compensations: list[str] = []
    operator_actions: list[OperatorAction] = []
    #: A resolve failed part-way: its settlement may have posted at a bank,
    #: so only `resolve` (idempotent) may finish the transfer, never `retry`.
    settlement_begun: bool = False

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
_DEADLINE = "DeadlineExceeded"


class _DeadlineExceeded(Exception):
    """The deadline passed between two forward steps."""


class _TransferMetrics:
    """The transfer's own metrics, on the SDK's meter (not recorded during replay)."""

    def __init__(self) -> None:
        meter = workflow.metric_meter()
        # Entering `running` is a transfer starting; the rest are outcomes.
        names = {TransferStatus.RUNNING: "started"} | {
            status: status.value
            for status in (
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
            "transfer_amount_moved", "Money moved by completed transfers", "cents"
        )
        self._compensating_since: datetime | None = None

    def record(self, status: TransferStatus, request: TransferRequest) -> None:
        now = workflow.now()
        if status in self._counters:
            self._counters[status].add(1)
        if status == TransferStatus.COMPENSATING and self._compensating_since is None:
            self._compensating_since = now
        if status in FINAL_STATUSES:
            self._duration.record(now - workflow.info().start_time)
            if self._compensating_since is not None:
                self._compensation_duration.record(now - self._compensating_since)
        if status == TransferStatus.COMPLETED:
            self._amount_moved.add(int(request.amount * 100))


@dataclass
class _PendingAction:
    """An operator's update, handed from its handler to the main loop."""

    action: Literal["retry", "resolve"]
    request: RetryRequest | ResolveRequest
    #: The update's id: with the workflow id, the key of its operator log entry.
    update_id: str
    done: bool = False

    @property
    def operator(self) -> str:
        """Who acts, or `UNKNOWN_OPERATOR` if the request did not say."""
        return self.request.operator or UNKNOWN_OPERATOR


@workflow.defn(name=WORKFLOW_NAME, failure_exception_types=[ValidationError])
class TransferWorkflow:
    """Debit, then credit; on failure, deadline or cancellation, undo in reverse order.

    Input that fails validation (from a hand-written JSON start, say) fails
    the workflow with a `ValidationError` before any step is scheduled.
    """

    #: Run the ledger steps as local activities (`LowLatencyTransferWorkflow`).
    _local_steps = False

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
        self._saga = Saga(continue_on_failure=False, catch=(ActivityError,))
        self._action: _PendingAction | None = None
        self._metrics = _TransferMetrics()
        #: Forward steps whose compensation has nothing to undo, and why: no
        #: worker ever started them (NeverStarted), or their key holds another
        #: transfer's posting, this id having been used before (ForeignPostings).
        self._nothing_to_undo: dict[str, StepError] = {}

    def _set_status(self, status: TransferStatus) -> None:
        """Change status everywhere it shows: state, search attribute, details, metrics.

        A client of ours starts the transfer with all four search attributes
        and ``running``, so a completed transfer upserts once, at the end. A
        transfer started without them (from the plain `temporal` CLI, say)
        sets them all when it starts running.
        """
        self._state.status = status
        if status != TransferStatus.RUNNING:
            workflow.upsert_search_attributes([visibility.TRANSFER_STATUS.value_set(status.value)])
        elif workflow.info().typed_search_attributes.get(visibility.TRANSFER_STATUS) is None:
            workflow.upsert_search_attributes(
                visibility.search_attribute_updates(self._state.request, status)
            )
        self._metrics.record(status, self._state.request)
        self._refresh_details()

    def _refresh_details(self) -> None:
        workflow.set_current_details(visibility.current_details(self._state))

    @workflow.query(name="state")
    def state(self) -> TransferState:
        """The transfer's status and every step's status, result, error and attempts."""
        return self._state

    @workflow.update(name="retry")
    async def retry(self, request: RetryRequest) -> TransferState:
        """Run the pending compensations again (after an account was unfrozen, say)."""
        return await self._operator(_PendingAction("retry", request, _update_id()))

    @retry.validator
    def _validate_retry(self, request: RetryRequest) -> None:
        self._require_attention("retry")

    @workflow.update(name="resolve")
    async def resolve(self, request: ResolveRequest) -> TransferState:
        """Settle a parked transfer by hand: move its clearing money and record why."""
        return await self._operator(_PendingAction("resolve", request, _update_id()))

    @resolve.validator
    def _validate_resolve(self, request: ResolveRequest) -> None:
        self._require_attention("resolve")
        if self._state.request.cross_bank and request.settle_to != EXTERNAL_ACCOUNT:
            raise ApplicationError(
                "A cross-bank transfer is settled at each bank into its EXTERNAL account; "
                "leave settle_to at its default",
                type="InvalidSettlement",
                non_retryable=True,
            )

    @workflow.run
    async def run(self, request: TransferRequest) -> TransferResult:
        """Move `request.amount` from source to destination, exactly once or not at all."""
        # The deadline bounds each forward step's schedule-to-close timeout
        # rather than running a timer: no extra events on the happy path.
        self._deadline = workflow.now() + timedelta(seconds=request.deadline_seconds)
        self._set_status(TransferStatus.RUNNING)
        try:
            debit, credit = await self._forward_steps(request)
        except (ActivityError, asyncio.CancelledError, _DeadlineExceeded) as err:
            reason = self._stop_reason(err)
            # The step the deadline interrupted failed for that reason.
            for step in self._state.steps:
                if step.status == StepStatus.FAILED and reason.type == _DEADLINE:
                    step.error = reason
            await self._unwind(reason)
            if reason is _CANCELLED and (
                self._state.status == TransferStatus.CANCELLED
                or not workflow.patched(RESOLVED_AFTER_CANCEL_PATCH)
            ):
                # Re-raising a cancellation ends the workflow as cancelled.
                raise asyncio.CancelledError() from err
            # Compensated, or resolved by an operator (even after a cancel:
            # the balances are not as they were, so it must not read cancelled).
            raise self._final_failure(reason) from err

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

    def _stop_reason(self, err: BaseException) -> StepError:
        """Why the forward steps stopped: a step's failure, the deadline, or a cancel."""
        deadline = StepError(
            type=_DEADLINE,
            message=f"Transfer did not complete within {self._state.request.deadline_seconds}s",
        )
        if isinstance(err, _DeadlineExceeded):
            return deadline
        if isinstance(err, ActivityError) and not is_cancelled_exception(err):
            if isinstance(err.cause, ActivityTimeoutError) and workflow.now() >= self._deadline:
                return deadline
            return _describe(err)
        return _CANCELLED

    async def _forward_steps(self, request: TransferRequest) -> tuple[StepResult, StepResult]:
        """Debit, then credit, each compensation registered before its step runs."""
        transfer = f"{request.source_account} -> {request.destination_account} {request.amount:.2f}"
        source = StepInput(
            account_id=request.source_account, amount=request.amount, transfer=transfer
        )
        destination = StepInput(
            account_id=request.destination_account, amount=request.amount, transfer=transfer
        )
        at_source, at_destination = request.source_bank, request.destination_bank
        self._saga.add_compensation(
            "reverse_debit",
            lambda: self._compensate("debit", LedgerActivities.reverse_debit, source, at_source),
        )
        debit = await self._forward("debit", LedgerActivities.debit, source, at_source)
        self._saga.add_compensation(
            "reverse_credit",
            lambda: self._compensate(
                "credit", LedgerActivities.reverse_credit, destination, at_destination
            ),
        )
        credit = await self._forward("credit", LedgerActivities.credit, destination, at_destination)
        return debit, credit

    # -- steps ------------------------------------------------------------------

    async def _forward(
        self, name: str, activity: Any, step: StepInput, bank: str | None = None
    ) -> StepResult:
        left = self._deadline - workflow.now()
        if left <= timedelta(0):
            raise _DeadlineExceeded()
        result: StepResult = await self._run_step(
            self._state.step(name), activity, step, FORWARD.within(left), bank
        )
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
            self._refresh_details()
            return
        result: StepResult = await self._run_step(state, activity, step, COMPENSATION, bank)
        if result.receipt.kind != PostingKind.VOID:
            # A void means the step never applied: it stays failed (or
            # skipped). A real reversal means it had applied: now undone.
            self._state.step(undoes).status = StepStatus.COMPENSATED

    async def _run_step(
        self,
        state: StepState,
        activity: Any,
        arg: BaseModel,
        options: StepOptions,
        bank: str | None = None,
    ) -> Any:
        """Run one activity and keep its step state current: running, then done or failed."""
        state.status = StepStatus.RUNNING
        state.error = None
        self._refresh_details()
        if isinstance(arg, StepInput):
            summary = visibility.step_summary(state.name, arg.account_id, arg.amount)
        else:
            summary = state.name
        try:
            result = await self._execute(state.name, activity, arg, options, summary, bank)
        # No `finally` here: when a worker evicts a workflow it closes this
        # coroutine (GeneratorExit), and workflow calls are not allowed then.
        except ActivityError as err:
            _record_failure(state, err)
            if state.kind == "forward" and not self._local_steps and _never_started(err):
                # No worker ever took the step, and the server hands out no
                # task after its timeout: it cannot apply late, so there is
                # nothing to void. (A bank whose worker is down need not come
                # back first.)
                self._nothing_to_undo[state.name] = StepError(
                    type="NeverStarted",
                    message=f"No worker ever started the {state.name}: nothing to undo",
                )
            elif (
                state.kind == "forward"
                and state.error is not None
                and state.error.type == "IdempotencyConflict"
                and workflow.patched(FOREIGN_KEYS_PATCH)
            ):
                # A second run under a closed transfer's id, for another
                # transfer: reversing that key would undo the first transfer.
                self._nothing_to_undo[state.name] = StepError(
                    type="ForeignPostings",
                    message=f"The {state.name} key holds an earlier transfer's posting under "
                    "this id: nothing of this run's to undo",
                )
            self._refresh_details()
            raise
        except asyncio.CancelledError:
            state.status = StepStatus.FAILED
            state.error = _CANCELLED
            self._refresh_details()
            raise
        state.status = StepStatus.COMPLETED
        state.result = result.receipt
        state.attempts = result.attempt
        self._refresh_details()
        return result

    async def _execute(
        self,
        name: str,
        activity: Any,
        arg: BaseModel,
        options: StepOptions,
        summary: str,
        bank: str | None,
    ) -> Any:
        """One activity: on its bank's task queue, or as a local activity (low-latency mode)."""
        timeouts: dict[str, Any] = {
            "start_to_close_timeout": options.start_to_close,
            "schedule_to_close_timeout": options.schedule_to_close,
            "retry_policy": options.retry,
            "summary": summary,
        }
        if not self._local_steps:
            if bank is not None:
                timeouts["task_queue"] = banks.bank_task_queue(bank, workflow.info().task_queue)
            return await workflow.execute_activity(activity, arg, **timeouts)
        try:
            return await workflow.execute_local_activity(activity, arg, **timeouts)
        except ActivityError:
            raise
        except FailureError as err:
            # A local activity's failure arrives bare (the application error
            # or timeout itself); wrap it as a remote activity's failure is,
            # so the saga handles both alike.
            raise ActivityError(
                "Local activity failed",
                scheduled_event_id=0,
                started_event_id=0,
                identity="",
                activity_type=name,
                activity_id="",
                retry_state=None,
            ) from err

    # -- compensation and operators -------------------------------------------

    async def _unwind(self, reason: StepError) -> None:
        """Run the compensations to the end, shielded from cancellation.

        A compensation that fails for good parks the transfer in
        ``needs_attention`` until an operator retries or resolves it.
        """
        self._state.error = reason
        self._set_status(TransferStatus.COMPENSATING)
        for step in self._state.steps:
            if step.status == StepStatus.PENDING:
                step.status = StepStatus.SKIPPED
        workflow.logger.info("Compensating: %s", reason.message)
        await self._shielded(self._compensate_until_settled)
        if self._state.status == TransferStatus.COMPENSATING:
            cancelled = reason is _CANCELLED
            self._set_status(TransferStatus.CANCELLED if cancelled else TransferStatus.COMPENSATED)
        # Let update callers receive their answers before the workflow closes.
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _compensate_until_settled(self) -> None:
        failure = await self._try_compensate()
        while failure is not None:
            self._park(failure)
            action = await self._next_recorded_action()
            if action.action == "retry":
                self._set_status(TransferStatus.COMPENSATING)
                failure = await self._try_compensate()
                outcome = "compensations completed" if failure is None else _failures(failure)
                self._log_action(action, outcome)
            else:
                assert isinstance(action.request, ResolveRequest)
                if await self._settle(action.request):
                    self._log_action(action, "settled by hand")
                    self._state.pending_compensations = []
                    self._set_status(TransferStatus.RESOLVED)
                    failure = None
                else:
                    self._log_action(action, f"settlement failed: {self._state.steps[-1].error}")
                    if workflow.patched(SETTLEMENT_BEGUN_PATCH):
                        # A compensation now would refund money the settlement
                        # may already have paid out of clearing.
                        self._state.settlement_begun = True
            action.done = True

    async def _try_compensate(self) -> CompensationError | None:
        try:
            await self._saga.compensate()
        except CompensationError as err:
            return err
        self._state.compensation_errors = []
        self._state.pending_compensations = []
        return None

    def _park(self, failure: CompensationError) -> None:
        self._state.compensation_errors = [_error_of(f.error) for f in failure.failures]
        # Once a settlement by hand has begun, no compensation will run again.
        self._state.pending_compensations = [] if self._state.settlement_begun else failure.pending
        self._set_status(TransferStatus.NEEDS_ATTENTION)
        workflow.logger.warning(
            "Transfer needs attention: %s; pending %s", _failures(failure), failure.pending
        )

    async def _settle(self, request: ResolveRequest) -> bool:
        """Move what the transfer left in clearing at each of its banks to `settle_to`."""
        transfer = self._state.request
        at = [transfer.source_bank]
        if transfer.cross_bank:
            at.append(transfer.destination_bank)
        for bank in at:
            name = f"settle_manually at {bank}" if transfer.cross_bank else "settle_manually"
            state = StepState(name=name, kind="operator")
            self._state.steps.append(state)
            try:
                result: SettleResult = await self._run_step(
                    state,
                    LedgerActivities.settle_manually,
                    SettleInput(
                        source_steps=_LEDGER_STEPS, to_account=request.settle_to, note=request.note
                    ),
                    SETTLEMENT,
                    bank,
                )
            except ActivityError:
                return False
            if result.receipt is None:
                state.error = StepError(type="NothingToSettle", message="Clearing held nothing")
        return True

    async def _next_recorded_action(self) -> _PendingAction:
        """The next operator action, once the ledger has recorded who acts and why.

        An action the ledger could not record is not carried out: it is
        logged as such and the transfer stays parked for the next one.
        """
        while True:
            action = await self._next_action()
            failure = await self._record(action)
            if failure is None:
                return action
            self._log_action(action, f"not carried out: {failure}")
            action.done = True

    async def _record(self, action: _PendingAction) -> str | None:
        """Record the action in the operator log of each bank it touches; why not, if not.

        The source bank's ledger, and the destination's too if the transfer
        crosses banks; each bank's entry has the same key,
        ``<transfer id>/operator/<update id>``, so a retried attempt writes
        nothing twice.
        """
        if not workflow.patched(OPERATOR_LOG_PATCH):
            return None  # a transfer that acted before the operator log existed
        transfer = self._state.request
        at = [transfer.source_bank]
        if transfer.cross_bank:
            at.append(transfer.destination_bank)
        entry = OperatorActionInput(
            update_id=action.update_id,
            action=action.action,
            operator=action.operator,
            note=action.request.note,
        )
        for bank in at:
            try:
                await self._execute(
                    "record_operator_action",
                    LedgerActivities.record_operator_action,
                    entry,
                    OPERATOR_RECORD,
                    f"record {action.action}",
                    bank,
                )
            except ActivityError as err:
                where = f" at {bank}" if transfer.cross_bank else ""
                return f"recording it in the ledger{where} failed: {_describe(err).message}"
        return None

    async def _next_action(self) -> _PendingAction:
        await workflow.wait_condition(lambda: self._action is not None)
        action, self._action = self._action, None
        assert action is not None
        return action

    async def _operator(self, action: _PendingAction) -> TransferState:
        # One action at a time; the status may have moved on while waiting.
        await workflow.wait_condition(lambda: self._action is None)
        self._require_attention(action.action)
        self._action = action
        await workflow.wait_condition(lambda: action.done or self._state.status in FINAL_STATUSES)
        if not action.done:
            # Another action settled the transfer first.
            if self._action is action:
                self._action = None
            self._require_attention(action.action)
        return self._state

    def _require_attention(self, action: str) -> None:
        if self._state.status != TransferStatus.NEEDS_ATTENTION:
            raise ApplicationError(
                f"Transfer {self._state.transfer_id} is {self._state.status}; "
                f"{action} is only for a transfer in needs_attention",
                type="NotNeedsAttention",
                non_retryable=True,
            )
        if action == "retry" and self._state.settlement_begun:
            raise ApplicationError(
                f"Transfer {self._state.transfer_id} is being settled by hand (a resolve failed "
                "part-way and may have posted): finish it with resolve, which posts nothing "
                "twice; retry would refund money the settlement paid out",
                type="SettlementBegun",
                non_retryable=True,
            )

    def _log_action(self, action: _PendingAction, outcome: str) -> None:
        self._state.operator_actions.append(
            OperatorAction(
                action=action.action,
                note=action.request.note,
                outcome=outcome,
                operator=action.operator,
            )
        )
        workflow.logger.info("Operator %s by %s: %s", action.action, action.operator, outcome)

    def _final_failure(self, reason: StepError) -> ApplicationError:
        """The workflow's failure: the business reason, with the final status as detail."""
        message = reason.message
        if self._state.status == TransferStatus.RESOLVED:
            message += "; resolved by an operator"
        return ApplicationError(
            message, self._state.status.value, type=reason.type, non_retryable=True
        )

    async def _shielded(self, compensations: Callable[[], Awaitable[None]]) -> None:
        """Run compensations to the end even if a cancellation arrives meanwhile."""
        task = asyncio.ensure_future(compensations())
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done():
                    break
                workflow.logger.info("Cancellation requested while compensating: finishing first")
        task.result()


@workflow.defn(name=LOW_LATENCY_WORKFLOW_NAME, failure_exception_types=[ValidationError])
class LowLatencyTransferWorkflow(TransferWorkflow):
    """The same saga with its ledger steps as local activities (README: low-latency mode).

    The worker that runs the workflow task runs each step in the same task,
    so a transfer needs one workflow task instead of three and records each
    step as a marker. The price: steps and workflows must share a worker; a
    step that runs long holds the workflow task (heartbeated by the SDK);
    retries past `local_retry_threshold` wait on timers; and a worker crash
    mid-task re-runs the steps of that task (the ledger's idempotency keys make
    that safe, as for any retry).
    """

    _local_steps = True

    @workflow.init
    def __init__(self, request: TransferRequest) -> None:
        super().__init__(request)

    @workflow.run
    async def run(self, request: TransferRequest) -> TransferResult:
        """The same saga as `TransferWorkflow.run`, on one bank's worker only."""
        if request.routed:
            # Local activities run on the workflow's worker, never on a bank's.
            raise ApplicationError(
                "Low-latency mode runs the steps on the workflow's own worker: "
                "it cannot route them to banks",
                type="ValidationError",
                non_retryable=True,
            )
        return await super().run(request)


def _describe(err: ActivityError) -> StepError:
    """The business reason behind an activity failure."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return StepError(type=cause.type or "ApplicationError", message=cause.message)
    if isinstance(cause, CancelledError):
        return _CANCELLED
    if isinstance(cause, ActivityTimeoutError):
        return StepError(
            type="StepTimedOut",
            message=f"Step timed out ({cause.type.name if cause.type else 'unknown'})",
        )
    return _plain(cause or err)


def _update_id() -> str:
    """The id of the update whose handler is running."""
    info = workflow.current_update_info()
    assert info is not None, "only called from an update handler"
    return info.id


def _plain(err: BaseException) -> StepError:
    return StepError(type=type(err).__name__, message=str(err))


def _error_of(err: BaseException) -> StepError:
    return _describe(err) if isinstance(err, ActivityError) else _plain(err)


def _failures(failure: CompensationError) -> str:
    return "; ".join(f"{f.name}: {_error_of(f.error).message}" for f in failure.failures)


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


def _record_failure(state: StepState, err: ActivityError) -> None:
    state.status = StepStatus.FAILED
    state.error = _describe(err)
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], int):
        state.attempts = cause.details[0]
