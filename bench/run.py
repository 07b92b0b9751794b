"""The benchmark driver: runs every scenario's phases in rounds, then reports."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from app.transfers import start_transfer, wait_outcome
from bench import report
from bench.dated import run_dated
from bench.floor import FLOOR_WORKFLOW
from bench.history import with_history
from bench.measure import Meter, PhaseReport, drive
from bench.processes import dev_server, self_driving_phase, worker_processes
from bench.scenarios import PROJECT, SCENARIOS, UNTUNED, Scenario, ratios
from bench.state import Bench
from ledger import LedgerStore, open_store
from ledger.audit import audit


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
        if scenario.runner == "dated":
            await run_dated(bench, scenario, client, task_queue=task_queue, pids=pids)
            return
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
            bench.record(await with_history(phase, client, ids), scenario.expect)


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
            phase = await with_history(phase, client, [f"{prefix}-{i}" for i in range(count)])
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
        if scenario.runner == "dated" and bench.round != bench.rounds // 2:
            continue  # all N at one moment, once: in the middle round
        if scenario.runner in ("worker", "dated"):
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
            dated=args.dated,
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
