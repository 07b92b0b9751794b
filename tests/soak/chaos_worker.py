"""A worker whose ledger misbehaves on purpose: test code only.

`python -m tests.soak.chaos_worker` runs the transfer workflow and the real
activities over a ledger wrapper that, by seeded chance, fails before the
commit, fails after the commit (the reply is lost), or stalls past the step's
start-to-close timeout. Every fault is logged as a line `FAULT <kind> <key>`
so the soak harness can count them. Settings as for worker.py, plus
SOAK_SEED and SOAK_FAULT_RATE (each kind's probability).
"""

import asyncio
import os
import random
import time
from decimal import Decimal
from typing import Any

from app.config import Settings
from app.temporal import connect
from ledger import LedgerStore, Receipt, open_store
from tests.workflows.conftest import transfer_worker
from workflows.transfer import FORWARD


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

    def debit(self, key: str, account_id: str, amount: Decimal) -> Receipt:
        return self._chaos(key, lambda: self._store.debit(key, account_id, amount))

    def credit(self, key: str, account_id: str, amount: Decimal) -> Receipt:
        return self._chaos(key, lambda: self._store.credit(key, account_id, amount))

    def reverse(self, key: str, *, original_key: str) -> Receipt:
        return self._chaos(key, lambda: self._store.reverse(key, original_key=original_key))


async def main() -> None:
    settings = Settings.from_env()
    rng = random.Random(f"{os.environ.get('SOAK_SEED', '0')}-{os.getpid()}")
    rate = float(os.environ.get("SOAK_FAULT_RATE", "0.05"))
    store = ChaosLedger(open_store(settings.ledger_url), rng, rate)
    client = await connect()
    async with transfer_worker(client, store, task_queue=settings.task_queue):
        print("Worker running (chaos)", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
