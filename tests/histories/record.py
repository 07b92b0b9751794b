"""Record the histories that the replay test checks: `make histories`.

Runs each scenario on a fresh dev server (the installed Temporal CLI) with a
worker in this process and a throwaway SQLite ledger, then writes every
workflow's history as JSON next to this file. Re-record after an intended
change to the workflow's commands, and only together with `workflow.patched`
(see docs/changing-workflows.md) if transfers of the old shape may still be running.
"""

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from app.encryption import EncryptionCodec
from app.temporal import temporal_cli
from app.transfers import start_transfer
from app.worker import running_bank_workers
from ledger import LedgerStore, open_store
from tests.keys import TEST_CONVERTER, TEST_RING
from tests.support.doubles import freezing_credit, hanging_step
from tests.support.transfers import park, wait_for_status
from tests.support.workers import transfer_worker
from workflows.contract import ResolveRequest, RetryRequest, TransferRequest, TransferStatus
from workflows.transfer import TransferWorkflow
from workflows.visibility import SEARCH_ATTRIBUTES, search_attributes

HERE = Path(__file__).parent
Scenario = Callable[[Client, LedgerStore], Awaitable[WorkflowHandle[Any, Any]]]


def _request(source: str, destination: str, amount: str) -> TransferRequest:
    return TransferRequest(source_account=source, destination_account=destination, amount=amount)


