"""A benchmark worker process: the floor or the transfer, with chosen settings.

    python -m bench.worker --task-queue Q --kind floor|transfer [--sdk-defaults]
                           [--sandboxed|--unsandboxed] [--ledger-url URL]

Connects with Temporal's environment configuration (TEMPORAL_ADDRESS), prints
`READY` once polling, and runs until SIGTERM. A process of its own, so the
driver can meter its CPU and memory alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from app.temporal import connect, connect_config
from app.worker import (
    ACTIVITY_THREADS,
    SANDBOXED,
    build_worker,
    running_worker,
    wait_for_stop_signal,
)
from bench.floor import FloorWorkflow, floor_step
from ledger import open_store

#: The line the worker prints once it polls; the driver waits for it in the log.
READY = "bench worker: polling"


@contextlib.asynccontextmanager
async def _floor_worker(
    client: Client, task_queue: str, *, sdk_defaults: bool, sandboxed: bool
) -> AsyncIterator[Worker]:
    with ThreadPoolExecutor(None if sdk_defaults else ACTIVITY_THREADS) as executor:
        if sdk_defaults:
            # What the tutorials give: every setting left at the SDK's default.
            worker = Worker(
                client,
                task_queue=task_queue,
                workflows=[FloorWorkflow],
                activities=[floor_step],
                activity_executor=executor,
            )
        else:
            worker = build_worker(
                client,
                task_queue=task_queue,
                workflows=[FloorWorkflow],
                activities=[floor_step],
                executor=executor,
                sandboxed=sandboxed,
            )
        async with worker:
            yield worker


async def _main(args: argparse.Namespace) -> None:
    if args.kind == "floor" and args.sdk_defaults:
        client = await Client.connect(**connect_config())
    else:
        client = await connect()
    if args.kind == "floor":
        running = _floor_worker(
            client, args.task_queue, sdk_defaults=args.sdk_defaults, sandboxed=args.sandboxed
        )
    else:
        store = open_store(args.ledger_url)
        running = running_worker(
            client, store, task_queue=args.task_queue, sandboxed=args.sandboxed
        )
    async with running:
        print(READY, flush=True)
        await wait_for_stop_signal()


def main() -> None:
    """Parse the options and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--kind", choices=["floor", "transfer"], required=True)
    parser.add_argument("--sdk-defaults", action="store_true")
    sandbox = parser.add_mutually_exclusive_group()
    sandbox.add_argument("--sandboxed", dest="sandboxed", action="store_true")
    sandbox.add_argument("--unsandboxed", dest="sandboxed", action="store_false")
    parser.set_defaults(sandboxed=SANDBOXED)
    parser.add_argument("--ledger-url")
    args = parser.parse_args()
    asyncio.run(_main(args))
    sys.stdout.flush()
    os._exit(0)  # the SDK can crash at interpreter exit (sdk-python#300)


if __name__ == "__main__":
    main()
