"""Replay safety: recorded histories must replay on today's code, and a reorder must not."""

# String annotations, as in workflows/transfer.py: the SDK compares the
# @workflow.init and @workflow.run signatures of the subclass below.
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from google.protobuf import json_format
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import NondeterminismError

from activities import LedgerActivities, StepInput, StepResult
from app.encryption import ENCODING, EncryptionCodec
from ledger import LedgerStore
from tests.keys import TEST_CONVERTER, TEST_RING
from tests.support.doubles import failing_step, freezing_credit
from tests.support.transfers import new_id, park
from tests.support.workers import transfer_worker
from workflows.contract import ResolveRequest, RetryRequest, TransferRequest, TransferResult
from workflows.low_latency import LowLatencyTransferWorkflow
from workflows.patches import COMPENSATION_RETRIES
from workflows.patches import OPERATOR_LOG as OPERATOR_LOG_PATCH
from workflows.patches import SETTLEMENT_BEGUN as SETTLEMENT_BEGUN_PATCH
from workflows.transfer import TransferWorkflow

HISTORIES = Path(__file__).parents[1] / "histories"
#: The same scenarios recorded before payload encryption and the operator
#: log: plain-text payloads and no `operator-log` patch marker. They stand
#: for transfers still running when a deployment upgrades.
PLAIN = HISTORIES / "plain"
EXPECTED = {
    "completed",
    "insufficient_funds",
    "credit_failure",
    "cancelled_mid_flight",
    "needs_attention_retried",
    "needs_attention_resolved",
    "low_latency_credit_failure",
    "cross_bank_refused",
}
#: Recorded since: a transfer dated ahead (its timer), one parked whose refund
#: an automatic retry made (`patches.COMPENSATION_RETRIES`), and one refused
#: across currencies. Only today's generation has them.
RECORDED = EXPECTED | {"scheduled", "needs_attention_retried_by_itself", "currency_mismatch"}


def load(name: str, directory: Path = HISTORIES) -> WorkflowHistory:
    path = directory / f"{name}.json"
    return WorkflowHistory.from_json(name, json.loads(path.read_text()))


def test_every_recorded_scenario_is_checked_in() -> None:
    """The scenarios the replay test stands on are all there, in both generations."""
    assert RECORDED == {p.stem for p in HISTORIES.glob("*.json")}
    assert EXPECTED == {p.stem for p in PLAIN.glob("*.json")}


def _payloads(node: object) -> Iterator[Payload]:
    """Every payload of a history but those plain by design.

    Those are the search attributes (the visibility store indexes them) and
    the SDK's own marker bookkeeping: a patch marker's patch id, a local
    activity marker's sequence number, type and times (its result is ours,
    and encrypted).
    """
    if isinstance(node, dict):
        if set(node) >= {"metadata", "data"}:
            yield json_format.ParseDict(node, Payload())
        for key, value in node.items():
            if key == "searchAttributes":
                continue
            if key == "markerRecordedEventAttributes":
                details = value.get("details", {})
                value = {k: v for k, v in details.items() if k not in ("data", "patch-data")}
            yield from _payloads(value)
    elif isinstance(node, list):
        for value in node:
            yield from _payloads(value)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_histories_are_encrypted_and_hold_no_stack_trace(name: str) -> None:
    """Every payload is sealed with the test key, and none hides a recording machine's paths."""
    payloads = list(_payloads(json.loads((HISTORIES / f"{name}.json").read_text())))
    assert payloads
    codec = EncryptionCodec(TEST_RING)
    for payload in payloads:
        assert ENCODING == payload.metadata["encoding"]
        opened = codec.decrypt(payload)
        assert b"Traceback" not in opened.data
        assert b".py" not in opened.data


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_histories_recorded_before_encryption_still_replay(name: str) -> None:
    """A transfer started in plain text, before the operator log, replays on today's code."""
    replayer = Replayer(
        workflows=[TransferWorkflow, LowLatencyTransferWorkflow],
        data_converter=TEST_CONVERTER,
    )
    result = await replayer.replay_workflow(load(name, PLAIN))
    assert result.replay_failure is None


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_recorded_history_replays_deterministically(name: str) -> None:
    """Today's workflows make exactly the commands each recorded history holds.

    The replayer runs them in the SDK's sandbox, which the worker does not:
    a workflow that reached for the clock, randomness or I/O fails here.
    """
    replayer = Replayer(
        workflows=[TransferWorkflow, LowLatencyTransferWorkflow],
        data_converter=TEST_CONVERTER,
    )
    result = await replayer.replay_workflow(load(name))
    assert result.replay_failure is None


