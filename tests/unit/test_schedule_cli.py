"""`schedule create` refuses bad input in one line before it calls Temporal (no server here)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.cli import starter_main
from app.schedules import Timing
from tests.support.cli import NOWHERE, refusal
from tests.unit.test_cli_startup import loaded_by

ORDER = ["schedule", "create", "rent", "--from", "ACC-001", "--to", "ACC-002", "--amount", "150"]


IN_AN_HOUR = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.usefixtures("ledger_env")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--every", "1d", "--start-at", "2030-01-01T09:00:00"],
            "argument --start-at: '2030-01-01T09:00:00' has no time zone: add Z (UTC) "
            "or an offset such as +02:00",
        ),
        (
            ["--every", "1d", "--end-at", "next week"],
            "argument --end-at: not an ISO 8601 time: 'next week'; write it as "
            "2025-01-01T09:00:00Z, or with an offset such as +02:00",
        ),
        (
            ["--every", "2x"],
            "argument --every: not a duration: '2x'; write it as 30s, 15m, 2h, 1d or 1h30m",
        ),
        (["--every", "0s"], "argument --every: a duration must be longer than zero: '0s'"),
        (
            ["--every", "1d", "--cron", "0 9 1 * *"],
            "argument --cron: not allowed with argument --every",
        ),
        ([], "one of the arguments --every --cron is required"),
        (
            ["--cron", "0 0 9 1 * *"],
            "error: --cron takes 5 fields (minute hour day-of-month month day-of-week), such as "
            "\"0 9 1 * *\"; got '0 0 9 1 * *'",
        ),
        (
            ["--every", "400d"],
            'error: --every is at most 365d; for a yearly order use --cron such as "0 9 1 1 *"',
        ),
        (
            [
                "--every",
                "1d",
                "--start-at",
                "2030-01-02T00:00:00Z",
                "--end-at",
                "2030-01-01T00:00Z",
            ],
            "error: --end-at must be after --start-at",
        ),
        (
            ["--every", "1d", "--end-at", "2020-01-01T00:00:00+02:00"],
            "error: --end-at 2019-12-31T22:00:00Z has passed: the order would never run",
        ),
    ],
)
def test_bad_timing_is_refused_before_temporal(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A naive time, a bad duration, both or neither of --every/--cron, a wrong cron, bad bounds."""
    code, line = refusal(capsys, *ORDER, *extra)
    assert 2 == code
    assert line.endswith(message), line


@pytest.mark.usefixtures("ledger_env")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["schedule", "create", "rent 1", "--from", "ACC-001", "--to", "ACC-002"],
            "error: Invalid standing order id 'rent 1': use 1-64 letters, digits, '-', '_' or "
            "'.', starting with a letter or digit",
        ),
        (
            ["schedule", "create", "a/b", "--from", "ACC-001", "--to", "ACC-002"],
            "error: Invalid standing order id 'a/b': use 1-64 letters, digits, '-', '_' or "
            "'.', starting with a letter or digit",
        ),
        (
            ["schedule", "create", "rent", "--from", "ACC-001", "--to", "ACC-777"],
            "error: Account not found: ACC-777",
        ),
        (
            ["schedule", "create", "rent", "--from", "acc-001", "--to", "ACC-002"],
            "error: Account not found: acc-001 (account numbers are case-sensitive: did you "
            "mean ACC-001?)",
        ),
        (
            ["schedule", "create", "rent", "--from", "ACC-001", "--to", "ACC-001"],
            "error: Source and destination are the same account: ACC-001",
        ),
    ],
)
def test_bad_ids_and_accounts_are_refused_before_temporal(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The order id, unknown accounts (as `transfer` checks them), one account twice."""
    code, line = refusal(capsys, *args, "--amount", "150", "--every", "1d")
    assert (2, message) == (code, line)


@pytest.mark.usefixtures("ledger_env")
def test_a_bad_amount_is_refused_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """With --json the refusal is one JSON error on stdout, exit 2."""
    args = ["schedule", "create", "rent", "--from", "ACC-001", "--to", "ACC-002"]
    assert 2 == starter_main([*args, "--amount", "1.234", "--every", "1d", "--json"])
    assert {
        "error": {
            "message": "Amount has more than two decimal places (USD has two): 1.234",
            "exit_code": 2,
        }
    } == json.loads(capsys.readouterr().out)


@pytest.mark.usefixtures("ledger_env")
def test_good_input_gets_as_far_as_temporal(capsys: pytest.CaptureFixture[str]) -> None:
    """The checks are not blind: a valid order passes them all and fails only to connect."""
    code, line = refusal(
        capsys, *ORDER, "--cron", "0  9 1 * *", "--start-at", "2030-01-01T09:00+01:00",
        "--end-at", "2031-01-01T00:00:00Z",
    )  # fmt: skip
    assert 3 == code
    assert f"Cannot reach Temporal at {NOWHERE}" in line


def test_an_interval_starts_at_start_at_not_at_the_epoch() -> None:
    """`--every 1d --start-at 09:30Z` runs at 09:30 each day: the interval's offset says so."""
    start = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)
    [interval] = Timing(every=timedelta(days=1), start_at=start).spec().intervals
    assert (timedelta(days=1), timedelta(hours=9, minutes=30)) == (interval.every, interval.offset)
    [aligned] = Timing(every=timedelta(hours=1)).spec().intervals
    assert aligned.offset is None


@pytest.mark.parametrize(
    "command", [["starter", "schedule", "--help"], ["starter", "schedule", "create", "--help"]]
)
def test_schedule_help_does_not_import_temporal(command: list[str], tmp_path: Path) -> None:
    """The `schedule` commands load Temporal in their handlers only."""
    assert {"code": 0, "heavy": []} == loaded_by(command, tmp_path)
