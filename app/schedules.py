"""Standing orders: a transfer repeated on a Temporal Schedule (docs/operating.md#standing-orders).

Each run is an ordinary `TransferWorkflow`, started by the schedule with the
same search attributes and summary as a transfer started by `transfer`, so
it shows in `list` and the Web UI like any other. Temporal names each run
``<order id>-<scheduled time>`` (to the second), and the ledger's keys are
``<transfer id>/<step>``: a period started twice (a backfill over a paid
period, two triggers within one second) is the same transfer id, and its
second run replays the first one's receipts instead of paying again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionResult,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleListActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from app.transfers import wait_outcome
from app.when import format_duration
from workflows import visibility
from workflows.contract import WORKFLOW_NAME, TransferRequest
from workflows.transfer import TransferWorkflow

#: Never two runs of one order at once: a period that comes while a run is
#: still going waits for it to end; while one waits, later periods are
#: skipped (and counted).
OVERLAP = ScheduleOverlapPolicy.BUFFER_ONE
#: After Temporal was unavailable, a period missed less than this long ago
#: still runs (once); older ones are counted as missed.
CATCHUP_WINDOW = timedelta(days=1)
#: The memo entry that keeps a cron expression as written (Temporal keeps it
#: only as a calendar).
_CRON_MEMO = "cron"
#: The runs `trigger` and `describe` look at: Temporal keeps the newest ten.
RECENT_RUNS = 10


class OrderExists(Exception):
    """A schedule with this id exists already."""


class OrderNotFound(Exception):
    """No standing order with this id."""


class OrderRefused(Exception):
    """Temporal refused the order's schedule (an invalid cron expression, say)."""


@dataclass(frozen=True)
class Timing:
    """When an order runs: every interval, or on a cron expression; between two instants."""

    every: timedelta | None = None
    cron: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None

    def spec(self) -> ScheduleSpec:
        """The schedule's spec; an interval starts at `start_at`, else at the Unix epoch."""
        intervals = []
        if self.every is not None:
            # Temporal counts intervals from the epoch: shift them onto start_at.
            offset = None
            if self.start_at is not None:
                offset = (self.start_at - datetime.fromtimestamp(0, self.start_at.tzinfo)) % (
                    self.every
                )
            intervals.append(ScheduleIntervalSpec(every=self.every, offset=offset or None))
        return ScheduleSpec(
            intervals=intervals,
            cron_expressions=[self.cron] if self.cron else [],
            start_at=self.start_at,
            end_at=self.end_at,
        )


@dataclass(frozen=True)
class Run:
    """One run of an order: the transfer it started and how it stands."""

    scheduled_at: datetime
    started_at: datetime
    transfer_id: str
    status: str
    error_type: str | None = None
    error_message: str | None = None
    #: A second run under a transfer id that already paid: it replayed the
    #: first run's receipts and moved no money.
    repeat: bool = False


@dataclass(frozen=True)
class Order:
    """A standing order as Temporal holds it, with its recent runs."""

    order_id: str
    request: TransferRequest
    timing: Timing
    paused: bool
    note: str | None
    next_runs: Sequence[datetime]
    runs: Sequence[Run]
    #: Runs started, periods skipped because a run was going and one waited,
    #: periods missed beyond the catch-up window, periods waiting now.
    actions: int
    skipped: int
    missed: int
    waiting: int
    running: Sequence[str]

    @property
    def every_text(self) -> str | None:
        """`--every` as `create` takes it."""
        return format_duration(self.timing.every) if self.timing.every else None


async def create_order(
    client: Client, order_id: str, request: TransferRequest, timing: Timing, *, task_queue: str
) -> None:
    """Create the order's schedule; its runs start `TransferWorkflow` on `task_queue`.

    Raises:
        OrderExists: The id is taken by another schedule.
        OrderRefused: Temporal refused the spec (its message says why).
    """
    action = ScheduleActionStartWorkflow(
        TransferWorkflow.run,
        request,
        id=order_id,
        task_queue=task_queue,
        typed_search_attributes=visibility.search_attributes(request, "running"),
        static_summary=visibility.transfer_summary(request),
    )
    schedule = Schedule(
        action=action,
        spec=timing.spec(),
        policy=SchedulePolicy(overlap=OVERLAP, catchup_window=CATCHUP_WINDOW),
    )
    try:
        await client.create_schedule(
            order_id, schedule, memo={_CRON_MEMO: timing.cron} if timing.cron else None
        )
    except ScheduleAlreadyRunningError:
        raise OrderExists(f"Standing order {order_id} already exists") from None
    except RPCError as err:
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            raise OrderRefused(f"Temporal refused the schedule: {err.message}") from err
        raise


