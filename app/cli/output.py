"""What a command leaves behind: its output, its error and its exit code.

Exit codes: 0 done, 1 a transfer (or an audit) did not complete, 2 bad
input or usage, 3 Temporal or the ledger cannot be reached, 130 interrupted.

`Output` is the one place that chooses between text and JSON. In text mode
a result goes to stdout and an error is one line, `error: ...`, on stderr.
In JSON mode stdout carries exactly one JSON document: the result, or, when
the command fails, `{"error": {"message": ..., "exit_code": ...}}` (one
line, same exit code as in text mode); progress notes move to stderr so
they never mix with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn

from app.keys import EncryptionError
from app.tracing import stop_tracing
from ledger import LedgerError

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A command failed in a way the user should read in one line."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Output:
    """Where a command's result, notes and errors go, in text or JSON.

    Attributes:
        json: JSON on stdout instead of text (the command's `--json`).
    """

    json: bool = False

    def result(self, text: str | None, data: object, *, indent: int | None = 2) -> None:
        """Print the command's result: `text`, or `data` as JSON.

        Args:
            text: The human-readable result; None when the text has been told already.
            data: The JSON result: a pydantic model or anything `json.dumps` takes
                (values it does not know are written as strings).
            indent: JSON indentation; None for one line.
        """
        if not self.json:
            if text is not None:
                print(text, flush=True)
        elif hasattr(data, "model_dump_json"):  # a pydantic model (not imported here)
            print(data.model_dump_json(indent=indent), flush=True)
        else:
            print(json.dumps(data, indent=indent, default=str), flush=True)

    def note(self, text: str) -> None:
        """Progress for a person: stdout in text mode, stderr in JSON mode."""
        print(text, file=sys.stderr if self.json else sys.stdout, flush=True)

    def narrating(self) -> contextlib.AbstractContextManager[object]:
        """Within it, a story told with `print` goes where notes go (stderr in JSON mode)."""
        if self.json:
            return contextlib.redirect_stdout(sys.stderr)
        return contextlib.nullcontext()

    def error(self, message: str, code: int) -> int:
        """Report a failure; returns `code`, the exit code."""
        if self.json:
            print(json.dumps({"error": {"message": message, "exit_code": code}}), flush=True)
        else:
            print(f"error: {message}", file=sys.stderr)
        return code

    def usage_error(self, usage: str, message: str) -> int:
        """Report bad usage found by argparse (`message` is `prog: error: ...`)."""
        if self.json:
            return self.error(message, EXIT_USAGE)
        sys.stderr.write(f"{usage}{message}\n")
        return EXIT_USAGE


def warn(text: str) -> None:
    """A line for a person on stderr, in either mode: waiting, warnings, hints."""
    print(text, file=sys.stderr, flush=True)


def guard(command: Callable[[], Coroutine[Any, Any, int]], out: Output) -> int:
    """Run a command; turn expected failures into one error and an exit code."""
    import asyncio  # here, not at the top: `--help` never runs a command

    try:
        return asyncio.run(command())
    except KeyboardInterrupt:
        message, code = "Interrupted", EXIT_INTERRUPTED
    except Exception as err:
        failure = _expected_failure(err)
        if failure is None:
            raise
        message, code = failure
    return out.error(message, code)


def _expected_failure(err: Exception) -> tuple[str, int] | None:
    """The message and exit code of an expected failure; None for a bug.

    pydantic's and Temporal's errors are looked up only once their modules
    are loaded (nothing else can raise them), so a command that uses neither
    starts without importing them.
    """
    if isinstance(err, CommandError):
        return str(err), err.code
    if "pydantic" in sys.modules:
        from pydantic import ValidationError

        if isinstance(err, ValidationError):
            from app.transfers import validation_message

            return validation_message(err), EXIT_USAGE
    if isinstance(err, LedgerError):
        return str(err), EXIT_UNAVAILABLE if err.retryable else EXIT_USAGE
    if isinstance(err, ValueError):
        return str(err), EXIT_USAGE
    if isinstance(err, EncryptionError):
        return f"cannot decrypt: {err}", EXIT_USAGE
    if isinstance(err, FileNotFoundError):
        return str(err), EXIT_UNAVAILABLE
    if "temporalio" not in sys.modules:
        return None
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError

    from app.temporal import ServerUnavailable
    from app.transfers import TransferIdConflict

    if isinstance(err, TransferIdConflict):
        return str(err), EXIT_USAGE
    if isinstance(err, ServerUnavailable):
        return str(err), EXIT_UNAVAILABLE
    if isinstance(err, RPCError):
        return f"Temporal refused the call: {err.message}", EXIT_UNAVAILABLE
    if isinstance(err, WorkflowQueryFailedError):
        return f"The transfer's state query failed: {err}", EXIT_UNAVAILABLE
    return None


def exit_process(code: int) -> NoReturn:
    """Flush everything, then leave without interpreter finalization.

    The Temporal SDK's Rust core keeps threads that can call into Python
    while the interpreter finalizes; short-lived processes then die with
    "Fatal Python error: PyGILState_Release" (SIGABRT/SIGSEGV) after their
    work is done (temporalio/sdk-python#300, seen here on about one exit in
    five). All our work is finished and flushed by now, so skip finalization;
    the spans still buffered (`app.tracing`) are exported first, since
    OpenTelemetry's own exit handler would not run.
    """
    stop_tracing()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
