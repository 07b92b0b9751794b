"""A worker that kills its own process at a chosen point: test code, not production.

`python -m tests.e2e.fault_worker FAULT` serves the transfer workflow and the
real ledger activities (LEDGER_URL, TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE as
for worker.py), except that one activity dies with SIGKILL:

- ``kill-before-credit``: the credit, before it touches the ledger (the debit
  has committed).
- ``kill-after-debit-commit``: the debit, right after its ledger transaction
  committed and before the completion reaches Temporal.
"""

import asyncio
import os
import signal
import sys

from temporalio import activity

from activities import LedgerActivities, StepInput, StepResult
from app.config import Settings
from app.temporal import connect
from ledger import open_store
from tests.support.workers import transfer_worker


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


async def main(fault: str) -> None:
    settings = Settings.from_env()
    store = open_store(settings.ledger_url)
    real = LedgerActivities(store)

    @activity.defn(name="credit")
    def credit_then_die(step: StepInput) -> StepResult:
        _die()
        raise AssertionError("unreachable")

    @activity.defn(name="debit")
    def debit_then_die(step: StepInput) -> StepResult:
        real.debit(step)
        _die()
        raise AssertionError("unreachable")

    replacement = {
        "kill-before-credit": {"credit": credit_then_die},
        "kill-after-debit-commit": {"debit": debit_then_die},
    }[fault]
    client = await connect()
    async with transfer_worker(client, store, task_queue=settings.task_queue, **replacement):
        print(f"Worker running (fault: {fault})", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
