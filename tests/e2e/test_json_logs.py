"""`TRANSFER_LOG_FORMAT=json python worker.py`: only JSON lines, the SDK core's among them."""

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.logs import CORE_LOGGER
from app.processes import stop_process_sync
from tests.support.cli import WORKER_READY, run_cli, script_args
from tests.support.ledgers import seeded_ledger

pytestmark = pytest.mark.e2e


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of `path` as JSON (a line that is not JSON fails the test, naming it)."""
    parsed = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line!r}")
    return parsed


def test_a_json_worker_prints_only_json_lines_with_the_transfers_context(
    server_env: dict[str, str],
) -> None:
    """Both streams hold JSON only; a step's line names transfer and step; core lines are there."""
    env = server_env | {"TRANSFER_LOG_FORMAT": "json", "TRANSFER_LOG_LEVEL": "INFO"}
    seeded_ledger(env["LEDGER_URL"])
    data = Path(env["TRANSFER_DATA_DIR"])
    out, err = data / "worker.out", data / "worker.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        worker = subprocess.Popen(
            script_args("worker.py"), env=env, cwd=data, stdout=stdout, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 60
        while WORKER_READY not in out.read_text():
            assert worker.poll() is None, out.read_text() + err.read_text()
            assert time.monotonic() < deadline, "the worker never said it was running"
            time.sleep(0.1)
        transfer_id = f"json-{uuid.uuid4().hex[:8]}"
        done = run_cli(
            env, "transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "15",
            "--id", transfer_id,
        )  # fmt: skip
        assert 0 == done.returncode, done.stdout + done.stderr
    finally:
        code = stop_process_sync(worker)
    assert 0 == code, out.read_text() + err.read_text()
    lines = json_lines(out) + json_lines(err)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    messages = [line["message"] for line in lines]
    assert any(m.startswith(WORKER_READY) for m in messages), messages
    assert any(m.startswith("Received SIGTERM; finishing in-flight work") for m in messages)
    steps = [line for line in lines if line.get("transfer_id") == transfer_id]
    assert {"debit", "credit"} <= {line.get("activity_type") for line in steps}, steps
    assert all(line["workflow_id"] == transfer_id and line["run_id"] for line in steps)
    assert any(line["logger"] == CORE_LOGGER for line in lines), lines
