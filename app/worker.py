"""Builds the worker: the transfer workflow and the ledger activities on one task queue."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities import LedgerActivities
from ledger import LedgerStore
from workflows.transfer import TransferWorkflow

#: Threads for the blocking ledger calls; also the activity concurrency limit.
ACTIVITY_THREADS = 16


@asynccontextmanager
async def running_worker(
    client: Client, store: LedgerStore, *, task_queue: str
) -> AsyncIterator[Worker]:
    """Run a worker for the block's duration, then shut it down gracefully."""
    activities = LedgerActivities(store)
    with ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="ledger") as executor:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[TransferWorkflow],
            activities=[
                activities.debit,
                activities.credit,
                activities.reverse_debit,
                activities.reverse_credit,
                activities.settle_manually,
            ],
            activity_executor=executor,
            max_concurrent_activities=ACTIVITY_THREADS,
            # Let a ledger call in flight finish (it is short) instead of
            # abandoning it to a retry after the start-to-close timeout.
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
        async with worker:
            yield worker


async def wait_for_stop_signal() -> signal.Signals:
    """Wait for SIGINT or SIGTERM and return which one arrived."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await received
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
