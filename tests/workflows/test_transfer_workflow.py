"""TransferWorkflow in the time-skipping environment, against a real SQLite ledger."""

import asyncio
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import LedgerActivities
from app.transfers import TransferIdConflict, start_transfer, wait_outcome
from ledger import LedgerStore, LedgerUnavailable, PostingKind, Receipt
from tests.support.doubles import hanging_step
from tests.support.ledgers import balances, opening_balances
from tests.support.transfers import new_id, postings_of, request, run
from tests.support.workers import transfer_worker
from workflows import visibility
from workflows.contract import StepStatus, TransferStatus
from workflows.steps import FORWARD
from workflows.transfer import TransferWorkflow


async def test_transfer_completes_and_moves_the_money_once(
    client: Client, any_store: LedgerStore
) -> None:
    """Alice -> Bob 150: one debit, one credit, clearing back to zero, state completed."""
    store = any_store
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        result, state = await run(client, tq, request("ACC-001", "ACC-002", "150.00"), transfer_id)
    assert Decimal("150.00") == result.amount
    assert (f"{transfer_id}/debit", f"{transfer_id}/credit") == (
        result.debit.key,
        result.credit.key,
    )
    expected = opening_balances() | {"ACC-001": Decimal("850.00"), "ACC-002": Decimal("650.00")}
    assert expected == balances(store)
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    assert TransferStatus.COMPLETED == state.status
    assert [("debit", StepStatus.COMPLETED, 1), ("credit", StepStatus.COMPLETED, 1)] == [
        (s.name, s.status, s.attempts) for s in state.steps
    ]
    assert state.error is None


async def test_a_completed_transfer_adds_one_event_to_the_engine_floor(
    client: Client, store: LedgerStore
) -> None:
    """Two activities cost 17 events; a transfer adds only its final status upsert.

    No deadline timer, no markers, no upsert when it starts: the client sets
    the search attributes with the start.
    """
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        handle, _ = await start_transfer(
            client, request("ACC-001", "ACC-002", "15"), transfer_id=transfer_id, task_queue=tq
        )
        assert (await wait_outcome(handle)).ok
    history = await handle.fetch_history()
    kinds = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]
    task = ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]
    activity_ = ["ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED"]
    before_close = ["WORKFLOW_EXECUTION_STARTED", *task, *activity_, *task, *activity_, *task]
    assert 17 == len([*before_close, "WORKFLOW_EXECUTION_COMPLETED"])  # the engine floor
    assert [
        *before_close,
        "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
        "WORKFLOW_EXECUTION_COMPLETED",
    ] == kinds
    attributes = (await handle.describe()).typed_search_attributes
    assert "completed" == attributes.get(visibility.TRANSFER_STATUS)
    assert "ACC-002" == attributes.get(visibility.DESTINATION_ACCOUNT)


async def test_a_transfer_started_without_search_attributes_sets_them_itself(
    client: Client, store: LedgerStore
) -> None:
    """Started from a bare client (like the plain `temporal` CLI), it is still searchable."""
    async with transfer_worker(client, store) as tq:
        result, _ = await run(client, tq, request("ACC-001", "ACC-002", "15"))
    handle = client.get_workflow_handle(result.transfer_id)
    attributes = (await handle.describe()).typed_search_attributes
    assert ("completed", "ACC-001", "ACC-002", 15.0) == (
        attributes.get(visibility.TRANSFER_STATUS),
        attributes.get(visibility.SOURCE_ACCOUNT),
        attributes.get(visibility.DESTINATION_ACCOUNT),
        attributes.get(visibility.TRANSFER_AMOUNT),
    )


async def test_insufficient_funds_fails_with_the_business_reason_and_moves_nothing(
    client: Client, store: LedgerStore
) -> None:
    """Bob -> Charlie 1000 with 500: the whole failure chain names InsufficientFunds."""
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        failure, state = await run(client, tq, request("ACC-002", "ACC-003", "1000"), transfer_id)

    assert isinstance(failure, WorkflowFailureError)
    top = failure.cause
    assert isinstance(top, ApplicationError)
    assert ("InsufficientFunds", "Insufficient funds: 500.00 < 1000.00", True) == (
        top.type,
        top.message,
        top.non_retryable,
    )
    assert isinstance(top.cause, ActivityError)
    leaf = top.cause.cause
    assert isinstance(leaf, ApplicationError)
    assert ("InsufficientFunds", True) == (leaf.type, leaf.non_retryable)

    assert opening_balances() == balances(store)
    # The debit never applied, so its compensation voided it: no money moved.
    assert [("reverse_debit", "void")] == postings_of(store, transfer_id)
    assert TransferStatus.COMPENSATED == state.status
    assert state.error is not None
    assert "InsufficientFunds" == state.error.type
    assert StepStatus.FAILED == state.step("debit").status
    assert StepStatus.SKIPPED == state.step("credit").status


