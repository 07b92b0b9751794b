"""Several banks as a user runs them: one workflow worker and one worker per bank."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import WorkerProcess, run_cli, start_worker, stop_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
def banks_env(server_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Two banks, north and south, each with a SQLite ledger of its own."""
    env = dict(server_env) | {"TRANSFER_BANKS": "north,south"}
    del env["LEDGER_URL"]  # each bank defaults to <data dir>/ledger-<bank>.db
    return env


@pytest.fixture
def topology(banks_env: dict[str, str]) -> Iterator[dict[str, WorkerProcess]]:
    """`worker.py --workflows`, `--bank north` and `--bank south`: three processes."""
    processes = {
        "workflows": start_worker(banks_env, "--workflows"),
        "north": start_worker(banks_env, "--bank", "north"),
        "south": start_worker(banks_env, "--bank", "south"),
    }
    yield processes
    for process in processes.values():
        if process.process.poll() is None:
            stop_worker(process)


def test_a_cross_bank_transfer_from_the_command_line(
    banks_env: dict[str, str], topology: dict[str, WorkerProcess]
) -> None:
    """Open at each bank, transfer across, list by bank, audit every bank and the positions."""
    for args in [
        ("NORTH-001", "--owner", "Alice", "--balance", "1000", "--bank", "north"),
        ("SOUTH-001", "--owner", "Dave", "--balance", "50"),
    ]:
        opened = run_cli(banks_env, "accounts", "open", *args)
        assert 0 == opened.returncode, opened.stderr
    assert "at bank south" in opened.stdout

    done = run_cli(
        banks_env,
        "transfer",
        "--from",
        "NORTH-001",
        "--to",
        "SOUTH-001",
        "--amount",
        "120",
        "--json",
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    assert "completed" == json.loads(done.stdout)["status"]

    listed = run_cli(banks_env, "accounts", "list", "--json")
    rows = {(r["bank"], r["id"]): r["balance"] for r in json.loads(listed.stdout)}
    assert "880.00" == rows["north", "NORTH-001"]
    assert "170.00" == rows["south", "SOUTH-001"]
    assert "120.00" == rows["north", "CLEARING"]
    assert "-120.00" == rows["south", "CLEARING"]
    owners = {(r["bank"], r["id"]): r["owner"] for r in json.loads(listed.stdout)}
    assert {"Clearing and settlement"} == {owners["north", "CLEARING"], owners["south", "CLEARING"]}
    south_only = run_cli(banks_env, "accounts", "list", "--bank", "south")
    assert "SOUTH-001" in south_only.stdout
    assert "NORTH-001" not in south_only.stdout

    audit = run_cli(banks_env, "audit", "--json")
    assert 0 == audit.returncode, audit.stdout + audit.stderr
    positions = {p["bank"]: p["completed_net"] for p in json.loads(audit.stdout)["positions"]}
    assert {"north": "120.00", "south": "-120.00"} == positions
    stop_worker(topology["north"])  # a bank worker stops cleanly on SIGTERM too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accounts", "open", "ACC-001", "--owner", "Eve"], "ACC-001 names no bank"),
        (["accounts", "open", "NORTH-9", "--owner", "Eve", "--bank", "south"], "not south"),
        (["accounts", "list", "--bank", "east"], "Unknown bank 'east'"),
        (["transfer", "--from", "NORTH-1", "--to", "WEST-1", "--amount", "3"], "WEST-1 names no"),
        (
            ["transfer", "--from", "NORTH-1", "--to", "SOUTH-1", "--amount", "3", "--low-latency"],
            "cannot serve TRANSFER_BANKS",
        ),
    ],
)
def test_bank_mistakes_get_a_one_line_error_and_exit_2(
    banks_env: dict[str, str], args: list[str], message: str
) -> None:
    """Refused before any money moves or any workflow starts."""
    done = run_cli(banks_env, *args)
    assert (2, 1) == (done.returncode, len(done.stderr.strip().splitlines())), done.stderr
    assert message in done.stderr


def test_bank_flags_need_banks(server_env: dict[str, str]) -> None:
    """`--bank` without TRANSFER_BANKS is a usage error, not a worker on a stray queue."""
    done = run_cli(server_env, "--bank", "north", script="worker.py", timeout=60)
    assert 2 == done.returncode
    assert "set TRANSFER_BANKS" in done.stderr
