"""`transfer --at | --in | --retry-window`: parsed, checked, refused before Temporal."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.cli import dated, starter_main
from app.cli.main import starter_parser
from app.transfers import initial_status
from tests.support.cli import NOWHERE, refusal
from workflows.contract import TransferRequest, TransferStatus

TRANSFER = ["transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "25"]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.usefixtures("ledger_env")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--at", "2027-01-05T09:00:00"],
            "argument --at: '2027-01-05T09:00:00' has no time zone: add Z (UTC) or an offset "
            "such as +02:00",
        ),
        (
            ["--at", "tomorrow"],
            "argument --at: not an ISO 8601 time: 'tomorrow'; write it as 2025-01-01T09:00:00Z, "
            "or with an offset such as +02:00",
        ),
        (
            ["--at", _at(timedelta(days=367))],
            f"argument --at: {_at(timedelta(days=367))} is more than 366 days ahead; a transfer "
            "may be dated at most 366 days ahead",
        ),
        (
            ["--in", "367d"],
            "argument --in: '367d' is more than 366 days ahead; a transfer may be dated at most "
            "366 days ahead",
        ),
        (["--in", "0s"], "argument --in: a duration must be longer than zero: '0s'"),
        (
            ["--in", "2 hours"],
            "argument --in: not a duration: '2 hours'; write it as 30s, 15m, 2h, 1d or 1h30m",
        ),
        (["--in", "2h", "--at", _at(timedelta(hours=2))], "argument --at: not allowed with "),
        (
            ["--retry-window", "31d"],
            "argument --retry-window: a retry window of '31d' is longer than the most allowed, 30d",
        ),
        (
            ["--retry-window", "-1"],
            "argument --retry-window: not a duration: '-1'; write it as 30s, 15m, 2h, 1d or 1h30m",
        ),
        (["--in", "2h", "--wait", "--no-wait"], "argument --no-wait: not allowed with argument"),
    ],
)
def test_bad_timing_is_refused_before_temporal(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A naive or unreadable time, too far ahead, a zero or bad delay, both flags, a long window."""
    code, line = refusal(capsys, *TRANSFER, *extra)
    assert 2 == code
    assert message in line, line
    assert line.startswith("starter.py transfer: error: argument --"), line


@pytest.mark.usefixtures("ledger_env")
def test_a_date_too_far_ahead_is_refused_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """With --json the refusal is one JSON error on stdout, exit 2, and stderr stays empty."""
    assert 2 == starter_main([*TRANSFER, "--in", "400d", "--json"])
    out, err = capsys.readouterr()
    assert "" == err
    error = json.loads(out)["error"]
    assert 2 == error["exit_code"]
    assert "'400d' is more than 366 days ahead" in error["message"]


@pytest.mark.usefixtures("ledger_env")
@pytest.mark.parametrize(
    "extra",
    [
        ["--at", _at(timedelta(days=365)), "--retry-window", "0"],
        ["--at", "2020-01-01T09:00:00+02:00"],  # passed: runs now, and a re-run still attaches
        ["--in", "366d", "--retry-window", "30d", "--wait"],
        ["--in", "3s", "--retry-window", "0s", "--no-wait"],
    ],
)
def test_good_timing_gets_as_far_as_temporal(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The checks are not blind: valid times and windows pass them and fail only to connect."""
    code, line = refusal(capsys, *TRANSFER, *extra)
    assert 3 == code
    assert f"Cannot reach Temporal at {NOWHERE}" in line


def test_parsed_timing_becomes_the_requests_fields() -> None:
    """`--in` counts whole seconds from now; `--at` is kept in UTC; a window is in seconds."""
    parser = starter_parser()

    def fields(*extra: str) -> dict[str, object]:
        args = parser.parse_args([*TRANSFER, *extra])
        return dated.timing(args.at, args.after, args.retry_window, now=NOW.replace(microsecond=7))

    assert {"execute_at": NOW + timedelta(hours=2, minutes=30)} == fields("--in", "2h30m")
    assert {
        "execute_at": datetime(2026, 12, 24, 7, 0, tzinfo=UTC),
        "compensation_retry_window_seconds": 0,
    } == fields("--at", "2026-12-24T09:00:00+02:00", "--retry-window", "0")
    assert {"compensation_retry_window_seconds": 86_400 + 1_800} == fields(
        "--retry-window", "1d30m"
    )
    assert {} == fields()  # the request's own defaults apply


def test_only_a_transfer_dated_ahead_starts_as_scheduled() -> None:
    """Its TransferStatus search attribute starts `scheduled`; past or absent: `running`."""

    def status(execute_at: datetime | None) -> TransferStatus:
        request = TransferRequest(
            source_account="ACC-001",
            destination_account="ACC-002",
            amount=Decimal("5"),
            execute_at=execute_at,
        )
        return initial_status(request, now=NOW)

    assert TransferStatus.SCHEDULED == status(NOW + timedelta(seconds=1))
    assert TransferStatus.RUNNING == status(NOW)
    assert TransferStatus.RUNNING == status(NOW - timedelta(days=1))
    assert TransferStatus.RUNNING == status(None)


def test_a_scheduled_transfer_reports_when_it_runs_in_text_and_json() -> None:
    """`transfer --at` says when, how to follow or call it off; `--json` has the same facts."""
    request = TransferRequest(
        source_account="ACC-001",
        destination_account="ACC-002",
        amount=Decimal("20"),
        execute_at=NOW + timedelta(days=23, hours=4, minutes=5),
    )
    shown = dated.scheduled("rent-1", request, attached=False, url="http://ui/rent-1", now=NOW)
    assert shown is not None
    assert [
        "Scheduled transfer rent-1: 20.00 ACC-001 -> ACC-002 at 2026-12-24T13:05:00Z (in 23d 4h)",
        "  Nothing moves until then: `python starter.py status rent-1` follows it, "
        "`python starter.py cancel rent-1` calls it off",
        "  Web UI: http://ui/rent-1",
    ] == shown.text.splitlines()
    assert {
        "transfer_id": "rent-1",
        "attached": False,
        "status": "scheduled",
        "execute_at": "2026-12-24T13:05:00Z",
        "url": "http://ui/rent-1",
    } == shown.data
    again = dated.scheduled("rent-1", request, attached=True, url="u", now=NOW)
    assert again is not None
    assert again.text.startswith("Attached to existing transfer rent-1: 20.00")
    assert (
        dated.scheduled("rent-1", request, attached=False, url="u", now=request.execute_at) is None
    )
