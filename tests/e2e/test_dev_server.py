"""`worker.py --dev` and `make demo` on the embedded dev server at localhost:7233."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import WORKER_READY, run_cli, script_args

pytestmark = pytest.mark.e2e

SERVER_BANNER = "Temporal Server:"


@pytest.fixture
def embedded_env(cli_env: dict[str, str]) -> dict[str, str]:
    """`cli_env` without a server address: the embedded dev server starts on localhost:7233."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 7233)) == 0:
            pytest.skip("a server already listens on 7233; the embedded start cannot be tested")
    return {k: v for k, v in cli_env.items() if not k.startswith("TEMPORAL_ADDRESS")}


def wait_for(path: Path, text: str, within: float = 120) -> str:
    """The file's text once it holds `text`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path} after {within} s:\n{content}")


def start_dev_worker(env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """`worker.py --dev` in a process group of its own (as a terminal or a service runs it)."""
    with output.open("w") as out:
        return subprocess.Popen(
            script_args("worker.py", "--dev"),
            env=env,
            cwd=env["TRANSFER_DATA_DIR"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL whatever is left of the process's group (its dev server, if it outlived it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def dev_worker(embedded_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A `worker.py --dev` and the file its output goes to."""
    output = Path(embedded_env["TRANSFER_DATA_DIR"]) / "worker.out"
    worker = start_dev_worker(embedded_env, output)
    try:
        yield worker, output
    finally:
        kill_group(worker)


def test_the_dev_worker_keeps_the_servers_output_in_its_log_and_stops_cleanly(
    dev_worker: tuple[subprocess.Popen[bytes], Path], embedded_env: dict[str, str]
) -> None:
    """SIGTERM to the worker's process group: exit 0; the server's lines only in its log file."""
    worker, output = dev_worker
    started = wait_for(output, WORKER_READY)
    server_log = Path(embedded_env["TRANSFER_DATA_DIR"]) / "temporal-server.log"
    assert SERVER_BANNER in server_log.read_text()
    assert SERVER_BANNER not in started
    # One host name throughout: the codec's sign-in cookie belongs to it.
    assert "sign a browser in at http://localhost:8234/login" in started
    assert "127.0.0.1" not in started
    os.killpg(worker.pid, signal.SIGTERM)
    assert 0 == worker.wait(60)
    told = output.read_text()
    assert "Received SIGTERM; finishing in-flight work and stopping" in told
    assert "WARN" not in told


def test_a_dev_worker_stopped_while_starting_exits_0_and_stops_its_server(
    dev_worker: tuple[subprocess.Popen[bytes], Path],
) -> None:
    """SIGTERM while the dev server starts: the start-up unwinds, the server stops, exit 0."""
    worker, output = dev_worker
    wait_for(output, "Starting the embedded Temporal dev server")
    worker.send_signal(signal.SIGTERM)
    assert 0 == worker.wait(60)
    assert "Received SIGTERM while starting; stopped" in output.read_text()
    with socket.socket() as probe:
        assert 0 != probe.connect_ex(("127.0.0.1", 7233)), "the dev server outlived the worker"


def test_the_demos_transfers_stay_on_the_state_the_dev_worker_serves(
    embedded_env: dict[str, str],
) -> None:
    """The demo's output has no server chatter and says where its links work; they do, there."""
    demo = run_cli(embedded_env, "demo", timeout=300)
    assert 0 == demo.returncode, demo.stdout + demo.stderr
    assert SERVER_BANNER not in demo.stdout
    data = Path(embedded_env["TRANSFER_DATA_DIR"])
    assert (
        "The demo's Temporal dev server has stopped, so the Web UI links above answer only "
        f"while a server with its state ({data / 'temporal.db'}) runs: `make worker` "
        "(python worker.py --dev) serves it, with the Web UI at http://localhost:8233."
    ) in demo.stdout
    ids = {
        line.split()[2].rstrip(":")
        for line in demo.stdout.splitlines()
        if line.startswith("Starting transfer ")
    }
    assert 4 == len(ids), demo.stdout
    output = data / "worker.out"
    worker = start_dev_worker(embedded_env, output)
    try:
        wait_for(output, WORKER_READY)
        listed = run_cli(embedded_env, "list", "--json")
        assert 0 == listed.returncode, listed.stderr
        assert ids <= {row["transfer_id"] for row in json.loads(listed.stdout)}
        os.killpg(worker.pid, signal.SIGTERM)
        assert 0 == worker.wait(60)
    finally:
        kill_group(worker)