async def order_handle(client: Client, order_id: str) -> tuple[ScheduleHandle, ScheduleDescription]:
    """The order's schedule and its description; only a schedule of transfers is an order.

    Raises:
        OrderNotFound: No schedule with this id, or one that starts something else.
    """
    handle = client.get_schedule_handle(order_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise OrderNotFound(f"No standing order with id {order_id}") from err
        raise
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or action.workflow != WORKFLOW_NAME:
        raise OrderNotFound(f"Schedule {order_id} is not a standing order (it runs no transfer)")
    return handle, description


async def describe_order(client: Client, order_id: str, *, runs: int = RECENT_RUNS) -> Order:
    """The order, with the outcome of its newest `runs` runs (at most ten).

    Raises:
        OrderNotFound: No standing order with this id.
    """
    _, description = await order_handle(client, order_id)
    return await _order(client, description, runs)


async def list_orders(client: Client) -> list[Order]:
    """Every standing order, by id, each with its last run's outcome.

    Schedules are listed from visibility, so one created a moment ago may be
    missing for a second.
    """
    ids = [
        entry.id
        async for entry in await client.list_schedules()
        if entry.schedule is not None
        and isinstance(entry.schedule.action, ScheduleListActionStartWorkflow)
        and entry.schedule.action.workflow == WORKFLOW_NAME
    ]
    orders = []
    for order_id in sorted(ids):
        try:
            orders.append(await describe_order(client, order_id, runs=1))
        except OrderNotFound:
            continue  # deleted since it was listed
    return orders


async def _order(client: Client, description: ScheduleDescription, runs: int) -> Order:
    schedule, info = description.schedule, description.info
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    [request] = await client.data_converter.decode(list(action.args), [TransferRequest])
    memo = await description.memo()
    spec = schedule.spec
    every = spec.intervals[0].every if spec.intervals else None
    cron = str(memo[_CRON_MEMO]) if _CRON_MEMO in memo else None
    recent = list(info.recent_actions)[-runs:] if runs else []
    return Order(
        order_id=description.id,
        request=request,
        timing=Timing(every=every, cron=cron, start_at=spec.start_at, end_at=spec.end_at),
        paused=schedule.state.paused,
        note=schedule.state.note,
        next_runs=info.next_action_times,
        runs=await asyncio.gather(*(_run(client, result) for result in recent)),
        actions=info.num_actions,
        skipped=info.num_actions_skipped_overlap,
        missed=info.num_actions_missed_catchup_window,
        waiting=description.raw_description.info.buffer_size,
        running=[getattr(r, "workflow_id", "") for r in info.running_actions],
    )


async def _run(client: Client, result: ScheduleActionResult) -> Run:
    """How the transfer one run started stands: its final outcome, or its status while running."""
    transfer_id = getattr(result.action, "workflow_id", "")
    run_id = getattr(result.action, "first_execution_run_id", None)
    handle = client.get_workflow_handle_for(TransferWorkflow.run, transfer_id, run_id=run_id)
    run = Run(result.scheduled_at, result.started_at, transfer_id, "running")
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return replace(run, status="unknown (no longer kept by Temporal)")
    if description.status == WorkflowExecutionStatus.RUNNING:
        status = description.typed_search_attributes.get(visibility.TRANSFER_STATUS)
        return replace(run, status=status or "running")
    outcome = await wait_outcome(handle)
    return replace(
        run,
        status=outcome.status,
        error_type=outcome.error_type,
        error_message=outcome.error_message,
        repeat=outcome.result is not None and outcome.result.debit.replayed,
    )


@dataclass(frozen=True)
class Triggered:
    """What a trigger did, as far as it was seen within the wait.

    `outcome` is ``started`` (`transfer_id` is the new run), ``waiting``
    (it runs when `transfer_id` ends), ``skipped`` (a run was going and
    another already waited) or ``recorded`` (nothing seen yet).
    """

    outcome: str
    transfer_id: str | None = None
    repeat: bool = False


async def trigger_order(client: Client, order_id: str, *, wait: float = 5.0) -> Triggered:
    """Run the order once more now, under the schedule's overlap policy; what came of it.

    Raises:
        OrderNotFound: No standing order with this id.
    """
    handle, before = await order_handle(client, order_id)
    seen = {getattr(r.action, "workflow_id", "") for r in before.info.recent_actions}
    await handle.trigger()
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        after = await handle.describe()
        info = after.info
        going = next((getattr(r, "workflow_id", None) for r in info.running_actions), None)
        if info.num_actions > before.info.num_actions:
            newest = getattr(info.recent_actions[-1].action, "workflow_id", "")
            return Triggered("started", newest, repeat=newest in seen)
        if info.num_actions_skipped_overlap > before.info.num_actions_skipped_overlap:
            return Triggered("skipped", going)
        if after.raw_description.info.buffer_size > before.raw_description.info.buffer_size:
            return Triggered("waiting", going)
        if asyncio.get_running_loop().time() > deadline:
            return Triggered("recorded", going)
        await asyncio.sleep(0.2)
