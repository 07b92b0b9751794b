"""The embedded Temporal dev server of `worker.py --dev` and `make demo`: a child process.

It is started as a child of its own: its output goes to
``<data dir>/temporal-server.log``, not to the terminal of the worker or the
demo, and it runs in a session of its own, so Ctrl-C at the terminal (or a
SIGTERM to the whole process group) reaches only our process, which stops
its workers first and the server last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from app.processes import stop_process

#: The server's log, in the data directory next to its state (``temporal.db``).
LOG_FILE_NAME = "temporal-server.log"
DB_FILE_NAME = "temporal.db"
#: What the Temporal SDK's own `start_local` turns on: updates (retry, resolve) need it.
FRONTEND_CONFIG = [
    *("--dynamic-config-value", "frontend.enableServerVersionCheck=false"),
    *("--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"),
    *("--dynamic-config-value", "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true"),
]
START_TIMEOUT = 60.0


class DevServerFailed(RuntimeError):
    """The dev server exited, or did not answer, before it was ready (the message has its log)."""


def dev_server_args(
    cli: str,
    data_dir: Path,
    *,
    port: int,
    ui_port: int,
    namespace: str,
    search_attributes: dict[str, str],
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of `temporal server start-dev` with its state in `data_dir`."""
    args = [
        cli, "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(ui_port),
        "--namespace", namespace,
        "--db-filename", str(data_dir / DB_FILE_NAME),
        "--log-format", "pretty", "--log-level", "warn",
        *FRONTEND_CONFIG,
    ]  # fmt: skip
    for name, kind in search_attributes.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return [*args, *extra]


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without OpenTelemetry's variables, for the dev server.

    Temporal's server reads them too: it refuses to start with
    ``OTEL_TRACES_EXPORTER=console`` (not an exporter it has), and with
    ``otlp`` it would send its own traces to the collector meant for ours.
    """
    return {k: v for k, v in environ.items() if not k.startswith("OTEL_")}


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def _answers(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def running_dev_server(
    args: Sequence[str], *, log: Path, port: int, start_within: float = START_TIMEOUT
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run the dev server `args` with its output in `log` until the block exits.

    Ready once its port answers; stopped with SIGTERM (SIGKILL if it lingers)
    on the way out, whatever ends the block.

    Raises:
        DevServerFailed: It exited or stayed unreachable; with the end of its log.
    """
    with log.open("a") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args[:3])}\n")
        out.flush()
        child = await asyncio.create_subprocess_exec(
            *args,
            env=server_environment(os.environ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + start_within
        while not await _answers(port):
            if child.returncode is not None or time.monotonic() > deadline:
                tail = _tail(log)
                why = (
                    f"exited with {child.returncode}"
                    if child.returncode is not None
                    else (f"did not answer on port {port} within {start_within:.0f} s")
                )
                raise DevServerFailed(f"The Temporal dev server {why}; its log ({log}):\n{tail}")
            await asyncio.sleep(0.1)
        yield child
    finally:
        await stop_process(child)
