"""Child processes for tests, soak and benchmark: start one, wait until it is ready.

A child writes its output to a log file; it is ready once a given text
appears there (`Worker running`, say). One that exits first, or stays silent
past the timeout, raises `ProcessNotReady` with the end of its log, so a
failing start says why. The same rules serve blocking callers
(`start_process_sync`, a `subprocess.Popen`) and asyncio ones
(`start_process`, an `asyncio.subprocess.Process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path

#: How long a child may take to say it is ready, by default.
READY_TIMEOUT = 60.0
#: How long a child may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 30.0
_POLL = 0.1


class ProcessNotReady(RuntimeError):
    """A child exited, or stayed silent, before it said it was ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check(args: Sequence[str], log: Path, ready: str, returncode: int | None) -> bool:
    """Whether the child is ready; raises if it exited without saying so."""
    text = log.read_text(errors="replace") if log.exists() else ""
    if ready in text:
        return True
    if returncode is not None:
        raise ProcessNotReady(
            f"{' '.join(args[:3])} exited with {returncode} before it was ready:\n{text[-2000:]}"
        )
    return False


def _not_ready(args: Sequence[str], log: Path, timeout: float) -> ProcessNotReady:
    text = log.read_text(errors="replace") if log.exists() else ""
    return ProcessNotReady(
        f"{' '.join(args[:3])} was not ready after {timeout:.0f} s:\n{text[-2000:]}"
    )


async def start_process(
    args: Sequence[str],
    *,
    log: Path,
    ready: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    ready_within: float = READY_TIMEOUT,
) -> asyncio.subprocess.Process:
    """Start `args` with its output in `log`; return once `ready` appears there."""
    with log.open("w") as out:
        child = await asyncio.create_subprocess_exec(
            *args, env=dict(env) if env is not None else None, cwd=cwd, stdout=out, stderr=out
        )
    deadline = time.monotonic() + ready_within
    try:
        while not _check(args, log, ready, child.returncode):
            if time.monotonic() > deadline:
                raise _not_ready(args, log, ready_within)
            await asyncio.sleep(_POLL)
    except BaseException:
        await stop_process(child)
        raise
    return child


async def stop_process(
    child: asyncio.subprocess.Process,
    stop_within: float = STOP_TIMEOUT,
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> int:
    """`stop_signal`, then SIGKILL if the child has not exited within `stop_within`; its exit code.

    `stop_signal` is SIGTERM unless the child stops on another (SIGINT, as at Ctrl-C).
    """
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(stop_signal)
        try:
            await asyncio.wait_for(child.wait(), stop_within)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    assert child.returncode is not None
    return child.returncode


@contextlib.asynccontextmanager
async def running_process(
    args: Sequence[str],
    *,
    log: Path,
    ready: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    ready_within: float = READY_TIMEOUT,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`start_process` as a context: the child is stopped (if alive) on the way out."""
    child = await start_process(
        args, log=log, ready=ready, env=env, cwd=cwd, ready_within=ready_within
    )
    try:
        yield child
    finally:
        await stop_process(child)


def start_process_sync(
    args: Sequence[str],
    *,
    log: Path,
    ready: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    ready_within: float = READY_TIMEOUT,
) -> subprocess.Popen[bytes]:
    """`start_process` for blocking callers: a `subprocess.Popen`, returned once ready."""
    with log.open("w") as out:
        child = subprocess.Popen(
            list(args), env=dict(env) if env is not None else None, cwd=cwd, stdout=out, stderr=out
        )
    deadline = time.monotonic() + ready_within
    try:
        while not _check(args, log, ready, child.poll()):
            if time.monotonic() > deadline:
                raise _not_ready(args, log, ready_within)
            time.sleep(_POLL)
    except BaseException:
        stop_process_sync(child)
        raise
    return child


def stop_process_sync(
    child: subprocess.Popen[bytes],
    stop_within: float = STOP_TIMEOUT,
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> int:
    """`stop_process` for blocking callers."""
    if child.poll() is None:
        child.send_signal(stop_signal)
        try:
            child.wait(stop_within)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


@contextlib.contextmanager
def running_process_sync(
    args: Sequence[str],
    *,
    log: Path,
    ready: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    ready_within: float = READY_TIMEOUT,
) -> Iterator[subprocess.Popen[bytes]]:
    """`start_process_sync` as a context: the child is stopped (if alive) on the way out."""
    child = start_process_sync(
        args, log=log, ready=ready, env=env, cwd=cwd, ready_within=ready_within
    )
    try:
        yield child
    finally:
        stop_process_sync(child)
