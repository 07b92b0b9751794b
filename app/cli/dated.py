"""`transfer --at | --in`, `--retry-window`, `--deadline`: when it runs, and for how long.

Everything is checked while the command line is parsed, before anything
starts (argparse names the flag; exit 2): an instant needs its time zone, a
transfer may be dated at most `MAX_SCHEDULE_AHEAD_DAYS` ahead, and a retry
window may be 0 (only operators retry) up to
`MAX_COMPENSATION_RETRY_WINDOW_SECONDS`. The workflow checks the date again
(a hand-written start), but only once it runs.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from app import render
from app.cli.commands import flag_type
from app.when import format_duration, format_instant, parse_duration, parse_instant
from ledger.shown import quoted
from workflows.status import (
    DEFAULT_COMPENSATION_RETRY_WINDOW_SECONDS,
    MAX_COMPENSATION_RETRY_WINDOW_SECONDS,
    MAX_DEADLINE_SECONDS,
    MAX_SCHEDULE_AHEAD_DAYS,
)

if TYPE_CHECKING:  # pydantic is loaded by the handler, not by `--help`
    from workflows.contract import TransferRequest

#: How far ahead of now a transfer may be dated.
MAX_AHEAD = timedelta(days=MAX_SCHEDULE_AHEAD_DAYS)
MAX_WINDOW = timedelta(seconds=MAX_COMPENSATION_RETRY_WINDOW_SECONDS)
#: A retry window of zero, in any unit: `0`, `0s`, `0d`.
_ZERO = re.compile(r"0+[dhms]?", re.IGNORECASE | re.ASCII)


def _too_far(shown: str) -> ValueError:
    return ValueError(
        f"{shown} is more than {MAX_SCHEDULE_AHEAD_DAYS} days ahead; a transfer may be dated "
        f"at most {MAX_SCHEDULE_AHEAD_DAYS} days ahead"
    )


def execute_at(text: str, now: datetime | None = None) -> datetime:
    """`--at`: an ISO 8601 time with its zone, at most `MAX_AHEAD` after `now`.

    A time that has passed is accepted (the transfer runs at once): the same
    command run again after its date must still attach to the transfer it
    started.

    Raises:
        ValueError: Not such a time, no zone, or too far ahead.
    """
    instant = parse_instant(text)
    if instant - (now or datetime.now(UTC)) > MAX_AHEAD:
        raise _too_far(format_instant(instant))
    return instant


def delay(text: str) -> timedelta:
    """`--in`: a duration such as `2h` or `30d`, at most `MAX_AHEAD`.

    Raises:
        ValueError: Not such a duration, zero, or too long.
    """
    duration = parse_duration(text)
    if duration > MAX_AHEAD:
        raise _too_far(quoted(text.strip()))
    return duration


def retry_window(text: str) -> int:
    """`--retry-window`: whole seconds, from 0 (only operators retry) to `MAX_WINDOW`.

    Raises:
        ValueError: Not a duration, or longer than `MAX_WINDOW`.
    """
    if _ZERO.fullmatch(text.strip()):
        return 0
    window = parse_duration(text)
    if window > MAX_WINDOW:
        raise ValueError(
            f"a retry window of {quoted(text)} is longer than the most allowed, "
            f"{format_duration(MAX_WINDOW)}"
        )
    return int(window.total_seconds())


def add_options(parser: argparse.ArgumentParser, waiting: argparse._ActionsContainer) -> None:
    """Add `--at`, `--in` and `--retry-window` to `transfer`, and `--wait` to `waiting`.

    `waiting` is the group that holds `--no-wait`: one or the other.
    """
    waiting.add_argument(
        "--wait",
        action="store_true",
        help="with --at/--in: wait until it has run and ended (by default a dated transfer "
        "returns once it is scheduled)",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--at",
        type=flag_type(execute_at),
        metavar="TIME",
        help="run it then, not now: ISO 8601 with Z or an offset (2027-01-01T09:00:00Z); "
        f"at most {MAX_SCHEDULE_AHEAD_DAYS} days ahead; a time that has passed runs now",
    )
    when.add_argument(
        "--in",
        dest="after",
        type=flag_type(delay),
        metavar="DURATION",
        help="run it after this long (30s, 2h, 1d, 1h30m). Counted from now, so the same "
        "command run again later names another time: with the same --id it attaches to the "
        "transfer the first run started, which keeps its own time",
    )
    default = format_duration(timedelta(seconds=DEFAULT_COMPENSATION_RETRY_WINDOW_SECONDS))
    parser.add_argument(
        "--retry-window",
        type=flag_type(retry_window),
        metavar="DURATION",
        help="if undoing it fails for good (a frozen account, say), how long it retries by "
        f"itself before it is overdue for an operator (default {default}, at most "
        f"{format_duration(MAX_WINDOW)}; 0: only operators retry)",
    )


def timing(
    at: datetime | None,
    after: timedelta | None,
    window: int | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The request's timing fields: `--at`, `--in` (from `now`, whole seconds), `--retry-window`.

    Fields not given are left out: the request's defaults apply.
    """
    fields: dict[str, Any] = {}
    if after is not None:
        fields["execute_at"] = (now or datetime.now(UTC)).replace(microsecond=0) + after
    elif at is not None:
        fields["execute_at"] = at
    if window is not None:
        fields["compensation_retry_window_seconds"] = window
    return fields


@dataclass(frozen=True)
class Scheduled:
    """What `transfer` prints for a transfer dated ahead: text, and its `--json` document."""

    text: str
    data: dict[str, Any]

    @property
    def waiting(self) -> str:
        """The text, as `--wait` says it before it waits."""
        return f"{self.text}\nWaiting until it has run (Ctrl-C stops the waiting, not the transfer)"


def scheduled(
    transfer_id: str,
    request: TransferRequest,
    *,
    attached: bool,
    url: str,
    now: datetime | None = None,
) -> Scheduled | None:
    """How to report a transfer dated after `now`; None if it runs now (not dated, or passed)."""
    now = now or datetime.now(UTC)
    due = request.execute_at
    if due is None or due <= now:
        return None
    text = render.scheduled_text(transfer_id, request, due, attached=attached, now=now)
    data = {
        "transfer_id": transfer_id,
        "attached": attached,
        "status": "scheduled",
        "execute_at": format_instant(due),
        "url": url,
    }
    return Scheduled(f"{text}\n  Web UI: {url}", data)


def deadline_seconds(text: str) -> int:
    """`--deadline`: whole seconds, from 1 to seven days (argparse names the flag)."""
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if seconds < 1:
        raise argparse.ArgumentTypeError("must be at least 1 second")
    if seconds > MAX_DEADLINE_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_DEADLINE_SECONDS} seconds (seven days)"
        )
    return seconds
