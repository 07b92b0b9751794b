"""A worker without the key a transfer was encrypted with: the transfer waits, nothing moves."""

import asyncio
import uuid
from decimal import Decimal

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from app.encryption import encrypted_converter, generate_ring
from app.transfers import start_transfer, wait_outcome
from ledger import LedgerStore
from tests.keys import TEST_KEY_ID
from tests.support.ledgers import balances
from tests.support.transfers import new_id, postings_of, request
from tests.support.workers import transfer_worker


async def test_a_worker_without_the_key_fails_the_task_naming_the_key_and_moves_nothing(
    dev_env: WorkflowEnvironment, store: LedgerStore
) -> None:
    """A stranger worker fails the task naming the key; the right one completes it, once.

    The transfer is encrypted with the test key and first picked up by a
    worker holding another: its workflow task fails with an error naming the
    missing key id (Temporal retries it) and no money moves.
    """
    other_ring = generate_ring()
    stranger = Client(
        dev_env.client.service_client,
        namespace=dev_env.client.namespace,
        data_converter=encrypted_converter(other_ring),
    )
    task_queue = f"test-{uuid.uuid4()}"
    transfer_id = new_id()
    before = balances(store)
    async with transfer_worker(stranger, store, task_queue=task_queue):
        handle, _ = await start_transfer(
            dev_env.client,
            request("ACC-001", "ACC-002", "25.00"),
            transfer_id=transfer_id,
            task_queue=task_queue,
        )
        failed = None
        for _ in range(100):
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failed = event.workflow_task_failed_event_attributes.failure
            if failed is not None:
                break
            await asyncio.sleep(0.1)
    assert failed is not None, "the stranger's workflow task never failed"
    # The failure is sealed with the stranger's own key; opened, it names the missing one.
    error = await stranger.data_converter.decode_failure(failed)
    assert f"'{TEST_KEY_ID}'" in str(error)
    assert other_ring.current in str(error)
    assert [] == postings_of(store, transfer_id)
    assert before == balances(store)

    async with transfer_worker(dev_env.client, store, task_queue=task_queue):
        outcome = await wait_outcome(handle)
    assert "completed" == outcome.status
    moved = balances(store)
    assert Decimal("975.00") == moved["ACC-001"]
    assert Decimal("525.00") == moved["ACC-002"]
