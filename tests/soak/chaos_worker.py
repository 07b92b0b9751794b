"""A worker whose ledger misbehaves on purpose: test code only.

`python -m tests.soak.chaos_worker` runs the transfer workflow and the real
activities over a ledger wrapper that, by seeded chance, fails before the
commit, fails after the commit (the reply is lost), or stalls past the step's
start-to-close timeout. Every fault is logged as a line `FAULT <kind> <key>`
so the soak harness can count them. Settings as for worker.py, plus
SOAK_SEED and SOAK_FAULT_RATE (each kind's probability), and SOAK_ROLE:
``all`` (default: workflows and activities on one ledger), ``workflows``, or
``bank:<name>`` (that bank's steps over its ledger, with TRANSFER_BANKS).
"""

import asyncio
import contextlib
import os
import random
import time
from decimal import Decimal
from typing import Any

from app.config import Settings
from app.temporal import connect
from app.worker import running_bank_worker, running_workflow_worker
from ledger import LedgerStore, Receipt
from tests.support.workers import transfer_worker
from workflows.steps import FORWARD


class ChaosLedger:
    """A LedgerStore whose writes fail or stall by chance."""

    def __init__(self, store: LedgerStore, rng: random.Random, rate: float) -> None:
        self._store = store
        self._rng = rng
        self._rate = rate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _chaos(self, key: str, write: Any) -> Receipt:
        roll = self._rng.random()
        if roll < self._rate:
            print(f"FAULT before-commit {key}", flush=True)
            raise RuntimeError("injected: database went away before commit")
        receipt: Receipt = write()
        if roll < 2 * self._rate:
            print(f"FAULT after-commit {key}", flush=True)
            raise RuntimeError("injected: reply lost after commit")
        if roll < 2.3 * self._rate:
            print(f"FAULT slow {key}", flush=True)
            time.sleep(FORWARD.start_to_close.total_seconds() + 1)
        return receipt

    def debit(self, key: str, account_id: str, amount: Decimal, **extra: Any) -> Receipt:
        return self._chaos(key, lambda: self._store.debit(key, account_id, amount, **extra))

    def credit(self, key: str, account_id: str, amount: Decimal, **extra: Any) -> Receipt:
        return self._chaos(key, lambda: self._store.credit(key, account_id, amount, **extra))

    def reverse(self, key: str, *, original_key: str) -> Receipt:
        return self._chaos(key, lambda: self._store.reverse(key, original_key=original_key))


async def main() -> None:
    settings = Settings.from_env()
    rng = random.Random(f"{os.environ.get('SOAK_SEED', '0')}-{os.getpid()}")
    rate = float(os.environ.get("SOAK_FAULT_RATE", "0.05"))
    role = os.environ.get("SOAK_ROLE", "all")
    client = await connect()
    running: contextlib.AbstractAsyncContextManager[Any]
    if role == "workflows":
        running = running_workflow_worker(client, task_queue=settings.task_queue)
    elif role.startswith("bank:"):
        bank = role.removeprefix("bank:")
        store = ChaosLedger(settings.open_ledger(bank), rng, rate)
        running = running_bank_worker(
            client,
            store,  # type: ignore[arg-type]
            bank=bank,
            workflow_task_queue=settings.task_queue,
        )
    else:
        store = ChaosLedger(settings.open_ledger(), rng, rate)
        running = transfer_worker(client, store, task_queue=settings.task_queue)  # type: ignore[arg-type]
    async with running:
        print(f"Worker running (chaos, {role})", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
