"""Tracing: a cross-bank transfer is one trace, from the starter's start call to each ledger."""

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from app.tracing import (
    client_interceptors,
    start_tracing,
    traced_ledger,
    tracing_to,
)
from app.tracing_sdk import span_processor
from app.transfers import TransferOutcome, start_transfer, wait_outcome
from app.worker import (
    ACTIVITY_THREADS,
    build_worker,
    ledger_activities,
    running_bank_worker,
    running_workflow_worker,
)
from ledger import LedgerStore, open_store
from workflows.contract import TransferRequest
from workflows.transfer import TransferWorkflow

OPENING = {"north": ("NORTH-001", "Alice", "1000.00"), "south": ("SOUTH-001", "Carol", "300.00")}


@pytest.fixture
def banks(tmp_path: Path) -> Iterator[dict[str, LedgerStore]]:
    """North (Alice, 1000.00) and south (Carol, 300.00), each in a SQLite ledger of its own."""
    stores = {}
    for bank, (account_id, owner, balance) in OPENING.items():
        stores[bank] = open_store(f"sqlite:///{tmp_path / f'ledger-{bank}.db'}")
        stores[bank].open_account(account_id, owner, Decimal(balance))
    yield stores
    for store in stores.values():
        store.close()


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on, to memory, through the same failure-message filter as a real exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "test"}))
    provider.add_span_processor(span_processor(exporter))
    with tracing_to(provider):
        yield exporter
    provider.shutdown()


@contextlib.asynccontextmanager
async def two_banks(client: Client, banks: dict[str, LedgerStore]) -> AsyncIterator[str]:
    """A workflow worker and both banks' workers on `client`; yields the workflow task queue."""
    task_queue = f"traced-{uuid.uuid4()}"
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(running_workflow_worker(client, task_queue=task_queue))
        for bank, store in banks.items():
            await stack.enter_async_context(
                running_bank_worker(client, store, bank=bank, workflow_task_queue=task_queue)
            )
        yield task_queue


async def run_traced(
    client: Client,
    banks: dict[str, LedgerStore],
    exporter: InMemorySpanExporter,
    source: str,
    destination: str,
    amount: str,
) -> tuple[TransferOutcome, list[ReadableSpan]]:
    """Run one cross-bank transfer, started by a starter's client; its outcome and spans."""
    # A starter's client, as `app.temporal.connect` makes one; the workers'
    # client has no interceptor, so each worker must bring its own.
    config = client.config()
    config["interceptors"] = client_interceptors()
    starter = Client(**config)
    request = TransferRequest(
        source_account=source,
        destination_account=destination,
        amount=Decimal(amount),
        source_bank=source.split("-")[0].lower(),
        destination_bank=destination.split("-")[0].lower(),
    )
    async with two_banks(client, banks) as task_queue:
        handle, _ = await start_transfer(
            starter, request, transfer_id=f"t-{uuid.uuid4()}", task_queue=task_queue
        )
        outcome = await wait_outcome(handle)
    return outcome, list(exporter.get_finished_spans())


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert 1 == len(found), [s.name for s in spans]
    return found[0]


def attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def parent_of(spans: list[ReadableSpan], span: ReadableSpan) -> ReadableSpan:
    assert span.parent is not None, span.name
    return next(s for s in spans if s.context.span_id == span.parent.span_id)


async def test_a_cross_bank_transfer_is_one_trace_from_the_start_call_to_each_ledger(
    client: Client, banks: dict[str, LedgerStore], exporter: InMemorySpanExporter
) -> None:
    """One trace id; the start span its root; each step at its bank with its ledger's span."""
    outcome, spans = await run_traced(client, banks, exporter, "NORTH-001", "SOUTH-001", "100")
    assert outcome.ok
    assert 1 == len({s.context.trace_id for s in spans})
    roots = [s for s in spans if s.parent is None]
    assert ["StartWorkflow:TransferWorkflow"] == [s.name for s in roots]
    assert roots[0] == parent_of(spans, one(spans, "RunWorkflow:TransferWorkflow"))
    for step, bank, account in (("debit", "north", "NORTH-001"), ("credit", "south", "SOUTH-001")):
        ledger = one(spans, f"ledger {step}")
        run = parent_of(spans, ledger)
        assert f"RunActivity:{step}" == run.name
        assert f"StartActivity:{step}" == parent_of(spans, run).name
        assert {
            "db.system": "sqlite",
            "db.operation": step,
            "ledger.bank": bank,
            "ledger.key": f"{outcome.transfer_id}/{step}",
            "ledger.account_id": account,
            "ledger.kind": step,
            "ledger.amount": "100.00",
            "ledger.replayed": False,
        }.items() <= attributes(ledger).items()


async def test_a_refused_transfer_traces_each_step_by_type_and_never_quotes_a_balance(
    client: Client, banks: dict[str, LedgerStore], exporter: InMemorySpanExporter
) -> None:
    """Insufficient funds: the debit's span says so by type; Alice's 1000.00 is on no span."""
    outcome, spans = await run_traced(client, banks, exporter, "NORTH-001", "SOUTH-001", "5000")
    assert ("compensated", "InsufficientFunds") == (outcome.status, outcome.error_type)
    assert "1000.00" in (outcome.error_message or "")  # the message quotes her balance ...
    exported = json.dumps([json.loads(s.to_json()) for s in spans])
    assert "1000.00" not in exported  # ... no span does
    debit = one(spans, "ledger debit")
    assert ("InsufficientFunds", "north") == (
        attributes(debit)["error.type"],
        attributes(debit)["ledger.bank"],
    )
    assert "ledger.amount" not in attributes(debit)  # nothing was posted
    reverse = one(spans, "ledger reverse")
    assert ("void", f"{outcome.transfer_id}/debit") == (
        attributes(reverse)["ledger.kind"],
        attributes(reverse)["ledger.original_key"],
    )
    failed = one(spans, "CompleteWorkflow:TransferWorkflow")
    assert ["exception"] == [e.name for e in failed.events]
    assert {"exception.type", "exception.escaped"} >= set(failed.events[0].attributes or {})
    assert 1 == len({s.context.trace_id for s in spans})


async def test_without_otel_variables_nothing_is_traced(
    client: Client, banks: dict[str, LedgerStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No OTEL_* variable: tracing off; no interceptor on a client or worker, no ledger span."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    assert start_tracing("starter") is None
    assert [] == client_interceptors()
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        worker = build_worker(
            client,
            task_queue="untraced",
            workflows=[TransferWorkflow],
            activities=list(ledger_activities(banks["north"]).values()),
            executor=executor,
        )
    assert [] == list(worker.config()["interceptors"])
    assert banks["north"] is traced_ledger(banks["north"])
