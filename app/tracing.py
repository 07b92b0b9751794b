"""Tracing with OpenTelemetry: one trace per transfer, from the starter to each bank's ledger.

Off unless OpenTelemetry's own environment variables ask for it:
``OTEL_TRACES_EXPORTER`` (``console``, ``otlp``, ...) or
``OTEL_EXPORTER_OTLP_ENDPOINT`` (``otlp`` then, OpenTelemetry's default
exporter); ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn it
off. Off costs nothing: this module imports no OpenTelemetry until
`start_tracing` finds tracing on, and then no client or worker gets an
interceptor and no ledger a span.

On, the SDK's own configurator reads every other standard variable (the
OTLP endpoint, headers and protocol, the sampler, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, the batch processor's limits); we add
Temporal's `TracingInterceptor` to every client and worker, which carries
the trace through the workflow to each activity in its headers, and a span
around each ledger write (`ledger.tracing`). Each process names itself:
``saga-transfer-starter``, ``-worker``, ``-workflows``, ``-bank-<name>``
(unless ``OTEL_SERVICE_NAME`` says otherwise). Every span leaves the process
with failure types but no failure messages: those quote balances, which
payload encryption keeps from the Temporal server too (docs/security.md).
The console exporter writes one JSON line per span to stderr, so a command's
stdout (its `--json` document) stays what scripts read. `stop_tracing`
exports what is buffered; `app.cli.output.exit_process` calls it, since
`os._exit` skips OpenTelemetry's own exit handler.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported only once tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Client
    from temporalio.contrib.opentelemetry import TracingInterceptor

    from ledger import LedgerStore

#: Whichever of these is set turns tracing on.
TRACING_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
SERVICE_PREFIX = "saga-transfer"


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether OpenTelemetry's environment variables ask for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in TRACING_VARIABLES)


def service_name(role: str) -> str:
    """The default `service.name` of a process in `role`: ``saga-transfer-<role>``."""
    return f"{SERVICE_PREFIX}-{role}"


class Tracing:
    """A tracer provider, and what our clients, workers and ledgers hang on it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider

    @cached_property
    def interceptor(self) -> TracingInterceptor:
        """Temporal's interceptor: client calls, workflows and activities, one trace."""
        from temporalio.contrib.opentelemetry import TracingInterceptor

        return TracingInterceptor(self.provider.get_tracer("temporalio.contrib.opentelemetry"))

    def ledger(self, store: LedgerStore, *, bank: str | None = None) -> LedgerStore:
        """`store` with a span around each of its writes (`bank` named on them)."""
        from ledger.tracing import TracedLedgerStore

        return TracedLedgerStore(store, self.provider.get_tracer("ledger"), bank=bank)

    def stop(self) -> None:
        """Export every span still buffered, then shut the provider down."""
        self.provider.force_flush()
        self.provider.shutdown()


class _Current:
    tracing: Tracing | None = None


def active_tracing() -> Tracing | None:
    """The tracing this process runs with, if any."""
    return _Current.tracing


def start_tracing(role: str) -> Tracing | None:
    """Trace this process if OpenTelemetry's environment asks for it (once; None if off).

    `role` names the process (``starter``, ``worker``, ``workflows``,
    ``bank-north``) in its default `service.name`.

    Raises:
        app.tracing_sdk.TracingConfigError: The environment names an exporter or
            protocol that is not installed.
    """
    if _Current.tracing is None and tracing_requested():
        from app.tracing_sdk import configured_provider

        _Current.tracing = Tracing(configured_provider(service_name(role)))
    return _Current.tracing


@contextmanager
def tracing_to(provider: TracerProvider) -> Iterator[Tracing]:
    """Trace to `provider` for the block (tests; an embedding with a provider of its own)."""
    previous, _Current.tracing = _Current.tracing, Tracing(provider)
    try:
        yield _Current.tracing
    finally:
        _Current.tracing = previous


def stop_tracing() -> None:
    """Export what is buffered before the process exits; nothing when tracing is off."""
    tracing, _Current.tracing = _Current.tracing, None
    if tracing is not None:
        tracing.stop()


def client_interceptors() -> list[TracingInterceptor]:
    """The interceptors a client of ours connects with: Temporal's tracing one, when on."""
    tracing = active_tracing()
    return [tracing.interceptor] if tracing else []


def worker_interceptors(client: Client) -> list[TracingInterceptor]:
    """The tracing interceptor for a worker, unless its client brings one (the worker takes it)."""
    tracing = active_tracing()
    if tracing is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    if any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"]):
        return []
    return [tracing.interceptor]


def traced_ledger(store: LedgerStore, *, bank: str | None = None) -> LedgerStore:
    """`store`, with a span per write when tracing is on."""
    tracing = active_tracing()
    return tracing.ledger(store, bank=bank) if tracing else store
