"""Builds the worker: the transfer workflows and the ledger activities on one task queue."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import LedgerActivities
from app.tracing import traced_ledger, worker_interceptors
from ledger import LedgerStore
from workflows.banks import bank_task_queue
from workflows.low_latency import LowLatencyTransferWorkflow
from workflows.transfer import TransferWorkflow

#: Threads for the blocking ledger calls; also the activity concurrency limit.
ACTIVITY_THREADS = 16

#: Whether workflow code runs in the SDK's sandbox. Measured by `make bench`
#: (docs/performance.md): see SANDBOXED's note there for the numbers.
SANDBOXED = False


def ledger_activities(
    store: LedgerStore, *, bank: str | None = None
) -> dict[str, Callable[..., Any]]:
    """The ledger activities on `store` (traced when tracing is on), by activity name."""
    activities = LedgerActivities(traced_ledger(store, bank=bank))
    return {
        "debit": activities.debit,
        "credit": activities.credit,
        "reverse_debit": activities.reverse_debit,
        "reverse_credit": activities.reverse_credit,
        "settle_manually": activities.settle_manually,
        "record_operator_action": activities.record_operator_action,
    }


def build_worker(
    client: Client,
    *,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    executor: ThreadPoolExecutor | None,
    sandboxed: bool = SANDBOXED,
) -> Worker:
    """A worker with the project's settings (the benchmark's floor uses them too).

    With tracing on, it traces workflows and activities (`app.tracing`).
    """
    return Worker(
        client,
        task_queue=task_queue,
        interceptors=worker_interceptors(client),
        workflows=workflows,
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        max_concurrent_local_activities=ACTIVITY_THREADS,
        # Without the sandbox, nothing stops workflow code from calling the
        # clock or the network; the replay tests (which run sandboxed) and
        # review are the guard. With it, every workflow task pays for it.
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
        # Let a ledger call in flight finish (it is short) instead of
        # abandoning it to a retry after the start-to-close timeout.
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


@asynccontextmanager
async def running_worker(
    client: Client,
    store: LedgerStore,
    *,
    task_queue: str,
    sandboxed: bool = SANDBOXED,
    replacements: dict[str, Callable[..., Any]] | None = None,
) -> AsyncIterator[Worker]:
    """Run a worker for the block's duration, then shut it down gracefully.

    `replacements` swaps activities by name (tests and the soak harness).
    """
    activities = ledger_activities(store) | (replacements or {})
    with ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="ledger") as executor:
        worker = build_worker(
            client,
            task_queue=task_queue,
            workflows=[TransferWorkflow, LowLatencyTransferWorkflow],
            activities=list(activities.values()),
            executor=executor,
            sandboxed=sandboxed,
        )
        async with worker:
            yield worker


@asynccontextmanager
async def running_bank_worker(
    client: Client,
    store: LedgerStore,
    *,
    bank: str,
    workflow_task_queue: str,
    replacements: dict[str, Callable[..., Any]] | None = None,
) -> AsyncIterator[Worker]:
    """One bank's ledger steps, on its task queue (`bank-<name>`), against its own ledger.

    `workflow_task_queue` is the transfer workflows' queue, which names the
    bank queues (`workflows.banks.bank_task_queue`).
    """
    activities = ledger_activities(store, bank=bank) | (replacements or {})
    with ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix=f"ledger-{bank}") as executor:
        worker = build_worker(
            client,
            task_queue=bank_task_queue(bank, workflow_task_queue),
            workflows=[],
            activities=list(activities.values()),
            executor=executor,
        )
        async with worker:
            yield worker


@asynccontextmanager
async def running_workflow_worker(
    client: Client, *, task_queue: str, sandboxed: bool = SANDBOXED
) -> AsyncIterator[Worker]:
    """The transfer workflows alone: no ledger, their steps run at the banks' workers."""
    worker = build_worker(
        client,
        task_queue=task_queue,
        workflows=[TransferWorkflow, LowLatencyTransferWorkflow],
        activities=[],
        executor=None,
        sandboxed=sandboxed,
    )
    async with worker:
        yield worker


@asynccontextmanager
async def running_bank_workers(
    client: Client,
    stores: dict[str, LedgerStore],
    *,
    task_queue: str,
    workflows: bool = True,
) -> AsyncIterator[None]:
    """The workflow worker on `task_queue` (unless not `workflows`) and one worker per bank."""
    async with contextlib.AsyncExitStack() as stack:
        if workflows:
            await stack.enter_async_context(running_workflow_worker(client, task_queue=task_queue))
        for bank, store in stores.items():
            await stack.enter_async_context(
                running_bank_worker(client, store, bank=bank, workflow_task_queue=task_queue)
            )
        yield


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


class StopSignals:
    """SIGINT and SIGTERM, from the moment it is created, as a request to stop.

    A signal that arrives while the process is still starting (a dev server
    to launch, a worker to build) cancels the task that created it, so the
    start-up unwinds and cleans up instead of the process dying on SIGTERM
    (exit 143) and leaving its children behind; `received` then says which
    signal it was. Once the process runs, `wait` returns the signal instead.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._waiter: asyncio.Future[signal.Signals] | None = None
        self.received: signal.Signals | None = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received is not None:
            return
        self.received = sig
        if self._waiter is not None:
            self._waiter.set_result(sig)
        elif self._task is not None:
            self._task.cancel()

    async def wait(self) -> signal.Signals:
        """The signal that asks us to stop, once it arrives."""
        if self.received is not None:
            return self.received
        self._waiter = self._loop.create_future()
        return await self._waiter

    def close(self) -> None:
        """Give SIGINT and SIGTERM their default meaning back."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._loop.remove_signal_handler(sig)
