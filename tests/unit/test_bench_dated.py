"""The dated scenario's pieces that need no server: lanes, RSS windows, ratios, the sentence."""

import asyncio
import math
from typing import Any

import pytest

from bench import report
from bench.dated import FIGURES, _in_lanes, _most_between, summary
from bench.measure import PhaseReport, PhaseResult
from bench.scenarios import ratios

C = 8
MIB = 2**20


def figures(**given: float) -> dict[str, float]:
    """Every figure of a dated phase, those not given as NaN."""
    return {key: given.get(key, math.nan) for key in FIGURES}


def phase(
    scenario: str,
    *,
    count: int = 100,
    wall: float = 10.0,
    peak_rss: int = 100 * MIB,
    dated: dict[str, float] | None = None,
) -> PhaseReport:
    """A phase at C of `count` workflows over `wall` seconds."""
    result = PhaseResult(
        latencies=[0.1] * count,
        wall=wall,
        cpu_seconds=1.0,
        peak_rss=peak_rss,
        marks=[wall * (i + 1) / count for i in range(count)],
    )
    return PhaseReport(scenario, scenario, C, result, dated=dated)


async def test_lanes_keep_the_order_of_the_indexes_and_their_concurrency() -> None:
    """Results come back by index whatever order they finish in, never more than C at once."""
    running, most = 0, 0
    done: list[int] = []

    async def one(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (i % 3))
        running -= 1
        return i * i

    results = await _in_lanes(10, 3, one, lambda: done.append(1))

    assert [i * i for i in range(10)] == results
    assert 3 == most
    assert 10 == len(done)


def test_rss_while_waiting_is_read_between_the_take_up_and_the_moment() -> None:
    """Samples from the last take-up (t=-2) to the moment (t=0) count; before and after do not."""
    samples = [(-5.0, 1), (-2.0, 7), (-1.0, 9), (0.0, 8), (1.0, 50)]

    assert [7, 9, 8] == _most_between(samples, -2.0, 0.0)


def test_with_no_sample_in_the_window_the_last_one_before_it_stands_in() -> None:
    """Taken up just before the moment, between two samples: the sample before it counts."""
    samples = [(-3.0, 4), (-1.0, 6), (0.5, 50)]

    assert [6] == _most_between(samples, -0.5, 0.0)


def test_dated_throughput_and_rss_are_compared_with_the_plain_transfer() -> None:
    """Once due 90/s against the plain 100/s is 0.9 (met); waiting at 150 MiB against 100 is 1.5."""
    phases = {
        ("transfer", C): phase("transfer", count=1000, wall=10.0, peak_rss=100 * MIB),
        ("dated", C): phase(
            "dated", count=900, wall=10.0, dated=figures(rss_waiting_max=150 * MIB)
        ),
    }

    rows = {row["ratio"]: row for row in ratios(phases, concurrency=C, rounds=3)}

    throughput = rows["dated throughput once due / transfer throughput (c=8)"]
    assert (0.9, ">= 0.9", True) == (throughput["value"], throughput["target"], throughput["met"])
    rss = rows["dated worker RSS while waiting / transfer worker peak RSS (c=8)"]
    assert (1.5, "<= 2 (the cache's cost)", True) == (rss["value"], rss["target"], rss["met"])


@pytest.mark.parametrize(("count", "reported"), [(2000, True), (1999, False)])
def test_the_dated_rss_drift_is_reported_only_for_a_long_phase(count: int, reported: bool) -> None:
    """10,000 waiting against the first 1000 started: only a phase of at least 2000 has it."""
    dated = figures(rss_waiting_max=121 * MIB, rss_after_first_thousand_started=110 * MIB)
    phases = {("dated", C): phase("dated", count=count, dated=dated)}

    rows = {row["ratio"]: row for row in ratios(phases, concurrency=C, rounds=1)}

    name = "dated worker RSS while waiting / after the first 1000 started"
    assert reported == (name in rows)
    if reported:
        assert (1.1, True) == (rows[name]["value"], rows[name]["met"])


def test_a_phase_without_dated_figures_gives_no_dated_ratio() -> None:
    """A transfer phase mistaken for the dated one (no figures) leaves the rows out, no error."""
    phases = {("transfer", C): phase("transfer"), ("dated", C): phase("dated", dated=None)}

    names = {row["ratio"] for row in ratios(phases, concurrency=C, rounds=1)}

    assert not any("RSS while waiting" in name for name in names)


def row(scenario: str, **fields: Any) -> dict[str, Any]:
    """A JSON report's phase row, with the fields the sentence reads."""
    base = {"scenario": scenario, "concurrency": C, "workflows": 1000, "throughput_per_s": 18.0}
    return base | fields


DATED = row(
    "dated",
    throughput_per_s=18.0,
    dated=figures(
        start_s=26.3,
        lead_s=10.2,
        rss_waiting_max=194 * MIB,
        rss_waiting_samples=41,
        lateness_max_s=55.0,
        sampled=20,
        sampled_task_timeouts=14,
    ),
)


def test_the_dated_sentence_compares_with_the_plain_transfer() -> None:
    """The sentence gives the starts, the RSS and the throughput once due against the plain run."""
    plain = row("transfer", throughput_per_s=20.0, peak_rss_mib=97.0)

    assert (
        "Dated: 1000 transfers due at one moment, started at c=8 in 26.3 s and all taken up "
        "10.2 s before the moment. While they waited the worker's RSS was at most 194 MiB "
        "(41 samples), 2.00 times the plain transfer's peak. The last completed 55.0 s after "
        "the moment: 18.0 transfers/s once due, 0.90 times the plain transfer's 20.0/s at c=8; "
        "14 workflow task timeouts in 20 sampled histories."
    ) == summary(DATED, plain)


def test_without_the_plain_transfer_the_sentence_compares_with_nothing() -> None:
    """`--only dated`: the figures alone, no ratio to a phase that did not run."""
    sentence = summary(DATED, None)

    assert "times the plain" not in sentence
    assert "18.0 transfers/s once due;" in sentence


def test_the_report_has_a_sentence_for_a_dated_phase_only() -> None:
    """A report with a dated phase has its sentence, compared with the transfer at the same C."""
    rows = [row("transfer", peak_rss_mib=97.0), DATED]

    assert [summary(DATED, rows[0])] == report.dated_summaries(rows)
    assert [] == report.dated_summaries([rows[0]])
