"""The worker's logs: the JSON and text formats, the transfer's context, where lines go."""

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.cli import worker_main
from app.config import ConfigError
from app.logs import (
    CORE_LOGGER,
    STATUS,
    JsonFormatter,
    TextFormatter,
    bank_of_task_queue,
    configure_logging,
    configured,
    context,
    status,
)
from app.telemetry_settings import TelemetrySettings
from workflows.banks import DEFAULT_TASK_QUEUE, bank_task_queue

#: What the SDK's activity logger attaches to a record (temporalio.activity.Info._logger_details).
ACTIVITY = {
    "activity_id": "1",
    "activity_type": "debit",
    "attempt": 3,
    "namespace": "default",
    "task_queue": "money-transfer.bank-north",
    "workflow_id": "invoice-42",
    "workflow_run_id": "run-1",
    "workflow_type": "TransferWorkflow",
}
#: What the SDK's workflow logger attaches (temporalio.workflow.Info._logger_details).
WORKFLOW = {
    "attempt": 1,
    "namespace": "default",
    "run_id": "run-1",
    "task_queue": "money-transfer",
    "workflow_id": "invoice-42",
    "workflow_type": "TransferWorkflow",
}


@dataclass
class CoreLog:
    """The shape of a forwarded core line (temporalio.bridge.runtime.BufferedLogEntry)."""

    target: str = "temporalio_sdk_core::worker"
    fields: dict[str, Any] = field(
        default_factory=lambda: {"task_queue": "bank-south", "namespace": "default"}
    )


def record(
    message: str = "Step %s applied",
    args: tuple[object, ...] = ("invoice-42/debit",),
    *,
    name: str = "temporalio.activity",
    level: int = logging.INFO,
    **extra: Any,
) -> logging.LogRecord:
    """A log record as `logging.Logger.makeRecord` builds one, with `extra` on it."""
    made = logging.getLogger(name).makeRecord(
        name, level, "x.py", 1, message, args, None, extra=extra
    )
    return made