@pytest.mark.parametrize(
    ("destination", "error_type"),
    [("ACC-999", "AccountNotFound"), ("ACC-CLOSED", "AccountClosed")],
)
async def test_credit_failure_is_compensated_and_balances_restored(
    client: Client, any_store: LedgerStore, destination: str, error_type: str
) -> None:
    """The debit succeeds, the credit is refused: the debit is refunded, the credit voided."""
    store = any_store
    store.open_account("ACC-CLOSED", "Gone")
    store.close_account("ACC-CLOSED")
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        failure, state = await run(client, tq, request("ACC-001", destination, "200"), transfer_id)

    assert isinstance(failure, WorkflowFailureError)
    assert isinstance(failure.cause, ApplicationError)
    assert error_type == failure.cause.type
    assert opening_balances() == {k: v for k, v in balances(store).items() if k != "ACC-CLOSED"}
    assert [
        ("debit", "debit"),
        ("reverse_credit", "void"),
        ("reverse_debit", "reversal"),
    ] == postings_of(store, transfer_id)
    assert TransferStatus.COMPENSATED == state.status
    assert [
        ("debit", StepStatus.COMPENSATED),
        ("credit", StepStatus.FAILED),
        ("reverse_credit", StepStatus.COMPLETED),
        ("reverse_debit", StepStatus.COMPLETED),
    ] == [(s.name, s.status) for s in state.steps]
    credit_error = state.step("credit").error
    assert credit_error is not None
    assert error_type == credit_error.type


class FlakyLedger:
    """A store whose first `failures` debits raise LedgerUnavailable (before or after commit)."""

    def __init__(self, store: LedgerStore, *, failures: int, after_commit: bool) -> None:
        self._store = store
        self._failures = failures
        self._after_commit = after_commit
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def debit(self, key: str, account_id: str, amount: Decimal, **extra: Any) -> Receipt:
        self.calls += 1
        if self.calls <= self._failures:
            if self._after_commit:
                self._store.debit(key, account_id, amount, **extra)  # committed, reply lost
            raise LedgerUnavailable("database is locked")
        return self._store.debit(key, account_id, amount, **extra)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
async def test_transient_ledger_errors_are_retried_and_the_step_applies_once(
    client: Client, store: LedgerStore, after_commit: bool
) -> None:
    """Two 'database is locked' errors, then success: one debit posting, 3 attempts."""
    flaky = FlakyLedger(store, failures=2, after_commit=after_commit)
    debit = LedgerActivities(flaky).debit  # type: ignore[arg-type]
    transfer_id = new_id()
    async with transfer_worker(client, store, debit=debit) as tq:
        result, state = await run(client, tq, request("ACC-001", "ACC-002", "10"), transfer_id)

    assert 3 == flaky.calls
    assert result.debit.replayed is after_commit
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    assert Decimal("990.00") == balances(store)["ACC-001"]
    assert 3 == state.step("debit").attempts


