"""What an operator can do with a parked transfer: retry or resolve, one at a time, on the record.

A transfer whose compensation failed for good parks in ``needs_attention``.
An operator then sends the `retry` update (run the pending compensations
again, after unfreezing an account, say) or `resolve` (the money was settled
by hand: move what the transfer left in clearing to ``settle_to``). The
update handler hands the action to the transfer's main loop through the
`OperatorDesk` and waits until the loop has carried it out; before carrying
it out, the loop records who acts and why in each touched bank's operator
log (`OperatorDesk.next_recorded`). Every action and its outcome is also
kept in the transfer's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import LedgerActivities
    from activities.ledger_activities import OperatorActionInput
    from ledger import EXTERNAL_ACCOUNT
    from workflows import patches
    from workflows.contract import (
        FINAL_STATUSES,
        OperatorAction,
        ResolveRequest,
        RetryRequest,
        TransferState,
        TransferStatus,
    )
    from workflows.retries import RETRY_ATTEMPT, AutomaticRetries
    from workflows.saga import CompensationError, Saga
    from workflows.settlement import banks_touched, settle
    from workflows.steps import (
        COMPENSATION,
        OPERATOR_RECORD,
        StepFailed,
        StepTracker,
        describe_failure,
    )

#: Who the operator log names when a request did not say (one sent before
#: requests carried the operator, say).
UNKNOWN_OPERATOR = "unknown (not given)"


@dataclass
class PendingAction:
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


def current_update_id() -> str:
    """The id of the update whose handler is running."""
    info = workflow.current_update_info()
    assert info is not None, "only called from an update handler"
    return info.id


class OperatorDesk:
    """The mailbox between the update handlers and the main loop, and the operator log."""

    def __init__(
        self,
        state: TransferState,
        saga: Saga,
        steps: StepTracker,
        set_status: Callable[[TransferStatus], None],
    ) -> None:
        self._state = state
        self._saga = saga
        self._steps = steps
        self._set_status = set_status
        self._action: PendingAction | None = None
        #: Set when the transfer first parks (unless it parked before
        #: automatic retries existed: `patches.COMPENSATION_RETRIES`).
        self._retries: AutomaticRetries | None = None
        self._parked = False

    # -- the update handlers' side ------------------------------------------------

    async def submit(self, action: PendingAction) -> TransferState:
        """Hand `action` to the main loop; return the state once it was carried out."""
        # One action at a time; the status may have moved on while waiting.
        await workflow.wait_condition(lambda: self._action is None)
        self.require_attention(action.action)
        self._action = action
        await workflow.wait_condition(lambda: action.done or self._state.status in FINAL_STATUSES)
        if not action.done:
            # Another action settled the transfer first.
            if self._action is action:
                self._action = None
            self.require_attention(action.action)
        return self._state

    def require_attention(self, action: str) -> None:
        """Refuse `action` unless the transfer is parked and the action may still help."""
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

    def validate_resolve(self, request: ResolveRequest) -> None:
        """Refuse a resolve that cannot apply (see `require_attention`, and cross-bank rules)."""
        self.require_attention("resolve")
        if self._state.request.cross_bank and request.settle_to != EXTERNAL_ACCOUNT:
            raise ApplicationError(
                "A cross-bank transfer is settled at each bank into its EXTERNAL account; "
                "leave settle_to at its default",
                type="InvalidSettlement",
                non_retryable=True,
            )

    # -- the main loop's side -----------------------------------------------------

    async def compensate_until_settled(self) -> None:
        """Run the owed compensations; if one fails for good, park until settled.

        Parked, the transfer waits for the next recorded operator action:
        `retry` runs the owed compensations again, `resolve` settles by hand.
        Meanwhile it retries them by itself now and then (`workflows.retries`).
        """
        failure = await self._try_compensate()
        while failure is not None:
            self._park(failure)
            action = await self.next_recorded()
            while action is None:  # an automatic retry is due; still parked
                failure = await self._retry_automatically()
                if failure is None:
                    return
                action = await self.next_recorded()
            if action.action == "retry":
                self._set_status(TransferStatus.COMPENSATING)
                failure = await self._try_compensate()
                outcome = (
                    "compensations completed" if failure is None else describe_failures(failure)
                )
                self.log(action, outcome)
            else:
                assert isinstance(action.request, ResolveRequest)
                if await settle(self._state, action.request, self._steps.run):
                    self.log(action, "settled by hand")
                    self._state.pending_compensations = []
                    self._set_status(TransferStatus.RESOLVED)
                    failure = None
                else:
                    self.log(action, f"settlement failed: {self._state.steps[-1].error}")
                    if workflow.patched(patches.SETTLEMENT_BEGUN):
                        # A compensation now would refund money the settlement
                        # may already have paid out of clearing.
                        self._state.settlement_begun = True
            action.done = True

    async def _retry_automatically(self) -> CompensationError | None:
        """One automatic retry of the pending compensations, each a short activity."""
        assert self._retries is not None
        self._retries.attempting()
        self._steps.compensation = RETRY_ATTEMPT
        try:
            failure = await self._try_compensate()
        finally:
            self._steps.compensation = COMPENSATION
        if failure is None:
            self._state.next_retry_at = None
            workflow.logger.info(
                "Automatic retry %d: compensations completed", self._state.automatic_retries
            )
            return None
        self._show(failure)
        self._retries.failed()
        self._steps.refresh_details()
        return failure

    async def _try_compensate(self) -> CompensationError | None:
        try:
            await self._saga.compensate()
        except CompensationError as err:
            return err
        self._state.compensation_errors = []
        self._state.pending_compensations = []
        return None

    def _park(self, failure: CompensationError) -> None:
        self._show(failure)
        first = not self._parked
        self._parked = True
        if first and workflow.patched(patches.COMPENSATION_RETRIES):
            self._retries = AutomaticRetries(self._state)
            self._retries.begin()
        self._set_status(TransferStatus.NEEDS_ATTENTION)
        workflow.logger.warning(
            "Transfer needs attention: %s; pending %s", describe_failures(failure), failure.pending
        )

    def _show(self, failure: CompensationError) -> None:
        """Keep why the compensations failed, and which are still owed, in the state."""
        self._state.compensation_errors = [describe_failure(f.error) for f in failure.failures]
        # Once a settlement by hand has begun, no compensation will run again.
        self._state.pending_compensations = [] if self._state.settlement_begun else failure.pending

    async def next_recorded(self) -> PendingAction | None:
        """The next operator action, once the ledger has recorded who acts and why.

        An action the ledger could not record is not carried out: it is
        logged as such and the transfer stays parked for the next one.
        None when an automatic retry is due first.
        """
        while True:
            wait = self._retries.wait() if self._retries is not None else None
            if wait is None:
                await workflow.wait_condition(lambda: self._action is not None)
            elif not await self._operator_within(wait):
                return None
            action, self._action = self._action, None
            assert action is not None
            failure = await self._record(action)
            if failure is None:
                return action
            self.log(action, f"not carried out: {failure}")
            action.done = True

    async def _operator_within(self, wait: timedelta) -> bool:
        """Whether an operator acts within `wait` (a durable timer)."""
        if wait <= timedelta(0):
            return self._action is not None
        assert self._retries is not None
        try:
            await workflow.wait_condition(
                lambda: self._action is not None,
                timeout=wait,
                timeout_summary=self._retries.timer_summary(),
            )
        except TimeoutError:
            return False
        return True

    def log(self, action: PendingAction, outcome: str) -> None:
        """Keep the action and its outcome in the transfer's state and the worker's log."""
        self._state.operator_actions.append(
            OperatorAction(
                action=action.action,
                note=action.request.note,
                outcome=outcome,
                operator=action.operator,
            )
        )
        workflow.logger.info("Operator %s by %s: %s", action.action, action.operator, outcome)
        self._steps.refresh_details()  # the Web UI's details list who acted, and how it went

    async def _record(self, action: PendingAction) -> str | None:
        """Record the action in the operator log of each bank it touches; why not, if not.

        The source bank's ledger, and the destination's too if the transfer
        crosses banks; each bank's entry has the same key,
        ``<transfer id>/operator/<update id>``, so a retried attempt writes
        nothing twice.
        """
        if not workflow.patched(patches.OPERATOR_LOG):
            return None  # a transfer that acted before the operator log existed
        transfer = self._state.request
        entry = OperatorActionInput(
            update_id=action.update_id,
            action=action.action,
            operator=action.operator,
            note=action.request.note,
        )
        for bank in banks_touched(self._state):
            try:
                await self._steps.runner.run(
                    "record_operator_action",
                    LedgerActivities.record_operator_action,
                    entry,
                    OPERATOR_RECORD,
                    f"record {action.action}",
                    bank,
                )
            except StepFailed as failed:
                where = f" at {bank}" if transfer.cross_bank else ""
                return f"recording it in the ledger{where} failed: {failed.error.message}"
        return None


def describe_failures(failure: CompensationError) -> str:
    """Each failed compensation and why, on one line."""
    return "; ".join(f"{f.name}: {describe_failure(f.error).message}" for f in failure.failures)
