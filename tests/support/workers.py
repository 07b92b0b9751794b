"""In-process workers for tests: the real ledger activities, some optionally replaced."""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client

from app.worker import running_worker
from ledger import LedgerStore


@asynccontextmanager
async def transfer_worker(
    client: Client,
    store: LedgerStore,
    *,
    task_queue: str | None = None,
    **replacements: Callable[..., Any],
) -> AsyncIterator[str]:
    """Run TransferWorkflow with the real activities on `store`; yield the task queue.

    Keyword arguments replace activities by name (``debit=...``) with test
    doubles declared as ``@activity.defn(name="debit")`` (see `tests.support.doubles`).
    """
    task_queue = task_queue or f"test-{uuid.uuid4()}"
    async with running_worker(client, store, task_queue=task_queue, replacements=replacements):
        yield task_queue
