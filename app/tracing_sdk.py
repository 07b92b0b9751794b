"""OpenTelemetry's SDK for `app.tracing`: configured from its environment, no failure messages.

Imported only when tracing is on (it loads the SDK and its exporters).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status

from app.config import ConfigError

#: What an exception event keeps: its type. Its message and stack trace can
#: quote a balance (``Insufficient funds: 650.00 < 1000.00``).
EXCEPTION_KEPT = frozenset({"exception.type", "exception.escaped"})


class TracingConfigError(ConfigError):
    """OpenTelemetry's environment names an exporter or protocol that is not installed."""


class _Configurator(_OTelSDKConfigurator):
    """The SDK's own configurator (the class distros subclass): it reads every OTEL_* variable."""


def configured_provider(service: str) -> TracerProvider:
    """Configure the SDK from OpenTelemetry's environment variables; its tracer provider.

    `service` is the `service.name` unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` name one. Spans go through a batch processor
    to each exporter ``OTEL_TRACES_EXPORTER`` names (``otlp`` when only an
    endpoint is set, OpenTelemetry's default), `without_failure_messages`; the
    console exporter writes one line per span to stderr.

    Raises:
        TracingConfigError: An exporter or protocol is not installed, or
            another tracer provider was set first.
    """
    os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
    # OTLP over HTTP (port 4318) is the exporter installed; see pyproject.toml.
    os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    given = OTELResourceDetector().detect().attributes
    try:
        # The SDK's configurator has no annotations.
        _Configurator().configure(  # type: ignore[no-untyped-call]
            resource_attributes={} if SERVICE_NAME in given else {SERVICE_NAME: service},
            exporter_args_map={ConsoleSpanExporter: {"out": sys.stderr, "formatter": _one_line}},
            export_span_processor=lambda exporter: BatchSpanProcessor(FailureTypesOnly(exporter)),
        )
    except RuntimeError as err:  # the SDK's words for an exporter or protocol it lacks
        raise TracingConfigError(
            f"OpenTelemetry tracing: {err}; installed are OTEL_TRACES_EXPORTER=console, otlp "
            "or none, and OTLP over http/protobuf"
        ) from err
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise TracingConfigError("OpenTelemetry tracing: another tracer provider was set first")
    return provider


def _one_line(span: ReadableSpan) -> str:
    return f"{span.to_json(indent=None)}\n"


def span_processor(exporter: SpanExporter) -> SpanProcessor:
    """A processor exporting each span at once through `exporter`, without failure messages."""
    return SimpleSpanProcessor(FailureTypesOnly(exporter))


class FailureTypesOnly(SpanExporter):
    """An exporter that hands `exporter` every span `without_failure_messages`."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export the spans, reduced."""
        return self._exporter.export([without_failure_messages(s) for s in spans])

    def shutdown(self) -> None:
        """Shut the exporter down."""
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the exporter."""
        return self._exporter.force_flush(timeout_millis)


def without_failure_messages(span: ReadableSpan) -> ReadableSpan:
    """`span` with its exception events reduced to their type, its status to a type's name.

    Temporal's interceptor records the exception of a failed activity or
    workflow, whose message can quote a balance; payload encryption keeps
    those messages from the Temporal server, and this from the trace backend.
    """
    events = [
        Event(
            event.name,
            {k: v for k, v in (event.attributes or {}).items() if k in EXCEPTION_KEPT},
            event.timestamp,
        )
        if event.name == "exception"
        else event
        for event in span.events
    ]
    description = span.status.description
    status = Status(span.status.status_code, description.split(":", 1)[0] if description else None)
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
