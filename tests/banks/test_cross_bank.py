"""Two banks, each with its own ledger and worker: transfers across them."""

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import LedgerActivities, StepInput, StepResult
from app.transfers import start_transfer, wait_outcome
from app.worker import running_bank_worker, running_workflow_worker
from ledger import CLEARING_ACCOUNT, LedgerStore, open_store
from ledger.audit import audit_banks
from tests.support.doubles import failing_step, freezing_credit, stalled_step
from tests.support.transfers import wait_for_status
from workflows.contract import (
    ResolveRequest,
    RetryRequest,
    StepStatus,
    TransferRequest,
    TransferStatus,
)
from workflows.transfer import TransferWorkflow

OPENING = {
    "north": {"NORTH-001": ("Alice", "1000.00"), "NORTH-002": ("Bob", "500.00")},
    "south": {"SOUTH-001": ("Carol", "300.00")},
}


@pytest.fixture
def banks(tmp_path: Path) -> Iterator[dict[str, LedgerStore]]:
    """North (Alice, Bob) and south (Carol), each in a SQLite ledger of its own."""
    stores = {}
    for bank, accounts in OPENING.items():
        store = open_store(f"sqlite:///{tmp_path / f'ledger-{bank}.db'}")
        for account_id, (owner, balance) in accounts.items():
            store.open_account(account_id, owner, Decimal(balance))
        stores[bank] = store
    yield stores
    for store in stores.values():
        store.close()


@contextlib.asynccontextmanager
async def topology(
    client: Client,
    banks: dict[str, LedgerStore],
    *,
    up: tuple[str, ...] = ("north", "south"),
    **replacements: dict[str, Any],
) -> AsyncIterator[str]:
    """A workflow worker and a worker for each bank in `up`; yields the workflow task queue.

    Keyword arguments named for a bank replace that bank's activities by name
    (``south={"credit": refusing_credit}``).
    """
    task_queue = f"banks-{uuid.uuid4()}"
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(running_workflow_worker(client, task_queue=task_queue))
        for bank in up:
            await stack.enter_async_context(
                running_bank_worker(
                    client,
                    banks[bank],
                    bank=bank,
                    workflow_task_queue=task_queue,
                    replacements=replacements.get(bank),
                )
            )
        yield task_queue


def cross(source: str, destination: str, amount: str, **extra: Any) -> TransferRequest:
    """A request routed by the banks the account numbers name."""
    return TransferRequest(
        source_account=source,
        destination_account=destination,
        amount=Decimal(amount),
        source_bank=source.split("-")[0].lower(),
        destination_bank=destination.split("-")[0].lower(),
        **extra,
    )


def postings(store: LedgerStore, transfer_id: str) -> list[tuple[str, str]]:
    return [
        (r.key.rsplit("/", 1)[1], r.kind.value)
        for r in store.receipts()
        if r.key.startswith(f"{transfer_id}/")
    ]


def balance(store: LedgerStore, account_id: str) -> Decimal:
    return store.get_account(account_id).balance


def audited(banks: dict[str, LedgerStore]) -> Any:
    report = audit_banks({bank: store.snapshot() for bank, store in banks.items()})
    assert [] == report.findings
    return report


def freezing_alice(banks: dict[str, LedgerStore]) -> Any:
    """South's real credit, but first Alice's account at north is frozen: her refund is refused."""
    return freezing_credit(banks["south"], "NORTH-001", frozen_in=banks["north"])


async def _start(client: Client, task_queue: str, request: TransferRequest) -> Any:
    handle, _ = await start_transfer(
        client, request, transfer_id=f"x-{uuid.uuid4()}", task_queue=task_queue
    )
    return handle


