"""Client and worker in one process: the low-latency mode's setting (eager start needs it).

    python -m bench.inprocess --task-queue Q --mode default|low-latency
        --ledger-url URL --accounts A,B,... --transfers N --concurrency C
        --prefix ID --out result.json [--warmup W]

Runs its own worker (the project's), starts transfers from the same client
and meters this process, so its CPU includes the client's share. Writes a
`PhaseResult` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

from app.temporal import connect
from app.transfers import start_transfer, wait_outcome
from app.worker import running_worker
from bench.measure import Meter, PhaseResult, drive, pair
from ledger import open_store
from workflows.contract import TransferRequest


async def _main(args: argparse.Namespace) -> PhaseResult:
    client = await connect()
    store = open_store(args.ledger_url)
    accounts = args.accounts.split(",")
    low_latency = args.mode == "low-latency"

    async def run_one(index: int, prefix: str = args.prefix) -> str:
        source, destination = pair(accounts, index)
        request = TransferRequest(
            source_account=source, destination_account=destination, amount=Decimal(args.amount)
        )
        handle, _ = await start_transfer(
            client,
            request,
            transfer_id=f"{prefix}-{index}",
            task_queue=args.task_queue,
            low_latency=low_latency,
            eager=low_latency,
        )
        return (await wait_outcome(handle)).status

    async with running_worker(client, store, task_queue=args.task_queue):
        for index in range(args.warmup):
            await run_one(index, f"{args.prefix}-warmup")
        result = await drive(
            run_one,
            transfers=args.transfers,
            concurrency=args.concurrency,
            meter=Meter(os.getpid()),
        )
    store.close()
    return result


def main() -> None:
    """Parse the options, run the phase, write the result."""
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--mode", choices=["default", "low-latency"], required=True)
    parser.add_argument("--ledger-url", required=True)
    parser.add_argument("--accounts", required=True)
    parser.add_argument("--amount", default="1.00")
    parser.add_argument("--transfers", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(_main(args))
    Path(args.out).write_text(json.dumps(result.to_json()))
    sys.stdout.flush()
    os._exit(0)  # the SDK can crash at interpreter exit (sdk-python#300)


if __name__ == "__main__":
    main()
