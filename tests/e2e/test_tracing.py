"""Tracing as a developer turns it on: `OTEL_TRACES_EXPORTER=console` on the worker and starter."""

import json
from pathlib import Path
from typing import Any

import pytest

from app.dev_server import dev_server_args, running_dev_server
from app.processes import free_port
from app.temporal import temporal_cli
from tests.support.cli import WorkerProcess, run_cli, start_worker, stop_worker
from tests.support.ledgers import seeded_ledger

pytestmark = pytest.mark.e2e


def printed_spans(text: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed, one JSON object per line, among other lines."""
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"name": ')]


def service(span: dict[str, Any]) -> str:
    return str(span["resource"]["attributes"]["service.name"])


@pytest.fixture
def traced_env(server_env: dict[str, str]) -> dict[str, str]:
    """`server_env` with console tracing, exported only when a process exits (its flush)."""
    return server_env | {
        "OTEL_TRACES_EXPORTER": "console",
        # The batch would wait a minute: what is printed was flushed on the way out.
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "TRANSFER_CODEC_URL": f"http://localhost:{free_port()}",
    }


def test_console_tracing_prints_a_transfers_spans_with_one_trace_id(
    traced_env: dict[str, str],
) -> None:
    """`worker.py --dev` prints its steps' spans, under the trace of the starter's start call."""
    seeded_ledger(traced_env["LEDGER_URL"]).close()
    worker: WorkerProcess = start_worker(traced_env, "--dev")
    try:
        done = run_cli(
            traced_env,
            *("transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "150"),
            *("--id", "traced-1"),
        )
    finally:
        told = stop_worker(worker)
    assert 0 == done.returncode, done.stderr
    assert "Transfer traced-1 completed" in done.stdout
    assert [] == printed_spans(done.stdout)  # stdout stays the command's own

    [start] = printed_spans(done.stderr)
    assert ("StartWorkflow:TransferWorkflow", None) == (start["name"], start["parent_id"])
    assert "saga-transfer-starter" == service(start)
    trace_id = start["context"]["trace_id"]

    spans = printed_spans(told)
    assert {trace_id} == {s["context"]["trace_id"] for s in spans}
    assert {"saga-transfer-worker"} == {service(s) for s in spans}
    names = {s["name"] for s in spans}
    assert {
        "RunWorkflow:TransferWorkflow",
        "RunActivity:debit",
        "ledger debit",
        "RunActivity:credit",
        "ledger credit",
        "CompleteWorkflow:TransferWorkflow",
    } <= names
    ledger = {s["name"]: s["attributes"] for s in spans if s["name"].startswith("ledger ")}
    assert {
        "db.system": "sqlite",
        "db.operation": "debit",
        "ledger.account_id": "ACC-001",
    }.items() <= ledger["ledger debit"].items()
    assert "traced-1/credit" == ledger["ledger credit"]["ledger.key"]


def test_three_processes_of_two_banks_print_one_trace_each_under_its_service_name(
    traced_env: dict[str, str],
) -> None:
    """`--workflows`, `--bank north` and `--bank south` each print their part of one trace."""
    env = {k: v for k, v in traced_env.items() if k != "LEDGER_URL"} | {
        "TRANSFER_BANKS": "north,south"
    }
    for account, owner in (("NORTH-001", "Alice"), ("SOUTH-001", "Dave")):
        opened = run_cli(env, "accounts", "open", account, "--owner", owner, "--balance", "100")
        assert 0 == opened.returncode, opened.stderr
    roles = {
        "workflows": ["--workflows"],
        "north": ["--bank", "north"],
        "south": ["--bank", "south"],
    }
    workers = {role: start_worker(env, *args) for role, args in roles.items()}
    try:
        done = run_cli(
            env, "transfer", "--from", "NORTH-001", "--to", "SOUTH-001", "--amount", "30", "--json"
        )
    finally:
        told = {role: stop_worker(worker) for role, worker in workers.items()}
    assert 0 == done.returncode, done.stderr
    assert "completed" == json.loads(done.stdout)["status"]  # stdout: one JSON document

    [start] = printed_spans(done.stderr)
    printed = {role: printed_spans(text) for role, text in told.items()}
    assert {start["context"]["trace_id"]} == {
        s["context"]["trace_id"] for spans in printed.values() for s in spans
    }
    assert {
        "workflows": ({"saga-transfer-workflows"}, set()),
        "north": ({"saga-transfer-bank-north"}, {"ledger debit"}),
        "south": ({"saga-transfer-bank-south"}, {"ledger credit"}),
    } == {
        role: ({service(s) for s in spans}, {s["name"] for s in spans if "ledger" in s["name"]})
        for role, spans in printed.items()
    }


async def test_the_embedded_dev_server_starts_with_tracing_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`worker.py --dev` under OTEL_TRACES_EXPORTER=console: its server keeps OTEL_* out.

    Temporal's server reads them too, and refuses `console`.
    """
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    port, ui_port = free_port(), free_port()
    args = dev_server_args(
        temporal_cli(),
        tmp_path,
        port=port,
        ui_port=ui_port,
        namespace="default",
        search_attributes={},
    )
    async with running_dev_server(args, log=tmp_path / "server.log", port=port) as server:
        assert server.returncode is None
