"""Baseline: the two-step transfer as a plain DBOS workflow, system database on SQLite.

One process launches DBOS Transact with its system database in a fresh SQLite
file, then runs transfers as async DBOS workflows started from asyncio: a debit
step then a credit step, each a blocking call to the project's own ledger run
in a worker thread. DBOS checkpoints the workflow and each step in its system
database; the ledger is idempotent by key, so a recovered step is safe.

It is the plain two-step workflow, not the saga: there is no compensation (a
failed credit leaves the money in clearing), no fraud check, no signals and no
queue. It measures what durable execution costs when the library runs in the
same process as the ledger work, as a baseline beside the Temporal numbers.

Usage: ``python -m bench.dbos_transfer --transfers N --concurrency C
--ledger-url sqlite:///ledger.db --data-dir DIR --accounts A,B --out result.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from decimal import Decimal
from pathlib import Path

from dbos import DBOS, DBOSConfig, SetWorkflowID

from bench.measure import Meter, PhaseResult, drive, pair
from ledger import LedgerStore, Receipt, open_store

#: The system database's file name inside --data-dir.
SYSTEM_DB_FILE = "dbos_system.sqlite"

#: The one ledger store of this process, opened in `main`.
_ledger: LedgerStore | None = None


def _store() -> LedgerStore:
    """The process's ledger store.

    Raises:
        RuntimeError: `main` has not opened it yet.
    """
    if _ledger is None:
        raise RuntimeError("The ledger store is not open")
    return _ledger


@DBOS.step()
async def debit(transfer_id: str, account_id: str, amount: Decimal) -> Receipt:
    """Move `amount` from the source account to clearing."""
    return await asyncio.to_thread(_store().debit, f"{transfer_id}/debit", account_id, amount)


@DBOS.step()
async def credit(transfer_id: str, account_id: str, amount: Decimal) -> Receipt:
    """Move `amount` from clearing to the destination account."""
    return await asyncio.to_thread(_store().credit, f"{transfer_id}/credit", account_id, amount)


@DBOS.workflow()
async def transfer(transfer_id: str, source: str, destination: str, amount: Decimal) -> str:
    """Debit the source, then credit the destination; the credit's posting key."""
    await debit(transfer_id, source, amount)
    receipt = await credit(transfer_id, destination, amount)
    return receipt.key


def _launch_dbos(data_dir: Path) -> None:
    """Launch DBOS with a fresh SQLite system database in `data_dir`, quietly."""
    data_dir.mkdir(parents=True, exist_ok=True)
    system_db = (data_dir / SYSTEM_DB_FILE).resolve()
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{system_db}{suffix}").unlink(missing_ok=True)
    config: DBOSConfig = {
        "name": "bench-dbos-transfer",
        "system_database_url": f"sqlite:///{system_db}",
        "log_level": "WARNING",
        "enable_otlp": False,
    }
    DBOS(config=config)
    DBOS.launch()


async def _run(args: argparse.Namespace) -> PhaseResult:
    """Run the warmup transfers, then the measured phase."""
    accounts: list[str] = args.accounts
    amount: Decimal = args.amount
    run = uuid.uuid4().hex[:12]

    async def one(transfer_id: str, index: int) -> str:
        source, destination = pair(accounts, index)
        try:
            with SetWorkflowID(transfer_id):
                handle = await DBOS.start_workflow_async(
                    transfer, transfer_id, source, destination, amount
                )
            await handle.get_result()
        except Exception as err:
            return type(err).__name__
        return "completed"

    async def warm_one(index: int) -> str:
        return await one(f"dbos-{run}-warmup-{index}", index)

    async def run_one(index: int) -> str:
        return await one(f"dbos-{run}-{index}", index)

    if args.warmup > 0:
        await drive(
            warm_one,
            transfers=args.warmup,
            concurrency=min(args.concurrency, args.warmup),
            meter=Meter(os.getpid()),
        )
    return await drive(
        run_one,
        transfers=args.transfers,
        concurrency=args.concurrency,
        meter=Meter(os.getpid()),
    )


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.dbos_transfer",
        description="Run the two-step transfer as a plain DBOS workflow and time it.",
    )
    parser.add_argument("--transfers", type=int, required=True, help="measured transfers")
    parser.add_argument("--concurrency", type=int, required=True, help="transfers in flight")
    parser.add_argument("--ledger-url", required=True, help="the ledger, e.g. sqlite:///l.db")
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="where DBOS's system database goes"
    )
    parser.add_argument(
        "--accounts",
        type=lambda text: [a for a in text.split(",") if a],
        required=True,
        help="comma-separated open accounts, used as a ring",
    )
    parser.add_argument("--amount", type=Decimal, default=Decimal("1.00"), help="per transfer")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON result goes")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured transfers first")
    args = parser.parse_args(argv)
    if args.transfers < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--transfers and --concurrency must be >= 1, --warmup >= 0")
    if len(args.accounts) < 2:
        parser.error("--accounts needs at least two accounts")
    return args


def main(argv: list[str] | None = None) -> None:
    """Launch DBOS, run the phase, write its result, shut DBOS down."""
    global _ledger
    args = _parse_args(argv)
    _ledger = open_store(args.ledger_url)
    _launch_dbos(args.data_dir)
    try:
        result = asyncio.run(_run(args))
    finally:
        DBOS.destroy()
        _ledger.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result.to_json()) + "\n")


if __name__ == "__main__":
    main()
