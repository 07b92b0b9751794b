"""Durations and instants as people type them: `1h30m`, `2025-01-01T09:00:00Z`.

Shared by every command that takes a time (standing orders' `--every`,
`--start-at` and `--end-at`; a dated transfer's `--at` and `--in`). Errors
are `ValueError`s with a one-line message that says how to write it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from ledger.shown import quoted

#: Each unit at most once, largest first: `1d`, `2h`, `15m`, `30s`, `1h30m`, `1d12h`.
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.IGNORECASE | re.ASCII)
_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
#: Enough digits for any duration `timedelta` holds, few enough to refuse a megabyte of them.
_MAX_DIGITS = 15

DURATION_HINT = "write it as 30s, 15m, 2h, 1d or 1h30m"
INSTANT_HINT = "write it as 2025-01-01T09:00:00Z, or with an offset such as +02:00"


def parse_duration(text: str) -> timedelta:
    """A positive whole number of seconds written with units: `30s`, `15m`, `2h`, `1d`, `1h30m`.

    Raises:
        ValueError: Not such a duration, zero, or longer than `timedelta` holds.
    """
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"not a duration: {quoted(text)}; {DURATION_HINT}")
    if any(len(group) > _MAX_DIGITS for group in match.groups() if group):
        raise ValueError(f"duration too long: {quoted(text)}")
    seconds = sum(
        int(count) * size for count, (_, size) in zip(match.groups(), _UNITS, strict=True) if count
    )
    if seconds == 0:
        raise ValueError(f"a duration must be longer than zero: {quoted(text)}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration too long: {quoted(text)}") from None


def format_duration(duration: timedelta) -> str:
    """A duration as `parse_duration` reads it (`1h30m`; whole seconds, sub-seconds dropped).

    Raises:
        ValueError: The duration is not positive.
    """
    seconds = int(duration.total_seconds())
    if seconds <= 0:
        raise ValueError(f"a duration must be longer than zero: {duration}")
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time with its time zone (`Z` or an offset), as an aware UTC datetime.

    Raises:
        ValueError: Not ISO 8601, or without a time zone (a naive time would
            mean a different instant on every machine).
    """
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {quoted(text)}; {INSTANT_HINT}") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"{quoted(text)} has no time zone: add Z (UTC) or an offset such as +02:00"
        )
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"time out of range: {quoted(text)}") from None


def format_instant(instant: datetime) -> str:
    """An aware datetime as `parse_instant` reads it, in UTC: `2025-01-01T09:00:00Z`."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
