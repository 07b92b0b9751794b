"""Workers for workflow tests: the real ledger activities, some optionally replaced."""

import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities import LedgerActivities
from ledger import LedgerStore
from workflows.transfer import TransferWorkflow


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
    doubles declared as ``@activity.defn(name="debit")``.
    """
    real = LedgerActivities(store)
    activities: dict[str, Callable[..., Any]] = {
        "debit": real.debit,
        "credit": real.credit,
        "reverse_debit": real.reverse_debit,
        "reverse_credit": real.reverse_credit,
        "settle_manually": real.settle_manually,
    } | replacements
    task_queue = task_queue or f"test-{uuid.uuid4()}"
    with ThreadPoolExecutor(8) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[TransferWorkflow],
            activities=list(activities.values()),
            activity_executor=executor,
        ):
            yield task_queue