async def test_a_step_that_hangs_past_its_timeout_is_retried(
    env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """Attempt 1 hangs; after its start-to-close timeout attempt 2 runs and the transfer ends."""
    assert timedelta(seconds=30) > FORWARD.start_to_close, "this test waits it out"
    real = LedgerActivities(store)
    hanging_debit, first_attempt_started = hanging_step("debit", then=real.debit)
    transfer_id = new_id()
    async with transfer_worker(env.client, store, debit=hanging_debit) as tq:
        handle = await env.client.start_workflow(
            TransferWorkflow.run, request("ACC-001", "ACC-002", "25"), id=transfer_id, task_queue=tq
        )
        await asyncio.wait_for(first_attempt_started.wait(), 30)
        # The test server runs activity timeouts on the wall clock: this waits
        # out FORWARD.start_to_close for real.
        result = await asyncio.wait_for(handle.result(), 60)
        state = await handle.query(TransferWorkflow.state)

    assert Decimal("25.00") == result.amount
    assert 2 == state.step("debit").attempts
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    assert Decimal("975.00") == balances(store)["ACC-001"]


async def test_starting_the_same_id_twice_moves_money_once(
    client: Client, store: LedgerStore
) -> None:
    """Start, then start again with the same id: the second attaches; one debit, one credit."""
    transfer_id = new_id()
    req = request("ACC-001", "ACC-002", "100")
    async with transfer_worker(client, store) as tq:
        first, attached_first = await start_transfer(
            client, req, transfer_id=transfer_id, task_queue=tq
        )
        outcome = await wait_outcome(first)
        second, attached_second = await start_transfer(
            client, req, transfer_id=transfer_id, task_queue=tq
        )
        again = await wait_outcome(second)
    assert (False, True) == (attached_first, attached_second)
    assert ("completed", "completed") == (outcome.status, again.status)
    assert first.result_run_id == second.result_run_id
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    assert Decimal("900.00") == balances(store)["ACC-001"]


async def test_a_rerun_of_a_closed_id_replays_receipts_instead_of_moving_money(
    client: Client, store: LedgerStore
) -> None:
    """A second run that Temporal allows (default reuse policy) moves nothing: keys are per id."""
    transfer_id = new_id()
    req = request("ACC-001", "ACC-002", "100")
    async with transfer_worker(client, store) as tq:
        first, _ = await run(client, tq, req, transfer_id)
        second, _ = await run(client, tq, req, transfer_id)
    assert (False, True, True) == (
        first.debit.replayed,
        second.debit.replayed,
        second.credit.replayed,
    )
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    assert Decimal("900.00") == balances(store)["ACC-001"]


async def test_a_rerun_of_a_refunded_transfer_stops_at_the_reversed_debit(
    client: Client, store: LedgerStore
) -> None:
    """A second run of a compensated transfer fails at once: a reversed key is never 'done'."""
    transfer_id = new_id()
    req = request("ACC-001", "ACC-999", "100")  # the credit fails: refunded
    async with transfer_worker(client, store) as tq:
        first, _ = await run(client, tq, req, transfer_id)
        second, state = await run(client, tq, req, transfer_id)
    assert isinstance(first, WorkflowFailureError)
    assert isinstance(second, WorkflowFailureError)
    assert ("AccountNotFound", "StepReversed") == (
        first.cause.type,  # type: ignore[attr-defined]
        second.cause.type,  # type: ignore[attr-defined]
    )
    assert ("compensated", "skipped") == (state.step("debit").status, state.step("credit").status)
    assert [
        ("debit", "debit"),
        ("reverse_credit", "void"),
        ("reverse_debit", "reversal"),
    ] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)


@pytest.mark.parametrize(
    ("second_request", "conflict_at"),
    # The debit's posting names the first transfer, so even a matching debit
    # movement (same payer and amount, another payee) conflicts at once.
    [(("ACC-001", "ACC-002", "40"), "debit"), (("ACC-001", "ACC-003", "100"), "debit")],
)
async def test_a_rerun_of_a_closed_id_with_another_request_undoes_nothing(
    client: Client, store: LedgerStore, second_request: tuple[str, str, str], conflict_at: str
) -> None:
    """Another amount or destination under a completed transfer's id leaves that transfer be.

    Plain Temporal allows a second run once the first closed (the `temporal`
    CLI's default), and so does any starter after the namespace's retention
    dropped the first run. The step keys then hold the first transfer's
    postings; undoing them would take Bob's money back.
    """
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        await run(client, tq, request("ACC-001", "ACC-002", "100"), transfer_id)
        after_first = balances(store)
        second, state = await run(client, tq, request(*second_request), transfer_id)
    assert isinstance(second, WorkflowFailureError)
    assert ("IdempotencyConflict", "compensated") == (
        second.cause.type,  # type: ignore[attr-defined]
        second.cause.details[0],  # type: ignore[attr-defined]
    )
    assert StepStatus.FAILED == state.step(conflict_at).status
    compensations = [s for s in state.steps if s.kind == "compensation"]
    assert compensations
    assert {(StepStatus.SKIPPED, "ForeignPostings")} == {
        (s.status, s.error.type if s.error else None) for s in compensations
    }
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    assert after_first == balances(store)
    assert Decimal("600.00") == after_first["ACC-002"]