async def _finish(handle: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    return handle


async def _simple(
    client: Client, store: LedgerStore, name: str, req: TransferRequest
) -> WorkflowHandle[Any, Any]:
    async with transfer_worker(client, store) as tq:
        # The way our clients start transfers: with the search attributes.
        handle, _ = await start_transfer(client, req, transfer_id=name, task_queue=tq)
        return await _finish(handle)


async def completed(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    return await _simple(client, store, "completed", _request("ACC-001", "ACC-002", "150"))


async def insufficient_funds(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    return await _simple(
        client, store, "insufficient_funds", _request("ACC-002", "ACC-003", "1000")
    )


async def credit_failure(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    return await _simple(client, store, "credit_failure", _request("ACC-001", "ACC-999", "200"))


async def low_latency_credit_failure(
    client: Client, store: LedgerStore
) -> WorkflowHandle[Any, Any]:
    async with transfer_worker(client, store) as tq:
        handle, _ = await start_transfer(
            client,
            _request("ACC-001", "ACC-999", "200"),
            transfer_id="low_latency_credit_failure",
            task_queue=tq,
            low_latency=True,
        )
        return await _finish(handle)


async def cancelled_mid_flight(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    stuck_credit, started = hanging_step("credit")

    async with transfer_worker(client, store, credit=stuck_credit) as tq:
        handle, _ = await start_transfer(
            client,
            _request("ACC-001", "ACC-002", "40"),
            transfer_id="cancelled_mid_flight",
            task_queue=tq,
        )
        await started.wait()
        await handle.cancel()
        return await _finish(handle)


async def needs_attention_retried(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    async with transfer_worker(client, store, credit=freezing_credit(store)) as tq:
        handle = await park(client, store, tq, "needs_attention_retried")
        await handle.execute_update(TransferWorkflow.retry, RetryRequest(note="still frozen"))
        store.unfreeze_account("ACC-001")
        await handle.execute_update(TransferWorkflow.retry, RetryRequest(note="unfrozen"))
        return await _finish(handle)


async def needs_attention_resolved(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    async with transfer_worker(client, store, credit=freezing_credit(store)) as tq:
        handle = await park(client, store, tq, "needs_attention_resolved")
        await handle.execute_update(
            TransferWorkflow.resolve, ResolveRequest(note="Paid back by cheque 1234")
        )
        return await _finish(handle)


def _without_stack_trace(encoded: dict[str, Any]) -> dict[str, Any]:
    codec = EncryptionCodec(TEST_RING)
    inner = codec.decrypt(json_format.ParseDict(encoded, Payload()))
    attributes = json.loads(inner.data)
    attributes["stack_trace"] = ""
    inner.data = json.dumps(attributes, separators=(",", ":")).encode()
    return json_format.MessageToDict(codec.encrypt(inner))


def _scrubbed(node: Any) -> Any:
    """The history without stack traces.

    They name files on the recording machine, and replay never reads them.
    Failures carry theirs inside the encrypted `encodedAttributes` payload:
    those are opened with the test key, emptied and sealed again.
    """
    if isinstance(node, dict):
        return {
            k: (
                ""
                if k == "stackTrace"
                else _without_stack_trace(v)
                if k == "encodedAttributes"
                else _scrubbed(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_scrubbed(v) for v in node]
    return node


async def cross_bank_refused(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    """North to south, refused at south: steps routed to each bank's task queue."""
    south = open_store(str(Path(tempfile.mkdtemp(prefix="record-south-")) / "ledger.db"))
    store.open_account("NORTH-001", "Alice", Decimal("100.00"))
    task_queue = "record-banks"
    async with running_bank_workers(
        client, {"north": store, "south": south}, task_queue=task_queue
    ):
        request = TransferRequest(
            source_account="NORTH-001",
            destination_account="SOUTH-404",
            amount=Decimal("30"),
            source_bank="north",
            destination_bank="south",
        )
        handle, _ = await start_transfer(
            client, request, transfer_id="cross_bank_refused", task_queue=task_queue
        )
        return await _finish(handle)


async def scheduled(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    """Dated three seconds ahead: `scheduled` on a timer, then debit and credit."""
    req = TransferRequest(
        source_account="ACC-001",
        destination_account="ACC-002",
        amount=Decimal("25"),
        execute_at=datetime.now(UTC) + timedelta(seconds=3),
    )
    async with transfer_worker(client, store) as tq:
        handle = await client.start_workflow(
            TransferWorkflow.run,
            req,
            id="scheduled",
            task_queue=tq,
            search_attributes=search_attributes(req, "scheduled"),
        )
        return await _finish(handle)


async def needs_attention_retried_by_itself(
    client: Client, store: LedgerStore
) -> WorkflowHandle[Any, Any]:
    """Parked (the refund refused), unfrozen, then refunded by an automatic retry: no operator.

    A five-second retry window, so the one automatic retry runs when it ends.
    """
    req = TransferRequest(
        source_account="ACC-001",
        destination_account="ACC-404",
        amount=Decimal("80"),
        compensation_retry_window_seconds=5,
    )
    async with transfer_worker(client, store, credit=freezing_credit(store)) as tq:
        handle = await client.start_workflow(
            TransferWorkflow.run, req, id="needs_attention_retried_by_itself", task_queue=tq
        )
        await wait_for_status(handle, TransferStatus.NEEDS_ATTENTION)
        store.unfreeze_account("ACC-001")
        return await _finish(handle)


async def currency_mismatch(client: Client, store: LedgerStore) -> WorkflowHandle[Any, Any]:
    """USD to a EUR account, hand-written (no currency): the debit refuses it, nothing posts."""
    store.open_account("EUR-001", "Dora", Decimal("300.00"), currency="EUR")
    return await _simple(client, store, "currency_mismatch", _request("ACC-001", "EUR-001", "50"))


SCENARIOS: list[Scenario] = [
    completed,
    insufficient_funds,
    credit_failure,
    cancelled_mid_flight,
    needs_attention_retried,
    needs_attention_resolved,
    low_latency_credit_failure,
    cross_bank_refused,
    scheduled,
    needs_attention_retried_by_itself,
    currency_mismatch,
]


async def record(directory: Path = HERE, only: Sequence[str] = ()) -> list[Path]:
    """Run every scenario (or those named in `only`) and write `<scenario>.json`.

    Returns the files written.
    """
    unknown = set(only) - {scenario.__name__ for scenario in SCENARIOS}
    if unknown:
        raise SystemExit(f"no such scenario: {', '.join(sorted(unknown))}")
    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER,
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    written = []
    try:
        for scenario in SCENARIOS:
            if only and scenario.__name__ not in only:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                store = open_store(str(Path(tmp) / "ledger.db"))
                for account_id, owner, balance in [
                    ("ACC-001", "Alice", "1000.00"),
                    ("ACC-002", "Bob", "500.00"),
                    ("ACC-003", "Charlie", "750.00"),
                ]:
                    store.open_account(account_id, owner, Decimal(balance))
                handle = await scenario(env.client, store)
                history = await handle.fetch_history()
                path = directory / f"{scenario.__name__}.json"
                path.write_text(json.dumps(_scrubbed(json.loads(history.to_json())), indent=2))
                written.append(path)
                print(f"recorded {path.name}: {len(history.events)} events")
    finally:
        await env.shutdown()
    return written


if __name__ == "__main__":
    # `python -m tests.histories.record NAME...` records only those scenarios.
    asyncio.run(record(only=sys.argv[1:]))
    # Leave without the interpreter's finalization, which the SDK core's
    # threads can crash now and then (as the entry points do).
    sys.stdout.flush()
    os._exit(0)
