"""The bank soak test: `make soak`, and a bounded run in `make test`.

Like Jepsen's bank workload: K accounts with known opening balances, C
clients starting random transfers (some too large, some to a missing account,
some cancelled mid-flight) while a reader snapshots every balance, and faults
injected all along from a printed seed: workers SIGKILLed and replaced, ledger
calls failing before and after their commit or stalling past their timeout,
the Temporal server restarted. At the end every transfer's outcome is checked
against the ledger, the audit must be clean, and the final balances must equal
the ones rebuilt from the outcomes alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from app.config import BANK_CLEARING_OWNER
from app.processes import free_port, start_process
from app.temporal import register_search_attributes, temporal_cli
from app.transfers import TransferOutcome, start_transfer, wait_outcome
from ledger import AccountKind, LedgerStore, open_store
from ledger.audit import audit, audit_banks, group_across_banks
from tests.keys import TEST_CONVERTER, TEST_KEYS
from workflows.banks import bank_of
from workflows.contract import TransferRequest, TransferStatus
from workflows.transfer import TransferWorkflow

ROOT = Path(__file__).resolve().parents[2]
OPENING = Decimal("1000.00")
TASK_QUEUE = "soak"


@dataclass
class SoakConfig:
    """How big and how hostile a run is."""

    transfers: int = 200
    clients: int = 6
    accounts: int = 8
    seed: int = field(default_factory=lambda: random.randrange(1_000_000))
    duration: float | None = None  # stop starting transfers after this many seconds
    ledger_url: str | None = None
    workers: int = 2
    fault_rate: float = 0.04  # per ledger write, for each of: before commit, after commit
    kill_every: tuple[float, float] = (2.0, 6.0)
    restart_server: bool = True
    deadline_seconds: int = 90
    settle_timeout: float = 240
    #: Several banks (``("north", "south")``): a ledger and a worker per bank, a
    #: workflow worker of its own, accounts spread over the banks, and any of
    #: those workers killed at a time. Empty: one ledger, `workers` workers.
    banks: tuple[str, ...] = ()


@dataclass
class SoakReport:
    """What happened and whether every invariant held."""

    seed: int
    transfers: int
    seconds: float
    outcomes: dict[str, int]
    faults: dict[str, int]
    snapshots: int
    checks: int
    violations: list[str]

    @property
    def ok(self) -> bool:
        """No invariant was violated."""
        return not self.violations

    def text(self) -> str:
        """The final report, for people."""
        lines = [
            f"Soak seed {self.seed}: {self.transfers} transfers in {self.seconds:.0f} s",
            "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            "  faults:   " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())),
            f"  checks:   {self.checks} ({self.snapshots} balance snapshots)",
            f"  violations: {len(self.violations)}",
        ]
        lines += [f"    - {v}" for v in self.violations[:50]]
        return "\n".join(lines)


@dataclass
class _Planned:
    transfer_id: str
    request: TransferRequest
    cancel_after: float | None


class _Run:
    """One soak run's processes, clients and bookkeeping."""

    def __init__(self, config: SoakConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ledger_url = config.ledger_url or f"sqlite:///{workdir / 'ledger.db'}"
        template = config.ledger_url or f"sqlite:///{workdir / 'ledger-{bank}.db'}"
        self.bank_urls = {bank: template.replace("{bank}", bank) for bank in config.banks}
        self.server: asyncio.subprocess.Process | None = None
        self.workers: list[tuple[str, asyncio.subprocess.Process]] = []
        self.faults: Counter[str] = Counter()
        self.violations: list[str] = []
        self.snapshots = 0
        self.checks = 0
        self.started = 0
        self.settled = 0
        self.worker_logs = 0
        self.kill_order: list[str] = []

    # -- processes ------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        banks = {"TRANSFER_BANKS": ",".join(self.config.banks)} | {
            f"LEDGER_URL_{bank.upper()}": url for bank, url in self.bank_urls.items()
        }
        return (
            os.environ
            | banks
            | {
                "TEMPORAL_ADDRESS": self.address,
                "LEDGER_URL": self.ledger_url,
                "TEMPORAL_TASK_QUEUE": TASK_QUEUE,
                "TRANSFER_DATA_DIR": str(self.workdir),
                "TRANSFER_ENCRYPTION_KEYS": TEST_KEYS,
                "PYTHONPATH": str(ROOT),
                "SOAK_SEED": str(self.config.seed),
                "SOAK_FAULT_RATE": str(self.config.fault_rate),
            }
        )

    async def _spawn(
        self, args: list[str], log: Path, ready: str, env: dict[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        return await start_process(
            args, log=log, ready=ready, env=self._env() | (env or {}), cwd=self.workdir
        )

    async def start_server(self) -> None:
        args = ["server", "start-dev", "--headless", "--port", str(self.port)]
        args += ["--db-filename", str(self.workdir / "temporal.db"), "--log-level", "error"]
        self.server = await self._spawn(
            [temporal_cli(), *args],
            self.workdir / f"server-{self.faults['server restarts']}.log",
            "Server:",
        )

    async def stop_server(self) -> None:
        if self.server is not None and self.server.returncode is None:
            self.server.terminate()
            await self.server.wait()

    def roles(self) -> list[str]:
        """What each worker process runs: everything, or the workflows and one per bank."""
        if not self.config.banks:
            return ["all"] * self.config.workers
        return ["workflows", *(f"bank:{bank}" for bank in self.config.banks)]

    async def start_worker(self, role: str) -> None:
        self.worker_logs += 1
        worker = await self._spawn(
            [sys.executable, "-m", "tests.soak.chaos_worker"],
            self.workdir / f"worker-{self.worker_logs}.log",
            "Worker running",
            {"SOAK_ROLE": role},
        )
        self.workers.append((role, worker))

    def next_victim(self) -> int:
        """Which worker dies next: any of them, or with split roles, each role in turn.

        With split roles a free random pick can land on the same process every
        time (four kills, all of the workflow worker, left both banks untouched
        in one CI run). So roles die in rounds, each round in a seeded random
        order, the first round taking the bank workers (where ledger calls are
        in flight) before the workflow worker: every kill after the first round
        starts still reaches every role, and even one kill reaches a bank.
        """
        if not self.config.banks:
            return self.rng.randrange(len(self.workers))
        if not self.kill_order:
            roles = self.rng.sample(self.roles(), len(self.roles()))
            if self.faults["worker SIGKILLs"] == 0:  # first round: banks first
                roles.sort(key=lambda role: not role.startswith("bank:"))
            self.kill_order = roles
        role = self.kill_order.pop(0)
        return next(n for n, (held, _) in enumerate(self.workers) if held == role)

    async def kill_worker(self) -> None:
        role, victim = self.workers.pop(self.next_victim())
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        self.faults["worker SIGKILLs"] += 1
        if role != "all":
            self.faults[f"SIGKILLs {role.replace(':', ' ')}"] += 1
        await self.start_worker(role)

    async def stop_workers(self) -> None:
        for _, worker in self.workers:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
        for _, worker in self.workers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.wait(), 30)

    # -- load -------------------------------------------------------------------------

    def plan(self, accounts: list[str]) -> list[_Planned]:
        plans = []
        for n in range(self.config.transfers):
            source, destination = self.rng.sample(accounts, 2)
            # Most transfers stay in one currency; about one in ten crosses
            # (refused: it must never complete, and moves nothing for good).
            if self.rng.random() >= 0.1:
                destination = self.rng.choice(
                    [a for a in accounts if a != source and currency_of(a) == currency_of(source)]
                )
            # Half name their currency (as the starter does), half do not.
            named = {"currency": currency_of(source)} if self.rng.random() < 0.5 else {}
            roll = self.rng.random()
            if roll < 0.07:
                destination = f"{destination.split('-')[0]}-MISSING"
            amount = Decimal(self.rng.randint(1, 30_000)) / 100  # some exceed what is left
            cancel_after = self.rng.uniform(0, 0.3) if self.rng.random() < 0.07 else None
            routing = (
                {
                    "source_bank": bank_of(source, self.config.banks),
                    "destination_bank": bank_of(destination, self.config.banks),
                }
                if self.config.banks
                else {}
            )
            request = TransferRequest(
                source_account=source,
                destination_account=destination,
                amount=amount,
                deadline_seconds=self.config.deadline_seconds,
                **routing,
                **named,
            )
            plans.append(_Planned(f"soak-{self.config.seed}-{n}", request, cancel_after))
        return plans

    async def client(self) -> Client:
        for _ in range(120):
            try:
                return await Client.connect(self.address, data_converter=TEST_CONVERTER)
            except RuntimeError:
                await asyncio.sleep(0.5)
        raise RuntimeError("cannot reach the soak server")

    async def run_client(
        self, client: Client, queue: asyncio.Queue[_Planned], deadline: float
    ) -> None:
        while not queue.empty() and time.monotonic() < deadline:
            plan = queue.get_nowait()
            handle = await _retry(
                lambda plan=plan: start_transfer(
                    client, plan.request, transfer_id=plan.transfer_id, task_queue=TASK_QUEUE
                )
            )
            self.started += 1
            if plan.cancel_after is not None:
                await asyncio.sleep(plan.cancel_after)
                with contextlib.suppress(RPCError):
                    await handle[0].cancel()
                self.faults["client cancels"] += 1

    async def chaos(self, stop: asyncio.Event) -> None:
        """Kill a worker every few seconds until the run ends; restart the server once."""
        restarted = False
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(*self.config.kill_every))
            if stop.is_set():
                break
            halfway = self.started >= self.config.transfers * 0.4
            if self.config.restart_server and not restarted and halfway:
                restarted = True
                await self.stop_server()
                self.faults["server restarts"] += 1
                await self.start_server()
            else:
                await self.kill_worker()

    async def reader(self, stores: dict[str, LedgerStore], stop: asyncio.Event) -> None:
        """Snapshot every balance every 50 ms: each must be whole at every instant.

        The database itself keeps the sum at zero and customers non-negative;
        what it cannot see is money entering or leaving the bank: with the
        accounts opened before the run and no operator settling anything,
        EXTERNAL must not move at all while it runs.
        """
        external: dict[tuple[str, str], Decimal] = {}
        while not stop.is_set():
            for bank, store in stores.items():
                accounts = await asyncio.to_thread(store.list_accounts)
                self.snapshots += 1
                self.checks += 3
                where = f"snapshot {self.snapshots}" + (f" of {bank}" if bank else "")
                for currency in CURRENCIES:  # each currency sums to zero on its own
                    total = sum(a.balance for a in accounts if a.currency == currency)
                    if total != 0:
                        self.violations.append(f"{where} sums to {total} {currency}")
                for outside in (a for a in accounts if a.kind == AccountKind.EXTERNAL):
                    first = external.setdefault((bank, outside.currency), outside.balance)
                    if first != outside.balance:
                        self.violations.append(
                            f"{where}: EXTERNAL {outside.currency} moved from {first} "
                            f"to {outside.balance}"
                        )
                for account in accounts:
                    if account.kind == AccountKind.CUSTOMER and account.balance < 0:
                        self.violations.append(f"{where}: {account.id} negative")
            await asyncio.sleep(0.05)

    async def progress(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            print(
                f"  started {self.started}/{self.config.transfers}, settled {self.settled}, "
                f"faults {dict(self.faults)}",
                flush=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)

    async def settle(self, client: Client, plans: list[_Planned]) -> dict[str, str]:
        """Wait for every started transfer; return its outcome (or needs_attention)."""
        outcomes: dict[str, str] = {}

        async def one(plan: _Planned) -> None:
            handle: WorkflowHandle[Any, Any] = client.get_workflow_handle_for(
                TransferWorkflow.run, plan.transfer_id
            )
            try:
                outcome: TransferOutcome = await asyncio.wait_for(
                    _retry(lambda: wait_outcome(handle)), self.config.settle_timeout
                )
                outcomes[plan.transfer_id] = outcome.status
            except TimeoutError:
                state = await handle.query(TransferWorkflow.state)
                outcomes[plan.transfer_id] = state.status.value
            self.settled += 1

        await asyncio.gather(*(one(p) for p in plans))
        return outcomes

    # -- checks -------------------------------------------------------------------------

    def verify(
        self, stores: dict[str, LedgerStore], plans: list[_Planned], outcomes: dict[str, str]
    ) -> None:
        snapshots = {bank: store.snapshot() for bank, store in stores.items()}
        if self.config.banks:
            report: Any = audit_banks(snapshots)
        else:
            report = audit(*snapshots[""])
        # Customer accounts are unique across banks; each bank has its own CLEARING.
        accounts = [a for accs, _ in snapshots.values() for a in accs]
        self.checks += 5
        parked = {t for t, o in outcomes.items() if o == TransferStatus.NEEDS_ATTENTION}
        for finding in report.findings:
            self.violations.append(f"audit: {finding}")
        # (A key applied twice is the audit's to find: one ledger refuses a
        # second posting under a key, so only a step posted at two banks, or
        # under another key, could be; the audit names both.)
        groups = group_across_banks(snapshots)
        expected: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
        for plan in plans:
            if plan.transfer_id not in outcomes:
                continue
            self.checks += 1
            outcome = outcomes[plan.transfer_id]
            ledger = groups[plan.transfer_id].outcome if plan.transfer_id in groups else "rejected"
            crossing = currency_of(plan.request.source_account) != currency_of(
                plan.request.destination_account
            )
            if crossing and outcome not in ("compensated", "cancelled"):
                self.violations.append(f"{plan.transfer_id}: across currencies, {outcome}")
            if outcome == "completed":
                if ledger != "completed":
                    self.violations.append(f"{plan.transfer_id}: completed, ledger says {ledger}")
                expected[plan.request.source_account] -= plan.request.amount
                expected[plan.request.destination_account] += plan.request.amount
            elif outcome == TransferStatus.NEEDS_ATTENTION:
                if ledger != "in_flight":
                    self.violations.append(f"{plan.transfer_id}: parked but ledger says {ledger}")
            elif ledger not in ("compensated", "rejected"):
                self.violations.append(f"{plan.transfer_id}: {outcome}, ledger says {ledger}")
        for currency in CURRENCIES:
            clearing = sum(
                (a.balance for a in accounts if a.id == "CLEARING" and a.currency == currency),
                Decimal("0.00"),
            )
            held = sum(
                (
                    groups[t].in_clearing
                    for t in parked
                    if t in groups and groups[t].currency == currency
                ),
                Decimal("0.00"),
            )
            self.checks += 1
            if clearing != held:
                self.violations.append(
                    f"clearing holds {clearing} {currency}, parked transfers {held}"
                )
        self.checks += 1
        for account in accounts:
            if account.kind != AccountKind.CUSTOMER:
                continue
            rebuilt = OPENING + expected[account.id]
            for t in parked:
                plan = next(p for p in plans if p.transfer_id == t)
                if plan.request.source_account == account.id:
                    rebuilt -= groups[t].in_clearing
            if rebuilt != account.balance:
                self.violations.append(
                    f"{account.id}: balance {account.balance}, rebuilt from outcomes {rebuilt}"
                )

    def count_worker_faults(self) -> None:
        for log in self.workdir.glob("worker-*.log"):
            for line in log.read_text().splitlines():
                if line.startswith("FAULT "):
                    self.faults["ledger " + line.split()[1]] += 1


#: The soak's two currencies: accounts alternate between them by number.
CURRENCIES = ("USD", "EUR")


def currency_of(account_id: str) -> str:
    """USD for even account numbers, EUR for odd ones (a missing account: USD)."""
    number = account_id.rsplit("-", 1)[-1]
    return CURRENCIES[int(number) % 2] if number.isdigit() else CURRENCIES[0]


async def _retry(call: Any, attempts: int = 60) -> Any:
    """Retry a client call through a server restart (starting again attaches: it is safe)."""
    for attempt in range(attempts):
        try:
            return await call()
        except (RPCError, RuntimeError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def run_soak(config: SoakConfig, workdir: Path) -> SoakReport:
    """Run one soak and return its report (violations empty when every invariant held)."""
    print(f"Soak seed {config.seed} (replay with --seed {config.seed})", flush=True)
    began = time.monotonic()
    run = _Run(config, workdir)
    if config.banks:
        stores = {
            bank: open_store(url, clearing_owner=BANK_CLEARING_OWNER, migrate=True)
            for bank, url in run.bank_urls.items()
        }
        codes = [bank.upper() for bank in config.banks]
        accounts = [f"{codes[n % len(codes)]}-{n:02d}" for n in range(config.accounts)]
    else:
        stores = {"": open_store(run.ledger_url, migrate=True)}
        accounts = [f"SOAK-{n:02d}" for n in range(config.accounts)]
    for account_id in accounts:
        bank = bank_of(account_id, config.banks) if config.banks else ""
        stores[bank].open_account(
            account_id, f"Soak {account_id}", OPENING, currency=currency_of(account_id)
        )
    await run.start_server()
    stop = asyncio.Event()
    try:
        client = await run.client()
        await register_search_attributes(client)
        for role in run.roles():
            await run.start_worker(role)
        plans = run.plan(accounts)
        queue: asyncio.Queue[_Planned] = asyncio.Queue()
        for plan in plans:
            queue.put_nowait(plan)
        until = time.monotonic() + (config.duration or float("inf"))
        background = [
            asyncio.create_task(run.chaos(stop)),
            asyncio.create_task(run.reader(stores, stop)),
            asyncio.create_task(run.progress(stop)),
        ]
        await asyncio.gather(*(run.run_client(client, queue, until) for _ in range(config.clients)))
        started = plans[: run.started]  # FIFO: every plan taken was started
        outcomes = await run.settle(await run.client(), started)
        stop.set()
        await asyncio.gather(*background)
        run.verify(stores, started, outcomes)
    finally:
        stop.set()
        await run.stop_workers()
        await run.stop_server()
        run.count_worker_faults()
        for store in stores.values():
            store.close()
    return SoakReport(
        seed=config.seed,
        transfers=len(outcomes),
        seconds=time.monotonic() - began,
        outcomes=dict(Counter(outcomes.values())),
        faults=dict(run.faults),
        snapshots=run.snapshots,
        checks=run.checks,
        violations=run.violations,
    )


def main(argv: list[str] | None = None) -> int:
    """`make soak` / `python -m tests.soak.bank`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, help="replay a run (default: random, printed)")
    parser.add_argument("--duration", type=float, help="stop starting transfers after SECONDS")
    parser.add_argument(
        "--ledger-url", help="default: a fresh SQLite file (with --banks, put {bank} in it)"
    )
    parser.add_argument("--banks", help="several banks, such as north,south")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    args = parser.parse_args(argv)
    config = SoakConfig(transfers=args.transfers, clients=args.clients, duration=args.duration)
    if args.seed is not None:
        config.seed = args.seed
    config.ledger_url = args.ledger_url
    config.banks = tuple(args.banks.split(",")) if args.banks else ()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        report = asyncio.run(run_soak(config, Path(tmp)))
    print(report.text())
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
