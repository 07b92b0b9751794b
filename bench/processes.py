"""The benchmark's processes: dev servers, worker processes, self-driving phases.

Every child writes its output to a log file in the run's data directory; one
that fails to start or to finish raises with the end of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from app.processes import free_port, running_process, stop_process
from app.temporal import DEV_SERVER_TUNING, data_converter, temporal_cli
from bench.measure import PhaseResult
from bench.scenarios import PROJECT, Scenario
from bench.worker import READY
from workflows.visibility import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]
#: How long a worker process may take to poll.
WORKER_READY_WITHIN = 60.0


class PhaseFailed(RuntimeError):
    """A self-driving phase process exited with an error."""


@contextlib.asynccontextmanager
async def dev_server(kind: str, data_dir: Path) -> AsyncIterator[tuple[Client, str]]:
    """A dev server: untuned (CLI defaults, in memory) or as the project embeds it.

    With TEMPORAL_ADDRESS set, that server stands in for the project's.

    Yields:
        A client of the server and its address.
    """
    external = os.environ.get("TEMPORAL_ADDRESS")
    if kind == PROJECT and external:
        client = await Client.connect(external, data_converter=data_converter())
        yield client, external
        return
    port = free_port()
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
async def worker_processes(
    scenario: Scenario,
    *,
    count: int,
    address: str,
    task_queue: str,
    ledger_url: str,
    log_dir: Path,
) -> AsyncIterator[list[int]]:
    """`count` worker processes for the scenario, stopped on the way out.

    Yields:
        Their pids, once every one of them polls the task queue.
    """
    env = os.environ | {"TEMPORAL_ADDRESS": address}
    if scenario.plain:
        env["TRANSFER_ENCRYPTION"] = "off"
    command = [sys.executable, "-m", "bench.worker", "--task-queue", task_queue]
    command += [*scenario.worker_args, "--ledger-url", ledger_url]
    async with contextlib.AsyncExitStack() as stack:
        pids = []
        for index in range(count):
            child = await stack.enter_async_context(
                running_process(
                    command,
                    log=log_dir / f"{task_queue}-worker-{index}.log",
                    ready=READY,
                    env=env,
                    cwd=ROOT,
                    ready_within=WORKER_READY_WITHIN,
                )
            )
            pids.append(child.pid)
        yield pids


async def self_driving_phase(
    scenario: Scenario,
    *,
    prefix: str,
    count: int,
    concurrency: int,
    warmup: int,
    ledger_url: str,
    accounts: list[str],
    data_dir: Path,
    address: str | None,
) -> PhaseResult:
    """Run a phase that drives itself in a process of its own (in-process Temporal, DBOS).

    Its workflow ids (and task queue) start with `prefix`; its log and result
    file are `<prefix>.log` and `<prefix>.json` in `data_dir`.

    Returns:
        What the process measured.

    Raises:
        PhaseFailed: it exited with an error; the message ends with its log's tail.
    """
    out, log = data_dir / f"{prefix}.json", data_dir / f"{prefix}.log"
    args = [
        *("--ledger-url", ledger_url, "--accounts", ",".join(accounts)),
        *("--transfers", str(count), "--concurrency", str(concurrency)),
        *("--warmup", str(warmup), "--out", str(out)),
    ]
    if scenario.runner == "dbos":
        system_dir = data_dir / prefix
        system_dir.mkdir()
        args = ["-m", "bench.dbos_transfer", *args, "--data-dir", str(system_dir)]
    else:
        args = ["-m", "bench.inprocess", *args, "--prefix", prefix]
        args += ["--mode", scenario.workload, "--task-queue", prefix]
    env = os.environ | ({"TEMPORAL_ADDRESS": address} if address else {})
    with log.open("w") as output:
        child = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, env=env, stdout=output, stderr=output
        )
    try:
        code = await child.wait()
    finally:
        await stop_process(child)  # only if the wait was cancelled
    if code != 0:
        tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-2000:]
        raise PhaseFailed(f"{scenario.key} failed ({code}):\n{tail}")
    return PhaseResult.from_json(json.loads(await asyncio.to_thread(out.read_text)))
