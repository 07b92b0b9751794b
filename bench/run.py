"""The benchmark driver: servers, worker processes, phases, the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from app.encryption import generate_ring
from app.temporal import DEV_SERVER_TUNING, data_converter, temporal_cli
from app.transfers import start_transfer, wait_outcome
from bench.floor import FLOOR_WORKFLOW
from bench.measure import Meter, PhaseResult, drive, pair
from ledger import LedgerStore, open_store
from ledger.audit import audit
from workflows.contract import TransferRequest
from workflows.visibility import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]
UNTUNED, PROJECT = "untuned", "project"
AMOUNT = Decimal("1.00")
#: Histories sampled per phase for the events and bytes columns.
HISTORY_SAMPLE = 20


@dataclass(frozen=True)
class Scenario:
    """One row group of the report: what runs, where, and the outcome every run must have."""

    key: str
    label: str
    server: str | None  # UNTUNED, PROJECT, or None (no Temporal server: DBOS)
    # "worker" (worker processes, driven from here), "inprocess", "dbos", or
    # "ledger" (the two ledger calls straight from this process)
    runner: str
    workload: str  # "floor", "transfer", "insufficient", "refused", "default", "low-latency"
    worker_args: tuple[str, ...] = ()
    expect: str = "completed"
    #: Payloads in plain text (TRANSFER_ENCRYPTION=off for driver and workers),
    #: to price the encryption every other Temporal scenario pays.
    plain: bool = False


SCENARIOS = [
    Scenario(
        "floor-untuned",
        "floor: untuned dev server, SDK defaults",
        UNTUNED,
        "worker",
        "floor",
        ("--kind", "floor", "--sdk-defaults"),
    ),
    Scenario(
        "floor",
        "floor: project server and worker settings",
        PROJECT,
        "worker",
        "floor",
        ("--kind", "floor"),
    ),
    Scenario(
        "transfer",
        "transfer: project default",
        PROJECT,
        "worker",
        "transfer",
        ("--kind", "transfer"),
    ),
    Scenario(
        "transfer-plain",
        "transfer: payloads not encrypted",
        PROJECT,
        "worker",
        "transfer",
        ("--kind", "transfer"),
        plain=True,
    ),
    Scenario(
        "transfer-sandboxed",
        "transfer: workflows in the SDK sandbox",
        PROJECT,
        "worker",
        "transfer",
        ("--kind", "transfer", "--sandboxed"),
    ),
    Scenario(
        "insufficient",
        "failure: insufficient funds",
        PROJECT,
        "worker",
        "insufficient",
        ("--kind", "transfer"),
        expect="compensated",
    ),
    Scenario(
        "refused",
        "failure: credit refused, debit compensated",
        PROJECT,
        "worker",
        "refused",
        ("--kind", "transfer"),
        expect="compensated",
    ),
    Scenario(
        "inprocess",
        "transfer: client and worker in one process",
        PROJECT,
        "inprocess",
        "default",
    ),
    Scenario(
        "low-latency",
        "low-latency: local activities, eager start",
        PROJECT,
        "inprocess",
        "low-latency",
    ),
    Scenario("dbos", "DBOS: two steps, SQLite system database", None, "dbos", "dbos"),
    Scenario("ledger", "ledger alone: debit then credit, no engine", None, "ledger", "transfer"),
]


@dataclass
class PhaseReport:
    """A phase's numbers, as reported."""

    scenario: str
    label: str
    concurrency: int
    result: PhaseResult
    events: float | None = None  # mean history events per workflow (sampled)
    history_bytes: float | None = None
    problems: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The JSON row."""
        r = self.result
        # A long phase: workflows per second in each successive thousand, to
        # tell a slowdown over time from a noisy spell of the machine.
        thousands = (
            [
                round(r.window_throughput(max(k, 1), k + 1000), 2)
                for k in range(0, r.count - 999, 1000)
            ]
            if r.count >= 2000
            else None
        )
        return {
            "scenario": self.scenario,
            "label": self.label,
            "concurrency": self.concurrency,
            "workflows": r.count,
            "throughput_per_s": round(r.throughput, 2),
            "p50_ms": round(r.percentile(50) * 1000, 1),
            "p95_ms": round(r.percentile(95) * 1000, 1),
            "p99_ms": round(r.percentile(99) * 1000, 1),
            "cpu_ms_per_workflow": round(r.cpu_per_workflow * 1000, 2),
            "peak_rss_mib": round(r.peak_rss / 2**20, 1),
            "history_events": None if self.events is None else round(self.events, 1),
            "history_bytes": None if self.history_bytes is None else round(self.history_bytes),
            "outcomes": r.outcomes,
            "throughput_per_thousand": thousands,
            "problems": self.problems,
        }


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
    console: Console
    progress: Progress
    rounds: int = 1
    round: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    tasks: dict[tuple[str, int], Any] = field(default_factory=dict)
    reports: list[PhaseReport] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rich: list[str] = field(default_factory=list)
    poor: list[str] = field(default_factory=list)

    def record(self, report: PhaseReport) -> None:
        """Keep a phase's report (merged into its earlier rounds); say how it went."""
        r = report.result
        earlier = next(
            (
                e
                for e in self.reports
                if (e.scenario, e.concurrency) == (report.scenario, report.concurrency)
            ),
            None,
        )
        if earlier is None:
            self.reports.append(report)
        else:
            earlier.result = _merge(earlier.result, r)
            earlier.problems += report.problems
            if report.events is not None and earlier.events is not None:
                earlier.events = (earlier.events + report.events) / 2
            if report.history_bytes is not None and earlier.history_bytes is not None:
                earlier.history_bytes = (earlier.history_bytes + report.history_bytes) / 2
        self.progress.console.print(
            f"round {self.round + 1}/{self.rounds} "
            f"{report.scenario} c={report.concurrency}: {r.count} in {r.wall:.1f} s, "
            f"{r.throughput:.1f}/s, p50 {r.percentile(50) * 1000:.0f} ms, "
            f"CPU {r.cpu_per_workflow * 1000:.1f} ms/wf"
            + (f" [red]{'; '.join(report.problems)}" if report.problems else "")
        )

    def phases(self) -> list[tuple[int, int]]:
        """(concurrency, workflows) of each phase of one round."""
        return [
            (1, -(-self.sequential // self.rounds)),
            (self.concurrency, -(-self.transfers // self.rounds)),
        ]

    def task(self, key: str, concurrency: int, count: int) -> Any:
        """The progress bar of a scenario's phase, over all rounds."""
        if (key, concurrency) not in self.tasks:
            self.tasks[key, concurrency] = self.progress.add_task(
                f"{key} c={concurrency}", total=count * self.rounds
            )
        return self.tasks[key, concurrency]

    def prefix(self, key: str, concurrency: int) -> str:
        """Workflow ids of a phase in this round: `bench-<run>-<scenario>-r<n>-c<c>`."""
        return f"bench-{self.run_id}-{key}-r{self.round}-c{concurrency}"

    def open_accounts(self, store: LedgerStore) -> None:
        """Accounts with room for any run; some empty ones for the insufficient-funds path."""
        self.rich = [f"B{self.run_id}-{i:03d}" for i in range(64)]
        self.poor = [f"P{self.run_id}-{i:03d}" for i in range(8)]
        for account in self.rich:
            store.open_account(account, "Bench", Decimal("1000000.00"))
        for account in self.poor:
            store.open_account(account, "Bench", Decimal("0.00"))

    def request(self, workload: str, index: int) -> TransferRequest:
        """The `index`-th transfer of a workload."""
        if workload == "insufficient":
            source, destination = self.poor[index % len(self.poor)], self.rich[index % 64]
        elif workload == "refused":
            source, destination = self.rich[index % 64], f"N{self.run_id}-nobody"
        else:
            source, destination = pair(self.rich, index)
        return TransferRequest(
            source_account=source, destination_account=destination, amount=AMOUNT
        )


def _merge(a: PhaseResult, b: PhaseResult) -> PhaseResult:
    """Two rounds of a phase as one: their workflows together, the second after the first."""
    return PhaseResult(
        latencies=a.latencies + b.latencies,
        wall=a.wall + b.wall,
        cpu_seconds=a.cpu_seconds + b.cpu_seconds,
        peak_rss=max(a.peak_rss, b.peak_rss),
        rss_samples=a.rss_samples + [(t + a.wall, rss) for t, rss in b.rss_samples],
        outcomes=dict(Counter(a.outcomes) + Counter(b.outcomes)),
        marks=a.marks + [t + a.wall for t in b.marks],
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _server(kind: str, data_dir: Path) -> AsyncIterator[tuple[Client, str]]:
    """A dev server: untuned (CLI defaults, in memory) or as the project embeds it."""
    external = os.environ.get("TEMPORAL_ADDRESS")
    if kind == PROJECT and external:
        client = await Client.connect(external, data_converter=data_converter())
        yield client, external
        return
    port = _free_port()
    extra: dict[str, Any] = {}
    if kind == PROJECT:
        extra = {
            "dev_server_extra_args": DEV_SERVER_TUNING,
            "dev_server_database_filename": str(data_dir / f"temporal-{port}.db"),
        }
    env = await WorkflowEnvironment.start_local(
        # The untuned server runs the SDK's defaults end to end: plain payloads.
        data_converter=data_converter() if kind == PROJECT else pydantic_data_converter,
        port=port,
        ui=False,
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        **extra,
    )
    try:
        yield env.client, f"127.0.0.1:{port}"
    finally:
        await env.shutdown()


@contextlib.asynccontextmanager
async def _workers(
    bench: Bench, scenario: Scenario, address: str, task_queue: str
) -> AsyncIterator[list[int]]:
    """`bench.workers` worker processes for the scenario; yields their pids once all poll."""
    env = os.environ | {"TEMPORAL_ADDRESS": address}
    if scenario.plain:
        env["TRANSFER_ENCRYPTION"] = "off"
    command = [sys.executable, "-m", "bench.worker", "--task-queue", task_queue]
    command += [*scenario.worker_args, "--ledger-url", bench.ledger_url]
    processes = [
        await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(bench.workers)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if line.strip() != b"ready":
                assert process.stderr is not None
                error = (await process.stderr.read()).decode(errors="replace")
                raise RuntimeError(f"worker for {scenario.key} did not start:\n{error}")
        yield [p.pid for p in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            await process.wait()


async def _history_stats(client: Client, ids: list[str]) -> tuple[float, float]:
    """Mean events and serialized bytes of these workflows' histories."""
    events, sizes = [], []
    for workflow_id in ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events.append(len(history.events))
        sizes.append(sum(e.ByteSize() for e in history.events))
    return statistics.fmean(events), statistics.fmean(sizes)


def _sample(ids: list[str]) -> list[str]:
    step = max(1, len(ids) // HISTORY_SAMPLE)
    return ids[::step][:HISTORY_SAMPLE]


def _check(report: PhaseReport, expect: str) -> None:
    wrong = {k: v for k, v in report.result.outcomes.items() if k != expect}
    if wrong:
        report.problems.append(f"expected every workflow {expect}, got {wrong}")


async def _run_worker_scenario(
    bench: Bench, scenario: Scenario, client: Client, address: str
) -> None:
    task_queue = f"bench-{bench.run_id}-{scenario.key}-r{bench.round}"
    if scenario.plain:
        client = await Client.connect(address, data_converter=pydantic_data_converter)

    def workflow_id(concurrency: int, index: int) -> str:
        return f"{bench.prefix(scenario.key, concurrency)}-{index}"

    def runner(concurrency: int) -> Callable[[int], Any]:
        async def run_one(index: int) -> str:
            if scenario.workload == "floor":
                await client.execute_workflow(
                    FLOOR_WORKFLOW, "x", id=workflow_id(concurrency, index), task_queue=task_queue
                )
                return "completed"
            handle, _ = await start_transfer(
                client,
                bench.request(scenario.workload, index),
                transfer_id=workflow_id(concurrency, index),
                task_queue=task_queue,
            )
            return (await wait_outcome(handle)).status

        return run_one

    async with _workers(bench, scenario, address, task_queue) as pids:
        warm = runner(0)
        for index in range(bench.warmup):
            await warm(index)
        for concurrency, count in bench.phases():
            task = bench.task(scenario.key, concurrency, count)
            result = await drive(
                runner(concurrency),
                transfers=count,
                concurrency=concurrency,
                meter=Meter(pids),
                progress=lambda task=task: bench.progress.advance(task),  # type: ignore[misc]
            )
            report = PhaseReport(scenario.key, scenario.label, concurrency, result)
            ids = [workflow_id(concurrency, i) for i in range(count)]
            report.events, report.history_bytes = await _history_stats(client, _sample(ids))
            _check(report, scenario.expect)
            bench.record(report)


async def _run_subprocess_scenario(
    bench: Bench, scenario: Scenario, client: Client | None, address: str | None
) -> None:
    for concurrency, count in bench.phases():
        task = bench.task(scenario.key, concurrency, count)
        prefix = bench.prefix(scenario.key, concurrency)
        out = bench.data_dir / f"{prefix}.json"
        common = [
            "--ledger-url",
            bench.ledger_url,
            "--accounts",
            ",".join(bench.rich),
            "--transfers",
            str(count),
            "--concurrency",
            str(concurrency),
            "--warmup",
            str(bench.warmup),
            "--out",
            str(out),
        ]
        if scenario.runner == "dbos":
            system_dir = bench.data_dir / prefix
            system_dir.mkdir()
            command = ["-m", "bench.dbos_transfer", *common, "--data-dir", str(system_dir)]
        else:
            command = ["-m", "bench.inprocess", *common, "--prefix", prefix]
            command += ["--mode", scenario.workload, "--task-queue", prefix]
        env = os.environ | ({"TEMPORAL_ADDRESS": address} if address else {})
        process = await asyncio.create_subprocess_exec(
            sys.executable, *command, cwd=ROOT, env=env, stderr=subprocess.PIPE
        )
        _, stderr = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(
                f"{scenario.key} failed ({process.returncode}):\n{stderr.decode(errors='replace')}"
            )
        result = PhaseResult.from_json(json.loads(out.read_text()))
        bench.progress.advance(task, count)
        report = PhaseReport(scenario.key, scenario.label, concurrency, result)
        if client is not None:
            ids = [f"{prefix}-{i}" for i in range(count)]
            report.events, report.history_bytes = await _history_stats(client, _sample(ids))
        _check(report, scenario.expect)
        bench.record(report)


async def _run_ledger_scenario(bench: Bench, scenario: Scenario, store: LedgerStore) -> None:
    """The ledger's own cost: the debit and the credit a transfer makes, with no engine."""
    for concurrency, count in bench.phases():
        task = bench.task(scenario.key, concurrency, count)
        prefix = bench.prefix(scenario.key, concurrency)

        async def run_one(index: int, prefix: str = prefix) -> str:
            request = bench.request(scenario.workload, index)
            await asyncio.to_thread(
                store.debit, f"{prefix}-{index}/debit", request.source_account, request.amount
            )
            await asyncio.to_thread(
                store.credit,
                f"{prefix}-{index}/credit",
                request.destination_account,
                request.amount,
            )
            return "completed"

        result = await drive(
            run_one,
            transfers=count,
            concurrency=concurrency,
            meter=Meter(os.getpid()),
            progress=lambda task=task: bench.progress.advance(task),  # type: ignore[misc]
        )
        report = PhaseReport(scenario.key, scenario.label, concurrency, result)
        _check(report, scenario.expect)
        bench.record(report)


def _find(bench: Bench, key: str, concurrency: int) -> PhaseResult | None:
    for report in bench.reports:
        if report.scenario == key and report.concurrency == concurrency:
            return report.result
    return None


def _events(bench: Bench, key: str) -> float | None:
    for report in bench.reports:
        if report.scenario == key and report.events is not None:
            return report.events
    return None


def ratios(bench: Bench) -> list[dict[str, Any]]:
    """The ratios the README reports, each with its target (reported, never asserted)."""
    c = bench.concurrency
    out: list[dict[str, Any]] = []

    def add(
        name: str, a: float | None, b: float | None, target: str, ok: Callable[[float], bool]
    ) -> None:
        if a is None or b is None or not b:
            return
        value = a / b
        out.append({"ratio": name, "value": round(value, 3), "target": target, "met": ok(value)})

    def get(key: str, conc: int, what: Callable[[PhaseResult], float]) -> float | None:
        found = _find(bench, key, conc)
        return None if found is None else what(found)

    def p50(r: PhaseResult) -> float:
        return r.percentile(50)

    def tput(r: PhaseResult) -> float:
        return r.throughput

    def cpu(r: PhaseResult) -> float:
        return r.cpu_per_workflow

    add(
        "transfer p50 / untuned floor p50 (c=1)",
        get("transfer", 1, p50),
        get("floor-untuned", 1, p50),
        "<= 0.45",
        lambda v: v <= 0.45,
    )
    add(
        f"transfer throughput / floor throughput (c={c})",
        get("transfer", c, tput),
        get("floor", c, tput),
        ">= 0.95",
        lambda v: v >= 0.95,
    )
    add(
        f"transfer CPU / floor CPU per workflow (c={c})",
        get("transfer", c, cpu),
        get("floor", c, cpu),
        "<= 1.1",
        lambda v: v <= 1.1,
    )
    transfer_1, floor_1, ledger_1 = (
        get("transfer", 1, p50),
        get("floor", 1, p50),
        get("ledger", 1, p50),
    )
    if transfer_1 is not None and floor_1 is not None and ledger_1 is not None:
        out.append(
            {
                "ratio": "saga overhead ms: transfer p50 - floor p50 - ledger p50 (c=1)",
                "value": round((transfer_1 - floor_1 - ledger_1) * 1000, 1),
                "target": "(near 0)",
                "met": transfer_1 - floor_1 - ledger_1 <= 0.005,
            }
        )
    add(
        "floor p50 tuned / untuned (c=1)",
        get("floor", 1, p50),
        get("floor-untuned", 1, p50),
        "(the server setting alone)",
        lambda v: v < 1,
    )
    add(
        "encrypted / plain transfer p50 (c=1)",
        get("transfer", 1, p50),
        get("transfer-plain", 1, p50),
        "(price of encryption)",
        lambda v: v <= 1.05,
    )
    add(
        f"encrypted / plain transfer CPU (c={c})",
        get("transfer", c, cpu),
        get("transfer-plain", c, cpu),
        "(price of encryption)",
        lambda v: v <= 1.1,
    )
    add(
        "sandboxed / unsandboxed transfer p50 (c=1)",
        get("transfer-sandboxed", 1, p50),
        get("transfer", 1, p50),
        "(sandbox decision)",
        lambda v: v > 1,
    )
    add(
        f"sandboxed / unsandboxed transfer CPU (c={c})",
        get("transfer-sandboxed", c, cpu),
        get("transfer", c, cpu),
        "(sandbox decision)",
        lambda v: v > 1,
    )
    add(
        "low-latency p50 / default p50, both in-process (c=1)",
        get("low-latency", 1, p50),
        get("inprocess", 1, p50),
        "< 1",
        lambda v: v < 1,
    )
    add(
        f"low-latency throughput / DBOS throughput (c={c})",
        get("low-latency", c, tput),
        get("dbos", c, tput),
        ">= 1.0",
        lambda v: v >= 1.0,
    )
    add(
        "low-latency p50 / DBOS p50 (c=1)",
        get("low-latency", 1, p50),
        get("dbos", 1, p50),
        "<= 2",
        lambda v: v <= 2,
    )
    transfer_events, floor_events = _events(bench, "transfer"), _events(bench, "floor")
    if transfer_events is not None and floor_events is not None:
        extra = transfer_events - floor_events
        out.append(
            {
                "ratio": "history events: transfer - floor",
                "value": round(extra, 2),
                "target": "<= 1",
                "met": extra <= 1,
            }
        )
    long_run = _find(bench, "transfer", c)
    if long_run is not None and long_run.count >= 2000 and bench.rounds == 1:
        n = long_run.count
        out.append(
            {
                "ratio": "throughput of the last 1000 / the first 1000",
                "value": round(
                    long_run.window_throughput(n - 1000, n) / long_run.window_throughput(1, 1000),
                    3,
                ),
                "target": ">= 0.9",
                "met": long_run.window_throughput(n - 1000, n)
                >= 0.9 * long_run.window_throughput(1, 1000),
            }
        )
        growth = _rss_growth(long_run)
        out.append(
            {
                "ratio": "worker RSS at the end / after the first 1000",
                "value": round(growth, 3),
                "target": "< 1.2",
                "met": growth < 1.2,
            }
        )
    return out


def _rss_growth(result: PhaseResult) -> float:
    marks = sorted(result.marks)
    after_first = marks[999]
    early = [rss for t, rss in result.rss_samples if t <= after_first + 1]
    late = [rss for t, rss in result.rss_samples if t >= marks[-1000]]
    return max(late) / early[-1] if early and late else float("nan")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cli = subprocess.run([temporal_cli(), "--version"], capture_output=True, text=True, check=False)

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "temporal_cli": cli.stdout.strip(),
        "temporalio": version("temporalio"),
        "dbos": version("dbos"),
    }


def _table(bench: Bench) -> Table:
    table = Table(title="Phases (latency is start call to result)")
    for name in [
        "scenario",
        "c",
        "n",
        "wf/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU ms/wf",
        "RSS MiB",
        "events",
        "bytes",
    ]:
        table.add_column(name, justify="left" if name == "scenario" else "right")
    for report in bench.reports:
        row = report.row()
        table.add_row(
            report.scenario + (" [red]!" if report.problems else ""),
            str(row["concurrency"]),
            str(row["workflows"]),
            f"{row['throughput_per_s']:.1f}",
            f"{row['p50_ms']:.0f}",
            f"{row['p95_ms']:.0f}",
            f"{row['p99_ms']:.0f}",
            f"{row['cpu_ms_per_workflow']:.1f}",
            f"{row['peak_rss_mib']:.0f}",
            "-" if row["history_events"] is None else f"{row['history_events']:.0f}",
            "-" if row["history_bytes"] is None else f"{row['history_bytes']:.0f}",
        )
    return table


def _ratio_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Ratios (same run)")
    for name in ["ratio", "value", "target", "met"]:
        table.add_column(name)
    for row in rows:
        table.add_row(
            row["ratio"], f"{row['value']:.2f}", row["target"], "yes" if row["met"] else "no"
        )
    return table


async def run(args: argparse.Namespace, console: Console) -> int:
    """The whole benchmark; returns the exit code."""
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {s.key for s in SCENARIOS}
    if unknown:
        console.print(f"[red]Unknown scenarios: {', '.join(sorted(unknown))}")
        return 2
    scenarios = [s for s in SCENARIOS if only is None or s.key in only]
    with tempfile.TemporaryDirectory(prefix="saga-bench-") as tmp:
        data_dir = Path(tmp)
        ledger_url = args.ledger_url or f"sqlite:///{data_dir / 'ledger.db'}"
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
            ledger_url=ledger_url,
            data_dir=data_dir,
            console=console,
            progress=progress,
        )
        store = open_store(ledger_url)
        bench.open_accounts(store)
        started = time.monotonic()
        with progress:
            async with contextlib.AsyncExitStack() as stack:
                # Both servers up at once, and the scenarios in rounds, so that a
                # slow spell of a shared machine falls on all of them alike.
                servers: dict[str | None, tuple[Client | None, str | None]] = {None: (None, None)}
                for server in (UNTUNED, PROJECT):
                    if any(s.server == server for s in scenarios):
                        servers[server] = await stack.enter_async_context(_server(server, data_dir))
                for round_ in range(bench.rounds):
                    bench.round = round_
                    for scenario in scenarios:
                        client, address = servers[scenario.server]
                        if scenario.runner == "worker":
                            assert client is not None
                            assert address is not None
                            await _run_worker_scenario(bench, scenario, client, address)
                        elif scenario.runner == "ledger":
                            await _run_ledger_scenario(bench, scenario, store)
                        elif scenario.runner == "dbos" and importlib.util.find_spec("dbos") is None:
                            bench.skipped[scenario.key] = (
                                "dbos is not installed: pip install -e '.[bench]'"
                            )
                        else:
                            await _run_subprocess_scenario(bench, scenario, client, address)
        report = audit(*store.snapshot())
        store.close()
        rows = ratios(bench)
        console.print(_table(bench))
        console.print(_ratio_table(rows))
        for key, why in bench.skipped.items():
            console.print(f"skipped {key}: {why}")
        problems = [
            f"{r.scenario} c={r.concurrency}: {p}" for r in bench.reports for p in r.problems
        ]
        problems += [f"ledger audit: {f}" for f in report.findings]
        console.print(
            f"Ledger audit: {'balanced' if report.ok else 'FINDINGS'} "
            f"({report.postings} postings, {report.transfers} transfers)"
        )
        for problem in problems:
            console.print(f"[red]problem: {problem}")
        if args.json:
            await asyncio.to_thread(
                Path(args.json).write_text,
                json.dumps(
                    {
                        "machine": machine(),
                        "settings": {
                            "transfers": args.transfers,
                            "sequential": args.sequential,
                            "concurrency": args.concurrency,
                            "workers": args.workers,
                            "rounds": args.rounds,
                            "warmup": args.warmup,
                            "ledger": "postgresql" if args.ledger_url else "sqlite",
                            "project_server": os.environ.get("TEMPORAL_ADDRESS", "embedded"),
                        },
                        "seconds": round(time.monotonic() - started, 1),
                        "phases": [r.row() for r in bench.reports],
                        "ratios": rows,
                        "skipped": bench.skipped,
                        "ledger_audit": {
                            "ok": report.ok,
                            "postings": report.postings,
                            "findings": report.findings,
                        },
                        "problems": problems,
                    },
                    indent=2,
                ),
            )
            console.print(f"JSON report: {args.json}")
        return 1 if problems else 0


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--transfers", type=int, default=1000, help="per phase at concurrency C")
    parser.add_argument("--sequential", type=int, default=200, help="per phase at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=8, help="C (default 8)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per scenario")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="split each phase into rounds, interleaved across scenarios (default 3)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured workflows first")
    parser.add_argument("--ledger-url", help="the ledger (default: a fresh SQLite file)")
    parser.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    parser.add_argument("--only", metavar="KEYS", help="comma-separated scenario keys")
    args = parser.parse_args()
    # Payloads are encrypted as in production (the floor's too, so ratios stay
    # fair; only floor-untuned runs the SDK's plain defaults). A key of this
    # run's own unless the caller configured one; worker processes inherit it.
    if "TRANSFER_ENCRYPTION_KEYS" not in os.environ:
        os.environ["TRANSFER_ENCRYPTION_KEYS"] = generate_ring().env_value()
    console = Console(stderr=False)
    code = asyncio.run(run(args, console))
    sys.stdout.flush()
    os._exit(code)  # the SDK can crash at interpreter exit (sdk-python#300)