async def test_a_history_with_the_operator_log_replays(client: Client, store: LedgerStore) -> None:
    """Today's operator actions carry the patch marker and the log activity, and replay."""
    transfer_id = new_id()
    async with transfer_worker(client, store, credit=freezing_credit(store)) as tq:
        handle = await park(client, store, tq, transfer_id)
        await handle.execute_update(TransferWorkflow.retry, RetryRequest(operator="alice"))
        await handle.execute_update(TransferWorkflow.resolve, ResolveRequest(note="By hand"))
        history = await handle.fetch_history()

    events = list(history.events)
    markers = [
        e.marker_recorded_event_attributes
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert ["core_patch", "core_patch"] == [m.marker_name for m in markers]
    patched = [m.details["patch-data"].payloads[0].data for m in markers]
    # Parking records the automatic retries' marker, then the operator's action the log's.
    assert COMPENSATION_RETRIES.encode() in patched[0]
    assert OPERATOR_LOG_PATCH.encode() in patched[1]
    logged = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name
        == "record_operator_action"
    ]
    assert 2 == len(logged)
    replayer = Replayer(
        workflows=[TransferWorkflow, LowLatencyTransferWorkflow], data_converter=TEST_CONVERTER
    )
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None


async def test_a_resolve_that_failed_part_way_carries_its_patch_and_replays(
    client: Client, store: LedgerStore
) -> None:
    """A failed resolve marks the transfer (behind its patch); the history with it replays."""
    real = LedgerActivities(store)
    settle_once_down = failing_step(
        "settle_manually",
        real.settle_manually,
        ApplicationError("ledger down", type="LedgerDown", non_retryable=True),
    )
    transfer_id = new_id()
    async with transfer_worker(
        client, store, credit=freezing_credit(store), settle_manually=settle_once_down
    ) as tq:
        handle = await park(client, store, tq, transfer_id)
        failed = await handle.execute_update(TransferWorkflow.resolve, ResolveRequest(note="x"))
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(TransferWorkflow.retry, RetryRequest())
        await handle.execute_update(TransferWorkflow.resolve, ResolveRequest(note="x"))
        history = await handle.fetch_history()

    assert failed.settlement_begun
    patches = [
        e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert any(SETTLEMENT_BEGUN_PATCH.encode() in data for data in patches)
    replayer = Replayer(
        workflows=[TransferWorkflow, LowLatencyTransferWorkflow], data_converter=TEST_CONVERTER
    )
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None


@workflow.defn(name="TransferWorkflow", sandboxed=False)
class CreditFirstTransfer(TransferWorkflow):
    """A careless edit of TransferWorkflow: the credit moved before the debit, all else equal."""

    @workflow.run
    async def run(self, request: TransferRequest) -> TransferResult:
        """The same run as TransferWorkflow's."""
        return await super().run(request)

    async def _forward_steps(self, request: TransferRequest) -> tuple[StepResult, StepResult]:
        destination = StepInput(account_id=request.destination_account, amount=request.amount)
        source = StepInput(account_id=request.source_account, amount=request.amount)
        credit = await self._forward("credit", LedgerActivities.credit, destination)
        debit = await self._forward("debit", LedgerActivities.debit, source)
        return debit, credit


@pytest.mark.parametrize("name", ["completed", "credit_failure"])
async def test_a_reordered_workflow_fails_replay(name: str) -> None:
    """The check has teeth: issuing the credit first is caught as nondeterminism."""
    replayer = Replayer(workflows=[CreditFirstTransfer], data_converter=TEST_CONVERTER)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(name))


@workflow.defn(name="TransferWorkflow")
class ClockReadingTransfer(TransferWorkflow):
    """A careless edit that reads the wall clock: fine to run unsandboxed, wrong on replay."""

    @workflow.run
    async def run(self, request: TransferRequest) -> TransferResult:
        """The same run as TransferWorkflow's."""
        return await super().run(request)

    async def _forward_steps(self, request: TransferRequest) -> tuple[StepResult, StepResult]:
        workflow.logger.info("started at %s", datetime.now())  # not workflow.now()
        return await super()._forward_steps(request)


async def test_the_sandboxed_replay_catches_a_wall_clock_read() -> None:
    """The worker runs unsandboxed (docs/performance.md); the replay suite keeps the sandbox."""
    # ClockReadingTransfer lives in this module, which imports the test key and
    # so `cryptography`; its native bindings cannot be imported a second time
    # inside the sandbox, so they pass through (they are not workflow code).
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "cryptography", "app.encryption", "tests.keys"
        )
    )
    replayer = Replayer(
        workflows=[ClockReadingTransfer], data_converter=TEST_CONVERTER, workflow_runner=runner
    )
    result = await replayer.replay_workflow(load("completed"), raise_on_replay_failure=False)
    assert result.replay_failure is not None
    # The failure's message travels encrypted (Encoded failure); its type does not.
    assert "RestrictedWorkflowAccessError" in str(result.replay_failure)


def test_the_recorded_durable_waits_are_workflow_timers() -> None:
    """A dated transfer posts nothing before its timer fires; an automatic retry waits on one."""
    scheduled = [e.event_type for e in load("scheduled").events]
    assert scheduled.index(EventType.EVENT_TYPE_TIMER_FIRED) < scheduled.index(
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    retried = [e.event_type for e in load("needs_attention_retried_by_itself").events]
    fired = retried.index(EventType.EVENT_TYPE_TIMER_FIRED)
    assert EventType.EVENT_TYPE_MARKER_RECORDED in retried[:fired]  # the patch, when it parked
    # After the timer, the refund (one activity) completes and the transfer closes.
    assert 1 == retried[fired:].count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED not in retried[fired:]