async def test_a_cross_bank_transfer_posts_once_at_each_bank(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """Debit at north, credit at south; each bank's clearing holds its side."""
    async with topology(client, banks) as tq:
        handle = await _start(client, tq, cross("NORTH-001", "SOUTH-001", "100"))
        assert (await wait_outcome(handle)).ok
    north, south = banks["north"], banks["south"]
    assert [("debit", "debit")] == postings(north, handle.id)
    assert [("credit", "credit")] == postings(south, handle.id)
    assert (Decimal("900.00"), Decimal("100.00")) == (
        balance(north, "NORTH-001"),
        balance(north, CLEARING_ACCOUNT),
    )
    assert (Decimal("400.00"), Decimal("-100.00")) == (
        balance(south, "SOUTH-001"),
        balance(south, CLEARING_ACCOUNT),
    )
    positions = {p.bank: p.completed_net for p in audited(banks).positions}
    assert {"north": Decimal("100.00"), "south": Decimal("-100.00")} == positions


async def test_a_transfer_within_one_bank_stays_at_that_bank(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """Alice to Bob, both at north: the same saga, on north's worker, clearing back to zero."""
    async with topology(client, banks) as tq:
        handle = await _start(client, tq, cross("NORTH-001", "NORTH-002", "40"))
        assert (await wait_outcome(handle)).ok
    north = banks["north"]
    assert [("debit", "debit"), ("credit", "credit")] == postings(north, handle.id)
    assert Decimal("0.00") == balance(north, CLEARING_ACCOUNT)
    assert [] == postings(banks["south"], handle.id)
    audited(banks)


async def test_a_credit_refused_at_the_destination_is_compensated_at_the_source(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """South has no SOUTH-404: its credit is voided there and Alice refunded at north."""
    async with topology(client, banks) as tq:
        handle = await _start(client, tq, cross("NORTH-001", "SOUTH-404", "70"))
        outcome = await wait_outcome(handle)
    assert ("compensated", "AccountNotFound") == (outcome.status, outcome.error_type)
    assert [("debit", "debit"), ("reverse_debit", "reversal")] == postings(
        banks["north"], handle.id
    )
    assert [("reverse_credit", "void")] == postings(banks["south"], handle.id)
    assert Decimal("1000.00") == balance(banks["north"], "NORTH-001")
    assert all(p.clearing == 0 for p in audited(banks).positions)


async def test_with_the_destination_bank_down_a_transfer_waits_and_completes_when_it_returns(
    dev_env: WorkflowEnvironment, banks: dict[str, LedgerStore]
) -> None:
    """South's worker is stopped: the credit waits in south's queue, not failed."""
    client = dev_env.client
    async with topology(client, banks, up=("north",)) as tq:
        handle = await _start(client, tq, cross("NORTH-001", "SOUTH-001", "25"))
        for _ in range(100):
            state = await handle.query(TransferWorkflow.state)
            if state.step("credit").status == StepStatus.RUNNING:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        state = await handle.query(TransferWorkflow.state)
        assert (TransferStatus.RUNNING, StepStatus.RUNNING) == (
            state.status,
            state.step("credit").status,
        )
        assert [] == postings(banks["south"], handle.id)
        async with running_bank_worker(
            client, banks["south"], bank="south", workflow_task_queue=tq
        ):
            assert (await wait_outcome(handle)).ok
    assert Decimal("325.00") == balance(banks["south"], "SOUTH-001")
    audited(banks)


async def test_with_the_destination_bank_down_past_the_deadline_the_source_refunds(
    dev_env: WorkflowEnvironment, banks: dict[str, LedgerStore]
) -> None:
    """No worker ever took the credit: nothing to void at south, Alice refunded at north."""
    client = dev_env.client
    async with topology(client, banks, up=("north",)) as tq:
        handle = await _start(client, tq, cross("NORTH-001", "SOUTH-001", "25", deadline_seconds=3))
        outcome = await wait_outcome(handle)
        state = await handle.query(TransferWorkflow.state)
        # South comes back: the expired credit task is never handed to it.
        async with running_bank_worker(
            client, banks["south"], bank="south", workflow_task_queue=tq
        ):
            await asyncio.sleep(2)
    assert ("compensated", "DeadlineExceeded") == (outcome.status, outcome.error_type)
    assert (StepStatus.SKIPPED, "NeverStarted") == (
        state.step("reverse_credit").status,
        state.step("reverse_credit").error.type,  # type: ignore[union-attr]
    )
    assert [("debit", "debit"), ("reverse_debit", "reversal")] == postings(
        banks["north"], handle.id
    )
    assert [] == postings(banks["south"], handle.id)
    assert Decimal("1000.00") == balance(banks["north"], "NORTH-001")
    audited(banks)


async def test_low_latency_mode_refuses_routing_before_any_posting(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """Local activities run on the workflow's worker, which holds no bank's ledger."""
    async with topology(client, banks) as tq:
        handle, _ = await start_transfer(
            client,
            cross("NORTH-001", "SOUTH-001", "5"),
            transfer_id=f"x-{uuid.uuid4()}",
            task_queue=tq,
            low_latency=True,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert "cannot route them to banks" in failure.value.cause.message
    assert [] == postings(banks["north"], handle.id)


async def test_a_parked_cross_bank_transfer_is_settled_at_each_of_its_banks(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """North's refund is refused (Alice frozen): resolve, logged at both banks, settles north."""
    async with topology(client, banks, south={"credit": freezing_alice(banks)}) as task_queue:
        handle = await _start(client, task_queue, cross("NORTH-001", "SOUTH-404", "60"))
        await wait_for_status(handle, TransferStatus.NEEDS_ATTENTION)
        assert Decimal("60.00") == balance(banks["north"], CLEARING_ACCOUNT)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                TransferWorkflow.resolve, ResolveRequest(note="x", settle_to="NORTH-002")
            )
        assert "InvalidSettlement" == refused.value.cause.type  # type: ignore[attr-defined]
        state = await handle.execute_update(
            TransferWorkflow.resolve,
            ResolveRequest(note="Paid by cheque 77", operator="dana@ops"),
            id="resolve-1",
        )
        outcome = await wait_outcome(handle)
    assert ("resolved", TransferStatus.RESOLVED) == (outcome.status, state.status)
    # Logged at both banks under one key; the refused update reached neither log.
    for store in banks.values():
        assert [
            (f"{handle.id}/operator/resolve-1", "resolve", "dana@ops", "Paid by cheque 77")
        ] == [(r.key, r.action, r.operator, r.note) for r in store.operator_actions(handle.id)]
    assert ["settle_manually at north", "settle_manually at south"] == [
        s.name for s in state.steps if s.kind == "operator"
    ]
    assert "NothingToSettle" == state.step("settle_manually at south").error.type  # type: ignore[union-attr]
    assert ("settle_manually", "manual") == postings(banks["north"], handle.id)[-1]
    assert Decimal("0.00") == balance(banks["north"], CLEARING_ACCOUNT)
    # EXTERNAL paid out the openings (-1500.00) and took the 60.00 paid by cheque.
    assert Decimal("-1440.00") == balance(banks["north"], "EXTERNAL")
    audited(banks)


async def test_a_resolve_that_failed_part_way_is_finished_by_resolve_never_by_retry(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """North settled, south's settlement failed: a retry would refund Alice a second time.

    After the failed resolve north's clearing is already paid out by cheque;
    refunding Alice from it (retry once she is unfrozen) would pay the 60.00
    twice. Retry is refused; a second resolve replays north and settles south.
    """
    real_south = LedgerActivities(banks["south"])
    # South's first settlement fails; by the second its ledger is back.
    flaky_settle = failing_step(
        "settle_manually",
        real_south.settle_manually,
        ApplicationError("south's ledger is down", type="LedgerDown", non_retryable=True),
    )
    async with topology(
        client, banks, south={"credit": freezing_alice(banks), "settle_manually": flaky_settle}
    ) as task_queue:
        handle = await _start(client, task_queue, cross("NORTH-001", "SOUTH-404", "60"))
        await wait_for_status(handle, TransferStatus.NEEDS_ATTENTION)
        first = await handle.execute_update(
            TransferWorkflow.resolve, ResolveRequest(note="Paid by cheque 77", operator="dana")
        )
        assert (TransferStatus.NEEDS_ATTENTION, True, []) == (
            first.status,
            first.settlement_begun,
            first.pending_compensations,
        )
        assert Decimal("0.00") == balance(banks["north"], CLEARING_ACCOUNT)  # north paid out
        banks["north"].unfreeze_account("NORTH-001")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(TransferWorkflow.retry, RetryRequest(operator="dana"))
        assert "SettlementBegun" == refused.value.cause.type  # type: ignore[attr-defined]
        state = await handle.execute_update(
            TransferWorkflow.resolve, ResolveRequest(note="Paid by cheque 77", operator="dana")
        )
        outcome = await wait_outcome(handle)
    assert ("resolved", TransferStatus.RESOLVED) == (outcome.status, state.status)
    assert [("debit", "debit"), ("settle_manually", "manual")] == postings(
        banks["north"], handle.id
    )
    assert Decimal("940.00") == balance(banks["north"], "NORTH-001")
    assert Decimal("0.00") == balance(banks["north"], CLEARING_ACCOUNT)
    assert Decimal("-1440.00") == balance(banks["north"], "EXTERNAL")
    audited(banks)


async def test_a_credit_that_stays_paid_is_settled_at_both_banks(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """Carol keeps a credit her frozen account cannot give back: each bank settles its side."""
    real_south = LedgerActivities(banks["south"])

    @activity.defn(name="credit")
    def credit_then_fail(step: StepInput) -> StepResult:
        real_south.credit(step)  # applied, but the worker loses the answer for good
        banks["south"].freeze_account("SOUTH-001")
        raise ApplicationError("reply lost", type="ReplyLost", non_retryable=True)

    async with topology(client, banks, south={"credit": credit_then_fail}) as task_queue:
        handle = await _start(client, task_queue, cross("NORTH-001", "SOUTH-001", "60"))
        parked = await wait_for_status(handle, TransferStatus.NEEDS_ATTENTION)
        state = await handle.execute_update(
            TransferWorkflow.resolve, ResolveRequest(note="Settled by wire 9", operator="dana")
        )
        outcome = await wait_outcome(handle)
    assert ["AccountFrozen"] == [e.type for e in parked.compensation_errors]
    assert ("resolved", TransferStatus.RESOLVED) == (outcome.status, state.status)
    # North's 60.00 went out by hand, south's clearing was refilled from outside.
    assert ("settle_manually", "manual") == postings(banks["north"], handle.id)[-1]
    assert ("settle_manually", "manual") == postings(banks["south"], handle.id)[-1]
    assert (Decimal("940.00"), Decimal("360.00")) == (
        balance(banks["north"], "NORTH-001"),
        balance(banks["south"], "SOUTH-001"),
    )
    assert (Decimal("0.00"), Decimal("0.00")) == (
        balance(banks["north"], CLEARING_ACCOUNT),
        balance(banks["south"], CLEARING_ACCOUNT),
    )
    audited(banks)


async def test_a_second_run_after_a_never_started_credit_moves_nothing(
    dev_env: WorkflowEnvironment, banks: dict[str, LedgerStore]
) -> None:
    """The skipped credit was never voided; a new run under the id still cannot pay it out.

    The first run refunded Alice without voiding the credit (no worker ever
    took it). A second run under the same id (plain Temporal allows one once
    the first closed) must not take the reversed debit for done.
    """
    client = dev_env.client
    transfer_id = f"x-{uuid.uuid4()}"
    request = cross("NORTH-001", "SOUTH-001", "25", deadline_seconds=3)
    async with topology(client, banks, up=("north",)) as tq:
        handle, _ = await start_transfer(client, request, transfer_id=transfer_id, task_queue=tq)
        first = await wait_outcome(handle)
    async with topology(client, banks) as tq:
        second = await client.start_workflow(
            TransferWorkflow.run, request, id=transfer_id, task_queue=tq
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await second.result()
    assert ("compensated", "DeadlineExceeded") == (first.status, first.error_type)
    assert "StepReversed" == failure.value.cause.type  # type: ignore[attr-defined]
    assert [("debit", "debit"), ("reverse_debit", "reversal")] == postings(
        banks["north"], transfer_id
    )
    assert [] == postings(banks["south"], transfer_id)
    assert (Decimal("1000.00"), Decimal("300.00")) == (
        balance(banks["north"], "NORTH-001"),
        balance(banks["south"], "SOUTH-001"),
    )
    audited(banks)


async def test_a_second_run_for_another_transfer_never_takes_the_first_ones_credit(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """Same id, payer at another bank: its debit is its own, the credit key is not.

    The first run paid Carol from north. A second run under the id, Dan (south)
    to Carol, debits Dan at south under a key new there, then meets the first
    run's credit under its own key: it must not take it for its own credit
    (Dan charged, nobody paid), and must refund Dan without touching Carol's.
    """
    banks["south"].open_account("SOUTH-002", "Dan", Decimal("100.00"))
    transfer_id = f"x-{uuid.uuid4()}"
    async with topology(client, banks) as tq:
        first, _ = await start_transfer(
            client, cross("NORTH-001", "SOUTH-001", "25"), transfer_id=transfer_id, task_queue=tq
        )
        await first.result()
        second = await client.start_workflow(
            TransferWorkflow.run,
            cross("SOUTH-002", "SOUTH-001", "25"),
            id=transfer_id,
            task_queue=tq,
        )
        outcome = await wait_outcome(second)
        state = await second.query(TransferWorkflow.state)
    assert ("compensated", "IdempotencyConflict") == (outcome.status, outcome.error_type)
    assert (StepStatus.SKIPPED, "ForeignPostings") == (
        state.step("reverse_credit").status,
        state.step("reverse_credit").error.type,  # type: ignore[union-attr]
    )
    assert [("credit", "credit"), ("debit", "debit"), ("reverse_debit", "reversal")] == sorted(
        postings(banks["south"], transfer_id)
    )
    assert (Decimal("100.00"), Decimal("325.00"), Decimal("975.00")) == (
        balance(banks["south"], "SOUTH-002"),
        balance(banks["south"], "SOUTH-001"),
        balance(banks["north"], "NORTH-001"),
    )
    # Each ledger balances; the audit, which groups postings by transfer id,
    # sees two transfers under one id here and says so (that is the anomaly).
    for store in banks.values():
        assert Decimal("0.00") == sum(a.balance for a in store.list_accounts())


async def test_on_a_real_server_a_step_that_started_is_voided_not_skipped(
    dev_env: WorkflowEnvironment, banks: dict[str, LedgerStore]
) -> None:
    """A debit stalled past the deadline had started: its void still runs, the late one is refused.

    The check behind skipping a never-started step's compensation must not
    mistake a started, stalled attempt for one that never ran.
    """
    client = dev_env.client
    real = LedgerActivities(banks["north"])
    release = threading.Event()
    late: list[BaseException | StepResult] = []
    stalled_debit = stalled_step("debit", real.debit, release, late, up_to=30)
    async with topology(client, banks, north={"debit": stalled_debit}) as task_queue:
        handle = await _start(
            client, task_queue, cross("NORTH-001", "SOUTH-001", "45", deadline_seconds=2)
        )
        outcome = await wait_outcome(handle)
        state = await handle.query(TransferWorkflow.state)
        release.set()
        for _ in range(100):
            if late:
                break
            await asyncio.sleep(0.1)
    assert ("compensated", "DeadlineExceeded") == (outcome.status, outcome.error_type)
    assert StepStatus.COMPLETED == state.step("reverse_debit").status
    assert [("reverse_debit", "void")] == postings(banks["north"], handle.id)
    assert ["StepVoided"] == [err.type for err in late]  # type: ignore[attr-defined]
    assert Decimal("1000.00") == balance(banks["north"], "NORTH-001")
    audited(banks)


async def test_a_cross_bank_transfer_in_pounds_settles_positions_in_pounds(
    client: Client, banks: dict[str, LedgerStore]
) -> None:
    """GBP from north to south: each bank's GBP clearing moves, the dollar positions stay 0."""
    banks["north"].open_account("NORTH-GBP", "Gwen", Decimal("80.00"), currency="GBP")
    banks["south"].open_account("SOUTH-GBP", "Harry", currency="GBP")
    async with topology(client, banks) as tq:
        handle = await _start(client, tq, cross("NORTH-GBP", "SOUTH-GBP", "25.50", currency="GBP"))
        outcome = await wait_outcome(handle)
        # Dollars into a pound account at the other bank: refused at the credit
        # (the debit's ledger cannot see the destination), refunded in dollars.
        refused = await _start(client, tq, cross("NORTH-001", "SOUTH-GBP", "5"))
        mismatch = await wait_outcome(refused)
    assert outcome.ok
    assert outcome.result is not None
    assert ("GBP", "GBP") == (outcome.result.debit.currency, outcome.result.credit.currency)
    assert ("compensated", "CurrencyMismatch") == (mismatch.status, mismatch.error_type)
    # The gap docs/ledger.md names: across banks, the debit posts and is refunded.
    assert [("debit", "debit"), ("reverse_debit", "reversal")] == postings(
        banks["north"], refused.id
    )
    assert [("reverse_credit", "void")] == postings(banks["south"], refused.id)
    assert Decimal("1000.00") == balance(banks["north"], "NORTH-001")
    positions = {(p.bank, p.currency): p for p in audited(banks).positions}
    assert (Decimal("25.50"), Decimal("-25.50")) == (
        positions["north", "GBP"].completed_net,
        positions["south", "GBP"].completed_net,
    )
    assert (Decimal("25.50"), Decimal("-25.50")) == (
        banks["north"].get_account(CLEARING_ACCOUNT, currency="GBP").balance,
        banks["south"].get_account(CLEARING_ACCOUNT, currency="GBP").balance,
    )
    assert Decimal(0) == positions["north", "USD"].clearing == positions["south", "USD"].clearing
