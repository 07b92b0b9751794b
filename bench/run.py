"""The benchmark driver: runs every scenario's phases in rounds, then reports."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from app.transfers import start_transfer, wait_outcome
from bench import report
from bench.floor import FLOOR_WORKFLOW
from bench.measure import Meter, PhaseReport, drive
from bench.processes import dev_server, self_driving_phase, worker_processes
from bench.scenarios import PROJECT, SCENARIOS, UNTUNED, Scenario, ratios
from bench.workload import Accounts
from ledger import LedgerStore, open_store
from ledger.audit import audit

#: Histories sampled per phase for the events and bytes columns.
HISTORY_SAMPLE = 20


@dataclass
class Bench:
    """One benchmark run's settings and shared state."""

    transfers: int
    sequential: int
    concurrency: int
    workers: int
    warmup: int
    ledger_url: str
    data_dir: Path
    progress: Progress
    rounds: int = 1
    round: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    tasks: dict[tuple[str, int], Any] = field(default_factory=dict)
    reports: dict[tuple[str, int], PhaseReport] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    accounts: Accounts = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = Accounts(self.run_id)

    def record(self, phase: PhaseReport, expect: str) -> None:
        """Check a phase's outcomes, keep it (merged into its earlier rounds), say how it went."""
        phase.check(expect)
        earlier = self.reports.setdefault((phase.scenario, phase.concurrency), phase)
        if earlier is not phase:
            earlier.absorb(phase)
        r = phase.result
        self.progress.console.print(
            f"round {self.round + 1}/{self.rounds} "
            f"{phase.scenario} c={phase.concurrency}: {r.count} in {r.wall:.1f} s, "
            f"{r.throughput:.1f}/s, p50 {r.percentile(50) * 1000:.0f} ms, "
            f"CPU {r.cpu_per_workflow * 1000:.1f} ms/wf"
            + (f" [red]{'; '.join(phase.problems)}" if phase.problems else "")
        )

    def phases(self) -> list[tuple[int, int]]:
        """(concurrency, workflows) of each phase of one round."""
        return [
            (1, -(-self.sequential // self.rounds)),
            (self.concurrency, -(-self.transfers // self.rounds)),
        ]

    def task(self, key: str, concurrency: int, count: int) -> functools.partial[None]:
        """`advance(steps=1)` of the progress bar of a scenario's phase, over all rounds."""
        if (key, concurrency) not in self.tasks:
            self.tasks[key, concurrency] = self.progress.add_task(
                f"{key} c={concurrency}", total=count * self.rounds
            )
        return functools.partial(self.progress.advance, self.tasks[key, concurrency])

    def prefix(self, key: str, concurrency: int) -> str:
        """Workflow ids of a phase in this round: `bench-<run>-<scenario>-r<n>-c<c>`."""
        return f"bench-{self.run_id}-{key}-r{self.round}-c{concurrency}"


async def _with_history(phase: PhaseReport, client: Client, ids: list[str]) -> PhaseReport:
    """The phase with the mean events and serialized bytes of a sample of its histories."""
    events, sizes = [], []
    for workflow_id in ids[:: max(1, len(ids) // HISTORY_SAMPLE)][:HISTORY_SAMPLE]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events.append(len(history.events))
        sizes.append(sum(e.ByteSize() for e in history.events))
    phase.events, phase.history_bytes = statistics.fmean(events), statistics.fmean(sizes)
    return phase


async def _run_worker_scenario(
    bench: Bench, scenario: Scenario, client: Client, address: str
) -> None:
    task_queue = f"bench-{bench.run_id}-{scenario.key}-r{bench.round}"
    if scenario.plain:
        client = await Client.connect(address, data_converter=pydantic_data_converter)

    def runner(concurrency: int) -> Callable[[int], Any]:
        async def run_one(index: int) -> str:
            workflow_id = f"{bench.prefix(scenario.key, concurrency)}-{index}"
            if scenario.workload == "floor":
                await client.execute_workflow(
                    FLOOR_WORKFLOW, "x", id=workflow_id, task_queue=task_queue
                )
                return "completed"
            request = bench.accounts.request(scenario.workload, index)
            handle, _ = await start_transfer(
                client, request, transfer_id=workflow_id, task_queue=task_queue
            )
            return (await wait_outcome(handle)).status

        return run_one

    async with worker_processes(
        scenario,
        count=bench.workers,
        address=address,
        task_queue=task_queue,
        ledger_url=bench.ledger_url,
        log_dir=bench.data_dir,
    ) as pids:
        warm = runner(0)
        for index in range(bench.warmup):
            await warm(index)
        for concurrency, count in bench.phases():
            result = await drive(
                runner(concurrency),
                transfers=count,
                concurrency=concurrency,
                meter=Meter(pids),
                progress=bench.task(scenario.key, concurrency, count),
            )
            phase = PhaseReport(scenario.key, scenario.label, concurrency, result)
            ids = [f"{bench.prefix(scenario.key, concurrency)}-{i}" for i in range(count)]
            bench.record(await _with_history(phase, client, ids), scenario.expect)


async def _run_subprocess_scenario(
    bench: Bench, scenario: Scenario, client: Client | None, address: str | None
) -> None:
    """A phase that drives itself in a process of its own: in-process Temporal, or DBOS."""
    for concurrency, count in bench.phases():
        advance = bench.task(scenario.key, concurrency, count)
        prefix = bench.prefix(scenario.key, concurrency)
        result = await self_driving_phase(
            scenario,
            prefix=prefix,
            count=count,
            concurrency=concurrency,
            warmup=bench.warmup,
            ledger_url=bench.ledger_url,
            accounts=bench.accounts.rich,
            data_dir=bench.data_dir,
            address=address,
        )
        advance(count)
        phase = PhaseReport(scenario.key, scenario.label, concurrency, result)
        if client is not None:
            phase = await _with_history(phase, client, [f"{prefix}-{i}" for i in range(count)])
        bench.record(phase, scenario.expect)


async def _run_ledger_scenario(bench: Bench, scenario: Scenario, store: LedgerStore) -> None:
    """The ledger's own cost: the debit and the credit a transfer makes, with no engine."""
    for concurrency, count in bench.phases():
        prefix = bench.prefix(scenario.key, concurrency)

        async def run_one(index: int, prefix: str = prefix) -> str:
            request = bench.accounts.request(scenario.workload, index)
            source, destination = request.source_account, request.destination_account
            await asyncio.to_thread(store.debit, f"{prefix}-{index}/debit", source, request.amount)
            await asyncio.to_thread(
                store.credit, f"{prefix}-{index}/credit", destination, request.amount
            )
            return "completed"

        result = await drive(
            run_one,
            transfers=count,
            concurrency=concurrency,
            meter=Meter(os.getpid()),
            progress=bench.task(scenario.key, concurrency, count),
        )
        phase = PhaseReport(scenario.key, scenario.label, concurrency, result)
        bench.record(phase, scenario.expect)


async def _run_round(
    bench: Bench,
    scenarios: list[Scenario],
    servers: dict[str | None, tuple[Client | None, str | None]],
    store: LedgerStore,
) -> None:
    for scenario in scenarios:
        client, address = servers[scenario.server]
        if scenario.runner == "worker":
            assert client is not None
            assert address is not None
            await _run_worker_scenario(bench, scenario, client, address)
        elif scenario.runner == "ledger":
            await _run_ledger_scenario(bench, scenario, store)
        elif scenario.runner == "dbos" and importlib.util.find_spec("dbos") is None:
            bench.skipped[scenario.key] = "dbos is not installed: pip install -e '.[bench]'"
        else:
            await _run_subprocess_scenario(bench, scenario, client, address)


async def run(args: argparse.Namespace, console: Console) -> int:
    """The whole benchmark; returns the exit code."""
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {s.key for s in SCENARIOS}
    if unknown:
        console.print(f"[red]Unknown scenarios: {', '.join(sorted(unknown))}")
        return 2
    scenarios = [s for s in SCENARIOS if only is None or s.key in only]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="saga-bench-") as tmp:
        data_dir = Path(tmp)
        progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        bench = Bench(
            rounds=args.rounds,
            transfers=args.transfers,
            sequential=args.sequential,
            concurrency=args.concurrency,
            workers=args.workers,
            warmup=args.warmup,
            ledger_url=args.ledger_url or f"sqlite:///{data_dir / 'ledger.db'}",
            data_dir=data_dir,
            progress=progress,
        )
        store = open_store(bench.ledger_url, migrate=True)  # before any worker checks it
        bench.accounts.open(store)
        started = time.monotonic()
        with progress:
            async with contextlib.AsyncExitStack() as stack:
                # Both servers up at once, and the scenarios in rounds, so that a
                # slow spell of a shared machine falls on all of them alike.
                servers: dict[str | None, tuple[Client | None, str | None]] = {None: (None, None)}
                for server in (UNTUNED, PROJECT):
                    if any(s.server == server for s in scenarios):
                        servers[server] = await stack.enter_async_context(
                            dev_server(server, data_dir)
                        )
                for round_ in range(bench.rounds):
                    bench.round = round_
                    await _run_round(bench, scenarios, servers, store)
        seconds = time.monotonic() - started
        audited = audit(*store.snapshot())
        store.close()
    rows = ratios(bench.reports, concurrency=bench.concurrency, rounds=bench.rounds)
    problems = [
        f"{r.scenario} c={r.concurrency}: {p}" for r in bench.reports.values() for p in r.problems
    ]
    problems += [f"ledger audit: {f}" for f in audited.findings]
    report.show(console, list(bench.reports.values()), rows, bench.skipped, audited, problems)
    if args.json:
        document = report.document(
            date=date,
            command=report.command_line(sys.argv[1:]),
            settings=report.settings(args),
            seconds=seconds,
            phases=list(bench.reports.values()),
            ratios=rows,
            skipped=bench.skipped,
            audit=audited,
            problems=problems,
        )
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(document, indent=2))
        console.print(f"JSON report: {args.json}")
    return 1 if problems else 0
