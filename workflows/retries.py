"""Compensations that keep trying by themselves, on a durable backoff of workflow timers.

A compensation that fails for good (a frozen or closed account, a ledger
down longer than a compensation's own retries) parks the transfer in
``needs_attention`` for an operator. While it waits, it also retries the
pending compensations by itself: after 1 minute, 5 minutes, 30 minutes and
2 hours, then every 6 hours, until its retry window (the request's
`compensation_retry_window_seconds`, three days by default) ends. If the
account is unfrozen on day two, the refund goes through with no operator.
After the window the transfer is *overdue*: it stays parked, only an
operator can settle it, and the ``transfer_overdue`` metric counts it.

Each wait is a workflow timer with no activity in flight, and each attempt a
short activity (`RETRY_ATTEMPT`): a worker restart loses nothing, and
Temporal's time-skipping test server can skip days of waiting in seconds
(it cannot skip while an activity is outstanding: docs/testing.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import visibility
    from workflows.contract import TransferState
    from workflows.steps import StepOptions

#: The waits before the first automatic retries; then `THEN_EVERY`.
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
)
THEN_EVERY = timedelta(hours=6)

#: One automatic retry of a compensation: a few quick attempts, then wait
#: for the next timer (an operator may be waiting behind it, too).
RETRY_ATTEMPT = StepOptions(
    start_to_close=timedelta(seconds=10),
    schedule_to_close=timedelta(minutes=1),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=3,
    ),
)


def delay_before(attempt: int) -> timedelta:
    """The wait before automatic retry number `attempt` (1 for the first)."""
    return BACKOFF[attempt - 1] if attempt <= len(BACKOFF) else THEN_EVERY


class AutomaticRetries:
    """When a parked transfer retries next, and when it becomes overdue."""

    def __init__(self, state: TransferState) -> None:
        self._state = state
        meter = workflow.metric_meter()
        self._retried = meter.create_counter(
            "transfer_automatic_retries", "Automatic retries of a parked transfer's compensations"
        )
        self._overdue = meter.create_counter(
            "transfer_overdue", "Parked transfers whose automatic retries ended: for an operator"
        )

    def begin(self) -> None:
        """The transfer has just parked for the first time: start the clock.

        Records `ParkedSince` and `RetryUntil` (search attributes, so that
        `starter.py list --overdue` finds it later) and the first retry's time.
        """
        now = workflow.now()
        window = timedelta(seconds=self._state.request.compensation_retry_window_seconds)
        self._state.parked_since = now
        self._state.retry_until = now + window
        workflow.upsert_search_attributes(
            [
                visibility.PARKED_SINCE.value_set(now),
                visibility.RETRY_UNTIL.value_set(now + window),
            ]
        )
        self._plan_next()

    def wait(self) -> timedelta | None:
        """How long to wait for an operator before acting by ourselves; None: for good."""
        if self._state.settlement_begun:
            return None  # a settlement by hand has begun: no compensation may run again
        when = self._state.next_retry_at
        if when is None:
            return None
        return max(when - workflow.now(), timedelta(0))

    def timer_summary(self) -> str:
        """What the waiting timer is for, as the Web UI shows it."""
        return f"automatic retry {self._state.automatic_retries + 1} of the compensations"

    def attempting(self) -> None:
        """An automatic retry starts now."""
        self._state.automatic_retries += 1
        self._state.next_retry_at = None
        self._retried.add(1)
        workflow.logger.info(
            "Retrying the pending compensations by itself (retry %d)",
            self._state.automatic_retries,
        )

    def failed(self) -> None:
        """The retry failed: plan the next one, or mark the transfer overdue."""
        self._plan_next()

    def _plan_next(self) -> None:
        until = self._state.retry_until
        assert until is not None, "begin() first"
        now = workflow.now()
        if now >= until:
            self._state.next_retry_at = None
            if not self._state.overdue:
                self._state.overdue = True
                self._overdue.add(1)
                workflow.logger.warning(
                    "Transfer overdue: parked since %s, no automatic retry left; "
                    "an operator must retry or resolve it",
                    _shown(self._state.parked_since),
                )
            return
        # The last retry runs when the window ends, not after it.
        self._state.next_retry_at = min(
            now + delay_before(self._state.automatic_retries + 1), until
        )


def _shown(when: datetime | None) -> str:
    return when.isoformat() if when is not None else "unknown"
