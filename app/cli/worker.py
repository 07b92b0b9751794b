"""`worker.py` (`saga-transfer-worker`): run the transfer workflows and the ledger's steps."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from app.cli.commands import CommandParser, UsageError, add_version, start_settings, typed
from app.cli.output import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CommandError,
    Output,
    exit_process,
    guard,
)
from app.config import ConfigError, Settings
from app.logs import configure_logging, configured, status
from app.private_files import owner_only_umask
from app.telemetry_settings import LOG_LEVELS, TelemetrySettings
from app.tracing import start_tracing
from workflows.banks import bank_task_queue

if TYPE_CHECKING:  # imported when the worker starts: `--help` and `--version` need no Temporal
    from temporalio.runtime import Runtime

    from app.keys import KeyRing
    from app.worker import StopSignals

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerArgs:
    """`worker.py [--dev] [--metrics-port PORT] [--workflows | --bank NAME] ...`."""

    dev: bool
    metrics_port: int | None
    metrics_host: str
    workflows: bool
    bank: str | None
    log_level: str | None


def worker_parser(prog: str = "worker.py") -> CommandParser:
    """The worker's command line."""
    parser = CommandParser(
        prog=prog, description="Run the money-transfer worker (workflows and activities)."
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="start the embedded Temporal dev server (state in .data/, Web UI on :8233) "
        "unless one already answers",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port (default: TRANSFER_METRICS_PORT, else off)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address the metrics endpoint binds to (default 127.0.0.1; 0.0.0.0 for all)",
    )
    role = parser.add_mutually_exclusive_group()
    role.add_argument(
        "--workflows",
        action="store_true",
        help="with TRANSFER_BANKS: run only the transfer workflows (no ledger)",
    )
    role.add_argument(
        "--bank",
        metavar="NAME",
        help="with TRANSFER_BANKS: run only this bank's ledger steps, on task queue bank-NAME",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS)} (default: TRANSFER_LOG_LEVEL, else INFO); "
        "TRANSFER_LOG_FORMAT=json logs one JSON object a line",
    )
    add_version(parser)
    return parser


def worker_main(argv: Sequence[str] | None = None, *, prog: str = "worker.py") -> int:
    """`python worker.py [--dev]`: run until SIGINT or SIGTERM; returns the exit code.

    Every file and directory it creates (the dev server's too) is owner-only
    (`worker.py` and `saga-transfer-worker` both come through here), and a
    data directory others can enter is closed first.
    """
    # A stop request while the SDK is still loading is a stop, not a kill
    # (exit 143); the event loop takes the signals over once it runs.
    previous = {sig: signal.signal(sig, _stop_while_starting) for sig in STOP_SIGNALS}
    try:
        with owner_only_umask():
            return _worker_main(argv, prog)
    except _StopWhileStarting as stop:
        status(logger, f"Received {stop.signal.name} while starting; stopped")
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _StopWhileStarting(BaseException):
    """SIGINT or SIGTERM before the event loop took the signals over (see `StopSignals`).

    A BaseException, as KeyboardInterrupt is: no `except Exception` in the
    code it interrupts (an import, say) may swallow it.
    """

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.signal = sig


def _stop_while_starting(signum: int, frame: object) -> None:
    raise _StopWhileStarting(signal.Signals(signum))


class _LoggedOutput(Output):
    """The worker's errors: log records once logging is set up (JSON lines in that format)."""

    def error(self, message: str, code: int) -> int:
        """Log `message` as an error (text: `error: ...` on stderr, as before); returns `code`."""
        if not configured():
            return super().error(message, code)
        status(logger, message, level=logging.ERROR)
        return code


def _worker_main(argv: Sequence[str] | None, prog: str) -> int:
    out = _LoggedOutput()
    try:
        args = typed(WorkerArgs, worker_parser(prog).parse_args(argv))
        telemetry = TelemetrySettings.from_env(
            log_level=args.log_level, metrics_port=args.metrics_port
        )
    except UsageError as err:
        return out.usage_error(err.usage, err.message)
    except ConfigError as err:  # before logging is set up: a plain line, whatever the format
        return out.error(str(err), EXIT_USAGE)
    configure_logging(telemetry.log_format, telemetry.log_level)
    try:
        settings = start_settings(say=lambda text: status(logger, text, level=logging.WARNING))
        # Each role its own service name, so a trace shows where each span ran.
        start_tracing(
            f"bank-{args.bank}" if args.bank else "workflows" if args.workflows else "worker"
        )
    except ConfigError as err:
        return out.error(str(err), EXIT_USAGE)
    from app.temporal import worker_runtime

    runtime = worker_runtime(telemetry, metrics_host=args.metrics_host)
    address = f"{args.metrics_host}:{telemetry.metrics_port}" if telemetry.metrics_port else None
    return guard(
        lambda: _run_worker(
            settings,
            dev=args.dev,
            runtime=runtime,
            metrics_address=address,
            bank=args.bank,
            workflows_only=args.workflows,
        ),
        out,
    )


