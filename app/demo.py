"""`python starter.py demo`: the three classic scenarios, one across currencies, then two banks.

Self-contained: it uses the Temporal server that answers (or starts the
embedded one), runs its own worker in-process on a task queue of its own
(so no other worker with another ledger can take its tasks), and keeps its
ledger in a fresh file.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from temporalio.client import Client

from app import render
from app.config import BANK_CLEARING_OWNER, Settings
from app.temporal import configured_server_answers, server_client
from app.transfers import TransferOutcome, describe_request, start_transfer, wait_outcome
from app.worker import running_bank_workers, running_worker
from ledger import LedgerStore, open_store
from ledger.audit import audit_banks
from workflows.banks import bank_task_queue
from workflows.contract import TransferRequest
from workflows.transfer import TransferWorkflow

ACCOUNTS = [
    ("ACC-001", "Alice", Decimal("1000.00")),
    ("ACC-002", "Bob", Decimal("500.00")),
    ("ACC-003", "Charlie", Decimal("750.00")),
]

SCENARIOS = [
    ("Successful transfer", "ACC-001", "ACC-002", "150.00"),
    ("Insufficient funds: the debit is refused, nothing moves", "ACC-002", "ACC-003", "1000.00"),
    (
        "The credit fails after the debit succeeded (no such account): compensated",
        "ACC-001",
        "ACC-999",
        "200.00",
    ),
]

#: An account in another currency: a transfer to it is refused before any posting.
FOREIGN_ACCOUNT = ("ACC-004", "Dora", Decimal("300.00"), "EUR")

#: The demo's two banks: one account each.
DEMO_BANKS = [
    ("north", "NORTH-001", "Alice", Decimal("1000.00")),
    ("south", "SOUTH-001", "Dave", Decimal("50.00")),
]

RULE = "=" * 72
#: A scenario that takes longer is reported, not waited for forever.
SCENARIO_TIMEOUT_SECONDS = 60


async def run_demo(settings: Settings) -> int:
    """Run the demo; exit 0 when every scenario ended the way it should."""
    path = settings.data_dir / "demo-ledger.db"
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    store = open_store(str(path))
    for account_id, owner, balance in ACCOUNTS:
        store.open_account(account_id, owner, balance)
    foreign_id, foreign_owner, foreign_balance, currency = FOREIGN_ACCOUNT
    store.open_account(foreign_id, foreign_owner, foreign_balance, currency=currency)
    print(f"{RULE}\nSAGA DEMO: money transfers on Temporal\n{RULE}")
    print(
        f"Demo ledger: {path}\n\nOpening balances:\n{render.balance_table(store.list_accounts())}"
    )

    run = uuid.uuid4().hex[:6]
    task_queue = f"{settings.task_queue}-demo-{run}"
    expected = ["completed", "compensated", "compensated", "compensated"]
    outcomes: list[TransferOutcome] = []
    embedded = not await configured_server_answers()
    async with server_client(settings, dev=True) as client:
        async with running_worker(client, store, task_queue=task_queue):
            for number, (title, source, destination, amount) in enumerate(SCENARIOS, start=1):
                print(f"\n{RULE}\nSCENARIO {number}: {title}\n{RULE}")
                request = TransferRequest(
                    source_account=source, destination_account=destination, amount=amount
                )
                transfer_id = f"demo-{run}-{number}"
                outcomes.append(
                    await _run_scenario(client, settings, store, request, transfer_id, task_queue)
                )
            outcomes.append(await _across_currencies(client, store, f"demo-{run}-x", task_queue))
        expected.append("completed")
        outcomes.append(await _cross_bank(client, settings, run, task_queue))

    ok = [o.status for o in outcomes] == expected
    print(f"\n{RULE}")
    print("Demo finished: every scenario ended as expected." if ok else "Demo: UNEXPECTED outcome.")
    print(_where_the_links_work(settings, embedded=embedded))
    return 0 if ok else 1


def _where_the_links_work(settings: Settings, *, embedded: bool) -> str:
    """The Web UI links above outlive the demo only with a server holding its history."""
    if not embedded:
        return (
            f"The Web UI links above show the transfers at {settings.ui_url} "
            "while the Temporal server the demo used runs."
        )
    return (
        "The demo's Temporal dev server has stopped, so the Web UI links above answer only "
        f"while a server with its state ({settings.data_dir / 'temporal.db'}) runs: "
        "`make worker` (python worker.py --dev) serves it, with the Web UI at "
        f"{settings.ui_url}."
    )


async def _cross_bank(
    client: Client, settings: Settings, run: str, task_queue: str
) -> TransferOutcome:
    """Two banks, each with its own ledger and its own worker: Alice at north pays Dave at south."""
    print(f"\n{RULE}\nSCENARIO 4: Between two banks, each with its own ledger and worker\n{RULE}")
    stores = {}
    for bank, account_id, owner, balance in DEMO_BANKS:
        path = settings.data_dir / f"demo-ledger-{bank}.db"
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        stores[bank] = open_store(str(path), clearing_owner=BANK_CLEARING_OWNER)
        stores[bank].open_account(account_id, owner, balance)
        queue = bank_task_queue(bank, f"{task_queue}-banks")
        print(f"Bank {bank}: ledger {path}, its steps on task queue {queue}")
    request = TransferRequest(
        source_account="NORTH-001",
        destination_account="SOUTH-001",
        amount=Decimal("120.00"),
        source_bank="north",
        destination_bank="south",
    )
    bank_queue = f"{task_queue}-banks"
    async with running_bank_workers(client, stores, task_queue=bank_queue):
        outcome = await _run_scenario(client, settings, None, request, f"demo-{run}-4", bank_queue)
    for bank, store in stores.items():
        print(f"\n{render.balance_table(store.list_accounts(), bank)}")
    report = audit_banks({bank: store.snapshot() for bank, store in stores.items()})
    positions = ", ".join(f"{p.bank} {p.clearing:+,} {p.currency}" for p in report.positions)
    print(
        f"\nSettlement positions (each bank's clearing): {positions}; they net to zero: "
        + ("yes" if report.ok else f"NO: {report.findings}")
    )
    return outcome if report.ok else TransferOutcome(outcome.transfer_id, "audit failed")


async def _across_currencies(
    client: Client, store: LedgerStore, transfer_id: str, task_queue: str
) -> TransferOutcome:
    """One line: USD to a EUR account, started as a hand-written request would be, is refused.

    The request names no currency, so nothing stops it before the workflow:
    its debit refuses it, and the ledger shows that nothing was posted.
    """
    request = TransferRequest(
        source_account="ACC-001", destination_account=FOREIGN_ACCOUNT[0], amount="50.00"
    )
    handle, _ = await start_transfer(
        client, request, transfer_id=transfer_id, task_queue=task_queue
    )
    outcome = await asyncio.wait_for(wait_outcome(handle), SCENARIO_TIMEOUT_SECONDS)
    posted = [
        r for r in store.receipts() if r.key.startswith(f"{transfer_id}/") and r.kind != "void"
    ]
    print(
        f"\nAcross currencies: {describe_request(request)} refused before any posting "
        f"({outcome.error_message} [{outcome.error_type}]; postings: {len(posted) or 'none'})"
    )
    if outcome.error_type != "CurrencyMismatch" or posted:
        return TransferOutcome(transfer_id, "currencies mixed")
    return outcome


async def _run_scenario(
    client: Client,
    settings: Settings,
    store: LedgerStore | None,
    request: TransferRequest,
    transfer_id: str,
    task_queue: str,
) -> TransferOutcome:
    print(f"Starting transfer {transfer_id}: {describe_request(request)}")
    handle, _ = await start_transfer(
        client, request, transfer_id=transfer_id, task_queue=task_queue
    )
    try:
        outcome = await asyncio.wait_for(wait_outcome(handle), SCENARIO_TIMEOUT_SECONDS)
    except TimeoutError:
        print(
            f"Transfer {transfer_id} did not finish in {SCENARIO_TIMEOUT_SECONDS}s; see the Web UI."
        )
        return TransferOutcome(transfer_id, "unfinished")
    print(("OK  " if outcome.ok else "FAILED  ") + render.outcome_line(outcome))
    state = await handle.query(TransferWorkflow.state)
    print(render.state_text(state))
    print(f"  Web UI: {settings.workflow_url(client.namespace, transfer_id)}")
    if store is not None:
        print(f"\nBalances:\n{render.balance_table(store.list_accounts())}")
    return outcome