async def test_reusing_an_id_for_a_different_transfer_is_refused(
    client: Client, store: LedgerStore
) -> None:
    """The same reference with another amount is an error, not an attach."""
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        handle, _ = await start_transfer(
            client, request("ACC-001", "ACC-002", "100"), transfer_id=transfer_id, task_queue=tq
        )
        await handle.result()
        with pytest.raises(TransferIdConflict, match=r"100\.00 ACC-001 -> ACC-002"):
            await start_transfer(
                client, request("ACC-001", "ACC-002", "999"), transfer_id=transfer_id, task_queue=tq
            )
    assert Decimal("900.00") == balances(store)["ACC-001"]


async def test_many_concurrent_transfers_stay_independent(
    dev_env: WorkflowEnvironment, any_store: LedgerStore
) -> None:
    """40 transfers at once on a dev server, some doomed: each ends right; the ledger balances."""
    store = any_store
    # Not on the time-skipping server: under this much concurrency it was
    # seen to leave scheduled activity tasks undispatched.
    client = dev_env.client
    rng = random.Random(7)
    plan: list[tuple[str, str, Decimal]] = []
    for _ in range(36):
        source, destination = rng.sample(["ACC-001", "ACC-002", "ACC-003"], 2)
        plan.append((source, destination, Decimal(rng.randint(1, 1000)) / 100))  # <= 10.00 each
    plan += [("ACC-001", "ACC-404", Decimal("5.00"))] * 4  # credits that must be compensated

    async with transfer_worker(client, store) as tq:
        outcomes = await asyncio.gather(
            *(run(client, tq, request(s, d, str(a))) for s, d, a in plan)
        )

    expected = opening_balances()
    for (source, destination, amount), (outcome, state) in zip(plan, outcomes, strict=True):
        if destination == "ACC-404":
            assert isinstance(outcome, WorkflowFailureError)
            assert TransferStatus.COMPENSATED == state.status
            continue
        assert TransferStatus.COMPLETED == state.status, state.error
        expected[source] -= amount
        expected[destination] += amount
    assert expected == balances(store)
    debits = [r for r in store.receipts() if r.kind == PostingKind.DEBIT]
    assert 40 == len(debits)


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (
            {"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "abc"},
            "not a number",
        ),
        (
            {"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "-5"},
            "greater than zero",
        ),
        (
            {"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "0"},
            "greater than zero",
        ),
        (
            {
                "source_account": "ACC-001",
                "destination_account": "ACC-002",
                "amount": "1.001",
                "currency": "USD",
            },
            "more than two decimal places (USD has two)",
        ),
        (
            {"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "12.3456"},
            "more than three decimal places",
        ),
        (
            {"source_account": "A", "destination_account": "B", "amount": "5", "currency": "EURO"},
            "Unknown currency 'EURO'",
        ),
        (
            {"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "NaN"},
            "finite",
        ),
        (
            {"source_account": "ACC-001", "destination_account": "ACC-001", "amount": "5"},
            "same account",
        ),
        (
            {"source_account": "", "destination_account": "ACC-002", "amount": "5"},
            "Invalid account",
        ),
        ({"source_account": "ACC-001", "destination_account": "ACC-002"}, "Field required"),
        (
            {"source_account": "ACC-001", "destination_account": "ACC-002", "amount": "5", "x": 1},
            "Unknown field 'x'",
        ),
    ],
)
async def test_bad_input_fails_the_workflow_before_any_posting(
    client: Client, store: LedgerStore, payload: dict[str, Any], complaint: str
) -> None:
    """Hand-written JSON (as from `temporal workflow start`) is validated before any step runs."""
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                "TransferWorkflow",
                payload,
                id=transfer_id,
                task_queue=tq,
                run_timeout=timedelta(seconds=30),
            )
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert "ValidationError" == cause.type
    assert complaint in cause.message
    assert [] == postings_of(store, transfer_id)
    assert opening_balances() == balances(store)
