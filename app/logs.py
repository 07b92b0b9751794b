"""The worker's logs: text for a person at a terminal, or one JSON object per line.

`configure_logging` sets the process up once (``TRANSFER_LOG_FORMAT``,
``TRANSFER_LOG_LEVEL``: `app.config.TelemetrySettings`). Every record goes
through Python logging: ours, the SDK's, the codec server's and the SDK
core's, which `app.temporal.worker_runtime` forwards here (logger
`CORE_LOGGER`), so each comes out in the one format.

- ``text``: a status line (`status`) reads as a plain sentence, on stdout
  (a warning or an error on stderr, an error as ``error: ...``); any other
  record is ``time LEVEL logger: message`` on stderr.
- ``json``: every record is one object on stdout with ``time``, ``level``,
  ``logger`` and ``message``, and where the record knows them ``transfer_id``
  (the workflow id), ``workflow_id``, ``run_id``, ``activity_type``,
  ``attempt``, ``task_queue`` and ``bank``, taken from the extras the SDK's
  workflow and activity loggers attach (``temporal_workflow``,
  ``temporal_activity``) or from the core's fields; ``exception`` holds a
  traceback. Uncaught exceptions and warnings are records too.

No Temporal import here: the worker's `--help` and its configuration errors
load none.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

#: The record attribute that marks a status line: what a person watching the
#: process reads (`Worker running: ...`), as `print` would have shown it.
STATUS = "transfer_status"
#: Where the SDK core's log lines arrive (`app.temporal.worker_runtime`).
CORE_LOGGER = "temporalio.sdk_core"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: A bank's task queue, as `workflows.banks.bank_task_queue` names it:
#: ``bank-<name>``, or ``<workflow task queue>.bank-<name>``.
_BANK_QUEUE = re.compile(r"(?:^|\.)bank-([a-z][a-z0-9]{0,15})$")
#: The names the context fields go by in the SDK's extras and the core's fields.
_CONTEXT_KEYS = {
    "workflow_id": "workflow_id",
    "run_id": "run_id",
    "workflow_run_id": "run_id",
    "activity_type": "activity_type",
    "attempt": "attempt",
    "task_queue": "task_queue",
}


def bank_of_task_queue(task_queue: str) -> str | None:
    """The bank whose ledger steps run on `task_queue`; None for a workflow task queue."""
    found = _BANK_QUEUE.search(task_queue)
    return found.group(1) if found else None


def context(record: logging.LogRecord) -> dict[str, Any]:
    """What the record tells of the transfer: its id, run, step, attempt, queue and bank.

    From the SDK's ``temporal_workflow`` or ``temporal_activity`` extra, or
    the fields of a core log line; empty for a record outside a transfer.
    """
    found: dict[str, Any] = {}
    sources: list[Any] = [
        getattr(record, "temporal_workflow", None),
        getattr(record, "temporal_activity", None),
        _core_fields(record),
    ]
    for source in sources:
        if isinstance(source, Mapping):
            for key, name in _CONTEXT_KEYS.items():
                if source.get(key) not in (None, ""):
                    found.setdefault(name, source[key])
    if "workflow_id" in found:
        found = {"transfer_id": found["workflow_id"], **found}
    bank = bank_of_task_queue(str(found.get("task_queue", "")))
    if bank:
        found["bank"] = bank
    return found


def _core_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    """A forwarded core line's fields (the SDK's ``temporal_log``); None for other records."""
    core = getattr(record, "temporal_log", None)
    if core is None:
        return None
    try:
        return dict(core.fields)
    except Exception:  # the SDK calls a failed conversion its own bug; the line still counts
        return {}


def _core_target(record: logging.LogRecord) -> str | None:
    core = getattr(record, "temporal_log", None)
    return None if core is None else str(core.target)


def _status_text(level: int, message: str) -> str:
    return f"error: {message}" if level >= logging.ERROR else message


class TextFormatter(logging.Formatter):
    """A status line as its sentence; any other record as ``time LEVEL logger: message``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The line for `record`; a core line keeps its target and fields, as the SDK shows them."""
        if getattr(record, STATUS, False):
            return _status_text(record.levelno, record.getMessage())
        target, fields = _core_target(record), _core_fields(record)
        if target is None:
            return super().format(record)
        shown = logging.makeLogRecord(record.__dict__)
        shown.msg, shown.args = f"[{target}] {record.getMessage()} {fields or ''}".rstrip(), None
        return super().format(shown)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (the module docstring lists its keys)."""

    def format(self, record: logging.LogRecord) -> str:
        """`record` as a JSON line."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context(record),
        }
        target, fields = _core_target(record), _core_fields(record)
        if target is not None:
            line["target"] = target
            rest = {k: v for k, v in (fields or {}).items() if k not in _CONTEXT_KEYS}
            if rest:
                line["fields"] = rest
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class _Handler(logging.StreamHandler[IO[str]]):
    """A handler `configure_logging` installed (`configured` looks for it)."""


def configure_logging(
    log_format: str,
    level: str,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> None:
    """Send every record of this process to stdout and stderr in `log_format` from `level` on.

    Args:
        log_format: ``text`` or ``json`` (`app.config.LOG_FORMATS`).
        level: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL``.
        stdout: Where status lines (text) or every record (json) go; default sys.stdout.
        stderr: Where the other records go in text; default sys.stderr.
    """
    stdout = stdout or sys.stdout
    if log_format == "json":
        handler = _Handler(stdout)
        handler.setFormatter(JsonFormatter())
        handlers = [handler]
    else:
        told, logged = _Handler(stdout), _Handler(stderr or sys.stderr)
        told.addFilter(_told)
        logged.addFilter(lambda record: not _told(record))
        for one in (told, logged):
            one.setFormatter(TextFormatter())
        handlers = [told, logged]
    logging.basicConfig(level=level, handlers=handlers, force=True)
    json_lines = log_format == "json"
    # Warnings and uncaught exceptions would otherwise be plain text on stderr.
    logging.captureWarnings(json_lines)
    sys.excepthook = _log_uncaught if json_lines else sys.__excepthook__
    threading.excepthook = _log_thread_death if json_lines else threading.__excepthook__


def _told(record: logging.LogRecord) -> bool:
    """A status line below WARNING: the text format prints it on stdout."""
    return bool(getattr(record, STATUS, False)) and record.levelno < logging.WARNING


def configured() -> bool:
    """Whether `configure_logging` has set this process up."""
    return any(isinstance(h, _Handler) for h in logging.getLogger().handlers)


def status(logger: logging.Logger, text: str, *, level: int = logging.INFO) -> None:
    """Tell the person running the process `text`: a status record, or a plain line.

    A record once `configure_logging` ran (the worker); printed as it reads
    otherwise (the demo, which shares the dev server's start-up with the
    worker), on stdout, or stderr from WARNING on.
    """
    if configured():
        logger.log(level, text, extra={STATUS: True}, stacklevel=2)
    else:
        out = sys.stderr if level >= logging.WARNING else sys.stdout
        print(_status_text(level, text), file=out, flush=True)


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    logging.getLogger("app").critical("Uncaught %s", kind.__name__, exc_info=(kind, error, trace))


def _log_thread_death(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("app").critical(
        "Uncaught %s in thread %s",
        args.exc_type.__name__,
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
