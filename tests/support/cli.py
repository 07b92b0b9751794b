"""The project's command lines as child processes: `starter.py` runs, `worker.py` processes.

Every child runs in the environment's ``TRANSFER_DATA_DIR``; children that
stay up write their output to a log file there, and are ready once it says
so (`app.processes`).
"""

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from app.cli import starter_main
from app.processes import running_process, start_process_sync, stop_process_sync

#: The repository: where `starter.py` and `worker.py` live.
ROOT = Path(__file__).resolve().parents[2]
#: What a worker prints once it polls its task queues.
WORKER_READY = "Worker running"
#: Where nothing answers: input that passes every check fails there instead, with exit 3.
NOWHERE = "127.0.0.1:1"


def refusal(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `starter.py ARGS` in this process; its exit code and the last line it wrote to stderr."""
    code = starter_main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def script_args(script: str, *args: str) -> list[str]:
    """The command line of `python SCRIPT ARGS` (a file at the repository's root)."""
    return [sys.executable, str(ROOT / script), *args]


def run_cli(
    env: Mapping[str, str], *args: str, script: str = "starter.py", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python SCRIPT ARGS` to the end; its exit code and output."""
    return subprocess.run(
        script_args(script, *args),
        cwd=env["TRANSFER_DATA_DIR"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def run_cli_async(
    env: Mapping[str, str], *args: str, script: str = "starter.py"
) -> tuple[int, str, str]:
    """`run_cli` without blocking the event loop (a worker may live on it): code, out, err."""
    process = await asyncio.create_subprocess_exec(
        *script_args(script, *args),
        env=dict(env),
        cwd=env["TRANSFER_DATA_DIR"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def running_child(
    env: Mapping[str, str], *args: str, log: Path, ready: str = WORKER_READY
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`args` as a child in the data dir, logging to `log`, once `ready`; stopped on exit."""
    async with running_process(
        args, log=log, ready=ready, env=env, cwd=env["TRANSFER_DATA_DIR"]
    ) as child:
        yield child


@dataclasses.dataclass(frozen=True)
class WorkerProcess:
    """A `worker.py` process and the log file its output goes to."""

    process: "subprocess.Popen[bytes]"
    log: Path

    def output(self) -> str:
        """Everything the worker has printed so far."""
        return self.log.read_text(errors="replace")


def start_worker(env: Mapping[str, str], *args: str) -> WorkerProcess:
    """`python worker.py [args]` as its own process, returned once it says it is running."""
    log = Path(env["TRANSFER_DATA_DIR"]) / f"worker-{uuid.uuid4().hex[:8]}.log"
    process = start_process_sync(
        script_args("worker.py", *args),
        log=log,
        ready=WORKER_READY,
        env=env,
        cwd=env["TRANSFER_DATA_DIR"],
    )
    return WorkerProcess(process, log)


def stop_worker(worker: WorkerProcess) -> str:
    """SIGTERM must stop a worker cleanly; returns its output after it said it was running."""
    code = stop_process_sync(worker.process)
    out = worker.output()
    rest = out[out.index(WORKER_READY) :]
    assert 0 == code, out
    assert "Received SIGTERM" in rest
    return rest