def as_json(made: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(made)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`configure_logging` changes the process: put the root logger and the hooks back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


def test_a_json_line_of_an_activity_carries_the_transfer_step_attempt_and_bank() -> None:
    """The activity logger's extras become the transfer id, run, step, attempt and bank."""
    line = as_json(record(temporal_activity=ACTIVITY))
    assert {
        "level": "INFO",
        "logger": "temporalio.activity",
        "message": "Step invoice-42/debit applied",
        "transfer_id": "invoice-42",
        "workflow_id": "invoice-42",
        "run_id": "run-1",
        "activity_type": "debit",
        "attempt": 3,
        "task_queue": "money-transfer.bank-north",
        "bank": "north",
    } == {k: v for k, v in line.items() if k != "time"}
    assert line["time"].endswith("Z")
    assert "T" in line["time"]


def test_a_json_line_of_a_workflow_carries_its_run_and_no_bank() -> None:
    """The workflow logger's extras give the transfer and its run; a workflow queue is no bank."""
    line = as_json(
        record("Transfer completed", (), name="temporalio.workflow", temporal_workflow=WORKFLOW)
    )
    assert "invoice-42" == line["transfer_id"]
    assert "run-1" == line["run_id"]
    assert "bank" not in line
    assert "activity_type" not in line


def test_a_json_line_outside_a_transfer_has_only_the_four_keys() -> None:
    """A record that knows no transfer says so by leaving the context keys out."""
    line = as_json(record("Worker running", (), name="app.cli.worker"))
    assert {"time", "level", "logger", "message"} == set(line)


def test_a_forwarded_core_line_keeps_its_target_and_fields() -> None:
    """A core line's target and fields are keys of the JSON line; its queue names the bank."""
    line = as_json(record("Initializing worker", (), name=CORE_LOGGER, temporal_log=CoreLog()))
    assert CORE_LOGGER == line["logger"]
    assert "temporalio_sdk_core::worker" == line["target"]
    assert {"namespace": "default"} == line["fields"]
    assert "south" == line["bank"]


def test_a_json_line_carries_the_traceback_of_an_exception() -> None:
    """An exception logged with its traceback stays on one JSON line."""
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        made = record("boom", (), name="app", level=logging.ERROR)
        made.exc_info = sys.exc_info()
    line = as_json(made)
    assert line["exception"].startswith("Traceback")
    assert "ZeroDivisionError: division by zero" in line["exception"]


@pytest.mark.parametrize("workflow_queue", [DEFAULT_TASK_QUEUE, "e2e-1234", "money.transfer"])
def test_a_banks_task_queue_names_the_bank(workflow_queue: str) -> None:
    """The inverse of `bank_task_queue`, so the bank follows if the queue's naming changes."""
    assert "north" == bank_of_task_queue(bank_task_queue("north", workflow_queue))
    assert bank_of_task_queue(workflow_queue) is None


def test_the_context_of_an_unknown_extra_is_empty() -> None:
    """Extras that are not the SDK's dicts are ignored, not guessed at."""
    assert {} == context(record(temporal_activity="not a dict", temporal_workflow=None))


def test_the_text_format_shows_a_status_line_as_its_sentence() -> None:
    """Status lines read as the worker printed them; other records keep time, level and logger."""
    text = TextFormatter()
    told = record("Worker running: %s", ("queue",), name="app.cli.worker", **{STATUS: True})
    assert "Worker running: queue" == text.format(told)
    failed = record("no server", (), name="app", level=logging.ERROR, **{STATUS: True})
    assert "error: no server" == text.format(failed)
    plain = text.format(record(temporal_activity=ACTIVITY))
    assert plain.endswith(" INFO temporalio.activity: Step invoice-42/debit applied")
    core = text.format(record("Initializing worker", (), name=CORE_LOGGER, temporal_log=CoreLog()))
    assert "[temporalio_sdk_core::worker] Initializing worker {'task_queue'" in core


def test_text_sends_status_lines_to_stdout_and_the_rest_to_stderr(
    restore_logging: None,
) -> None:
    """As before the logs: status sentences on stdout, warnings and other records on stderr."""
    out, err = io.StringIO(), io.StringIO()
    configure_logging("text", "INFO", stdout=out, stderr=err)
    log = logging.getLogger("app.test")
    status(log, "Worker running: here")
    status(log, "Data directory closed", level=logging.WARNING)
    log.info("a library's record")
    log.debug("below the level")
    assert "Worker running: here\n" == out.getvalue()
    lines = err.getvalue().splitlines()
    assert "Data directory closed" == lines[0]
    assert lines[1].endswith(" INFO app.test: a library's record")
    assert 2 == len(lines)


def test_json_sends_every_record_to_stdout_as_one_object_a_line(restore_logging: None) -> None:
    """With json every record, status or not, is a JSON line on stdout; stderr stays empty."""
    out, err = io.StringIO(), io.StringIO()
    configure_logging("json", "DEBUG", stdout=out, stderr=err)
    log = logging.getLogger("app.test")
    status(log, "Worker running: here")
    log.debug("detail %d", 7)
    status(log, "no server", level=logging.ERROR)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert ["Worker running: here", "detail 7", "no server"] == [x["message"] for x in lines]
    assert ["INFO", "DEBUG", "ERROR"] == [x["level"] for x in lines]
    assert "" == err.getvalue()


def test_json_turns_an_uncaught_exception_into_a_json_line(restore_logging: None) -> None:
    """The interpreter's last words (an uncaught exception) are a JSON record too."""
    out = io.StringIO()
    configure_logging("json", "INFO", stdout=out)
    try:
        raise RuntimeError("bug")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    line = json.loads(out.getvalue())
    assert "CRITICAL" == line["level"]
    assert "RuntimeError: bug" in line["exception"]


def test_a_status_line_is_printed_where_logging_is_not_set_up(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """The demo shares the dev server's start-up: there a status line is a plain print."""
    logging.getLogger().handlers[:] = []
    assert not configured()
    status(logging.getLogger("app.test"), "Starting the embedded Temporal dev server")
    status(logging.getLogger("app.test"), "closed it", level=logging.WARNING)
    captured = capsys.readouterr()
    assert "Starting the embedded Temporal dev server\n" == captured.out
    assert "closed it\n" == captured.err


def test_telemetry_settings_default_to_text_info_and_no_metrics() -> None:
    """Nothing set: text at INFO, no metrics endpoint."""
    assert TelemetrySettings("text", "INFO", 0) == TelemetrySettings.from_env({})


def test_telemetry_settings_read_the_variables_and_the_flags_win() -> None:
    """The variables in any case; `--log-level` and `--metrics-port` override them."""
    env = {
        "TRANSFER_LOG_FORMAT": "JSON",
        "TRANSFER_LOG_LEVEL": "warning",
        "TRANSFER_METRICS_PORT": "9464",
    }
    assert TelemetrySettings("json", "WARNING", 9464) == TelemetrySettings.from_env(env)
    flags = TelemetrySettings.from_env(env, log_level="debug", metrics_port=9000)
    assert TelemetrySettings("json", "DEBUG", 9000) == flags


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({"TRANSFER_LOG_FORMAT": "xml"}, {}, "TRANSFER_LOG_FORMAT must be one of text, json"),
        ({"TRANSFER_LOG_LEVEL": "loud"}, {}, "TRANSFER_LOG_LEVEL must be one of DEBUG, INFO"),
        ({}, {"log_level": "loud"}, "--log-level must be one of DEBUG"),
        ({"TRANSFER_METRICS_PORT": "abc"}, {}, "TRANSFER_METRICS_PORT must be a port number"),
        ({"TRANSFER_METRICS_PORT": "70000"}, {}, "TRANSFER_METRICS_PORT must be a port number"),
        ({}, {"metrics_port": -1}, "--metrics-port must be a port number (1-65535), not '-1'"),
    ],
)
def test_a_bad_telemetry_setting_is_refused_naming_it(
    env: dict[str, str], flags: dict[str, Any], message: str
) -> None:
    """A value the setting does not take is one ConfigError line naming the variable or flag."""
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        TelemetrySettings.from_env(env, **flags)


def test_the_worker_refuses_a_bad_log_format_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """`TRANSFER_LOG_FORMAT=xml python worker.py`: exit 2, one plain line, nothing started."""
    monkeypatch.setenv("TRANSFER_LOG_FORMAT", "xml")
    assert 2 == worker_main([])
    captured = capsys.readouterr()
    assert "" == captured.out
    expected = "error: TRANSFER_LOG_FORMAT must be one of text, json, not 'xml'\n"
    assert expected == captured.err
