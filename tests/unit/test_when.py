"""Durations and instants as people type them (`app.when`): accepted exactly, or one clear line."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.when import format_duration, format_instant, parse_duration, parse_instant

#: The largest duration a `timedelta` holds, in whole seconds.
MAX_SECONDS = timedelta.max.days * 86_400 + timedelta.max.seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90m", timedelta(minutes=90)),
        (" 2H ", timedelta(hours=2)),
        ("1s", timedelta(seconds=1)),
    ],
)
def test_a_duration_is_read_unit_by_unit(text: str, expected: timedelta) -> None:
    """Days, hours, minutes, seconds, each at most once, largest first; case and edges ignored."""
    assert expected == parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a duration: ''; write it as 30s, 15m, 2h, 1d or 1h30m"),
        ("2x", "not a duration: '2x'; write it as 30s, 15m, 2h, 1d or 1h30m"),
        ("30", "not a duration: '30'; write it as 30s, 15m, 2h, 1d or 1h30m"),
        ("1s1h", "not a duration: '1s1h'; write it as 30s, 15m, 2h, 1d or 1h30m"),
        ("1h 30m", "not a duration: '1h 30m'; write it as 30s, 15m, 2h, 1d or 1h30m"),
        ("-5s", "not a duration: '-5s'; write it as 30s, 15m, 2h, 1d or 1h30m"),
        ("1.5h", "not a duration: '1.5h'; write it as 30s, 15m, 2h, 1d or 1h30m"),
        # Arabic-Indic digits: a Unicode-aware \\d would take them.
        ("\u0661\u0662s", "not a duration: '\u0661\u0662s'; write it as 30s, 15m, 2h, 1d or 1h30m"),
        ("0s", "a duration must be longer than zero: '0s'"),
        ("0d0h", "a duration must be longer than zero: '0d0h'"),
        ("1000000000d", "duration too long: '1000000000d'"),
        ("9" * 500 + "s", f"duration too long: {'9' * 40!r}... (501 characters)"),
    ],
)
def test_a_bad_duration_is_one_line_saying_how_to_write_it(text: str, message: str) -> None:
    """Garbage, zero, or more than a timedelta holds: a ValueError whose message is one line."""
    with pytest.raises(ValueError, match=r"^") as caught:
        parse_duration(text)
    assert message == str(caught.value)


@given(st.text())
@example("99999999999999d")
def test_any_text_is_a_positive_duration_or_a_value_error(text: str) -> None:
    """Never another exception; what is accepted is at least one whole second."""
    try:
        duration = parse_duration(text)
    except ValueError as err:
        message = str(err)
        assert "\n" not in message
        return
    assert duration >= timedelta(seconds=1)
    assert duration == timedelta(seconds=int(duration.total_seconds()))


@given(st.integers(min_value=1, max_value=MAX_SECONDS))
def test_every_whole_second_duration_round_trips(seconds: int) -> None:
    """Seconds -> text -> duration: exact, and the text is the shortest spelling."""
    duration = timedelta(seconds=seconds)
    text = format_duration(duration)
    assert duration == parse_duration(text)
    assert text == format_duration(parse_duration(text))


def test_format_duration_spells_it_largest_unit_first() -> None:
    """`1h30m`, `1d`, `1d0h0m5s` never: zero units are left out."""
    assert ["1h30m", "1d", "1d5s", "45s"] == [
        format_duration(timedelta(hours=1, minutes=30)),
        format_duration(timedelta(days=1)),
        format_duration(timedelta(days=1, seconds=5)),
        format_duration(timedelta(seconds=45.9)),
    ]
    with pytest.raises(ValueError, match="longer than zero"):
        format_duration(timedelta(0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-01T09:00:00Z", datetime(2025, 1, 1, 9, tzinfo=UTC)),
        ("2025-01-01T09:00:00+02:00", datetime(2025, 1, 1, 7, tzinfo=UTC)),
        ("2025-01-01 09:00-05:30", datetime(2025, 1, 1, 14, 30, tzinfo=UTC)),
        ("2025-06-30T23:59:59.5Z", datetime(2025, 6, 30, 23, 59, 59, 500_000, tzinfo=UTC)),
    ],
)
def test_an_instant_with_its_zone_becomes_utc(text: str, expected: datetime) -> None:
    """`Z` or an offset; the result is the same instant, in UTC."""
    instant = parse_instant(text)
    assert expected == instant
    assert UTC == instant.tzinfo


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "2025-01-01T09:00:00",
            "'2025-01-01T09:00:00' has no time zone: add Z (UTC) or an offset such as +02:00",
        ),
        ("2025-01-01", "'2025-01-01' has no time zone: add Z (UTC) or an offset such as +02:00"),
        (
            "tomorrow",
            "not an ISO 8601 time: 'tomorrow'; write it as 2025-01-01T09:00:00Z, "
            "or with an offset such as +02:00",
        ),
        ("0001-01-01T00:00:00+01:00", "time out of range: '0001-01-01T00:00:00+01:00'"),
    ],
)
def test_a_naive_or_unreadable_instant_is_refused_in_one_line(text: str, message: str) -> None:
    """A time without a zone would be a different instant on every machine: refused."""
    with pytest.raises(ValueError, match=r"^") as caught:
        parse_instant(text)
    assert message == str(caught.value)


@given(st.text())
@example("2025-01-01T09:00:00")
def test_any_text_is_an_aware_utc_instant_or_a_value_error(text: str) -> None:
    """Never another exception, never a naive datetime."""
    try:
        instant = parse_instant(text)
    except ValueError as err:
        message = str(err)
        assert "\n" not in message
        return
    assert UTC == instant.tzinfo


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.integers(min_value=-23 * 60, max_value=23 * 60).map(
            lambda minutes: timezone(timedelta(minutes=minutes))
        ),
    )
)
def test_every_aware_instant_round_trips(instant: datetime) -> None:
    """Any aware time, in any offset: ISO text -> the same instant; `format_instant` says Z."""
    assert instant == parse_instant(instant.isoformat())
    text = format_instant(instant)
    assert text.endswith("Z")
    assert instant == parse_instant(text)