def run() -> NoReturn:
    """The `saga-transfer-worker` console command."""
    exit_process(worker_main(prog="saga-transfer-worker"))


async def _run_worker(
    settings: Settings,
    *,
    dev: bool,
    runtime: Runtime,
    metrics_address: str | None,
    bank: str | None = None,
    workflows_only: bool = False,
) -> int:
    import asyncio

    from app.worker import StopSignals

    signals = StopSignals()
    try:
        return await _serve(
            settings,
            signals,
            dev=dev,
            runtime=runtime,
            metrics_address=metrics_address,
            bank=bank,
            workflows_only=workflows_only,
        )
    except asyncio.CancelledError:
        if signals.received is None:
            raise
        status(logger, f"Received {signals.received.name} while starting; stopped")
        return EXIT_OK
    finally:
        signals.close()


async def _serve(
    settings: Settings,
    signals: StopSignals,
    *,
    dev: bool,
    runtime: Runtime,
    metrics_address: str | None,
    bank: str | None,
    workflows_only: bool,
) -> int:
    from app.temporal import missing_search_attributes, server_client
    from app.worker import running_bank_workers, running_worker

    if not settings.multi_bank and (bank or workflows_only):
        raise CommandError(
            "--bank and --workflows split the work between banks: set TRANSFER_BANKS "
            "(such as north,south) first",
            EXIT_USAGE,
        )
    served = [settings.require_bank(bank)] if bank else [] if workflows_only else settings.banks
    # Before Temporal: a ledger this code cannot use is refused first, in one line.
    stores = {b: settings.open_ledger(b) for b in served}
    single = None if settings.multi_bank else settings.open_ledger()
    async with server_client(settings, dev=dev, runtime=runtime) as client:
        if bank is None:
            missing = await missing_search_attributes(client)
            if missing:
                raise CommandError(
                    f"Search attributes {', '.join(missing)} are not registered on namespace "
                    f"{client.namespace}: run `python starter.py setup` (once per cluster, and "
                    "again after an upgrade that adds some), then start the worker again",
                    EXIT_UNAVAILABLE,
                )
        where = f"{client.service_client.config.target_host} (namespace {client.namespace})"
        running: contextlib.AbstractAsyncContextManager[Any]
        if single is not None:
            running = running_worker(client, single, task_queue=settings.task_queue)
            what = f"task queue {settings.task_queue!r} at {where}, ledger {single!r}"
        else:
            running = running_bank_workers(
                client, stores, task_queue=settings.task_queue, workflows=bank is None
            )
            parts = [] if bank else [f"workflows on task queue {settings.task_queue!r}"]
            for b, store_b in stores.items():
                queue = bank_task_queue(b, settings.task_queue)
                parts.append(f"bank {b} on {queue!r} (ledger {store_b!r})")
            what = f"{'; '.join(parts)} at {where}"
        async with running, contextlib.AsyncExitStack() as codec:
            if metrics_address:
                status(logger, f"Prometheus metrics on http://{metrics_address}/metrics")
            ring = settings.key_ring(create=True) if dev else None
            if ring is not None:
                await _serve_codec(codec, settings, ring)
            status(logger, f"Worker running: {what}. Web UI: {settings.ui_url}. Ctrl-C to stop.")
            sig = await signals.wait()
            status(logger, f"Received {sig.name}; finishing in-flight work and stopping ...")
    return EXIT_OK


async def _serve_codec(stack: contextlib.AsyncExitStack, settings: Settings, ring: KeyRing) -> None:
    """The dev server's Web UI decodes through TRANSFER_CODEC_URL: serve it from this worker."""
    import errno

    from app.codec_server import codec_port, serving_codec, sign_in_url, token_source

    tokens = settings.codec_tokens(create=True)
    try:
        url = await stack.enter_async_context(serving_codec(settings, ring, tokens))
    except OSError as err:
        why = (
            "is taken (another `worker.py --dev` may serve it)"
            if err.errno == errno.EADDRINUSE
            else f"cannot be used ({err})"
        )
        status(
            logger,
            f"Codec server not started: port {codec_port(settings)} {why}; the "
            f"Web UI decodes through whatever answers at {settings.codec_url}.",
        )
    else:
        # Named by TRANSFER_CODEC_URL's host, not the address it binds: the
        # sign-in cookie belongs to a host name, the one the Web UI calls.
        status(
            logger,
            f"Codec server for the Web UI: sign a browser in at {sign_in_url(settings, url)} "
            f"with the token in {token_source(settings)}",
        )
