"""The benchmark's ratio table, evaluated on synthetic phases (no server, no worker)."""

import math

import pytest

from bench.measure import PhaseReport, PhaseResult
from bench.ratio import LONG_RUN, Direction, Goal, Metric, Ratio, Term
from bench.scenarios import RATIOS, SCENARIOS, ratios

C = 8


def phase(
    scenario: str,
    concurrency: int,
    *,
    p50: float = 0.05,
    count: int = 10,
    wall: float = 1.0,
    cpu: float = 0.1,
    events: float | None = None,
) -> PhaseReport:
    """A phase whose every workflow took `p50` seconds."""
    result = PhaseResult(
        latencies=[p50] * count,
        wall=wall,
        cpu_seconds=cpu,
        peak_rss=2**20,
        marks=[wall * (i + 1) / count for i in range(count)],
    )
    return PhaseReport(scenario, scenario, concurrency, result, events=events)


def by_name(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {row["ratio"]: row for row in rows}


def test_a_ratio_is_the_numerator_phase_metric_over_the_denominator_one() -> None:
    """A transfer p50 of 40 ms over the untuned floor's 100 ms is 0.4: within <= 0.45."""
    phases = {
        ("transfer", 1): phase("transfer", 1, p50=0.040),
        ("floor-untuned", 1): phase("floor-untuned", 1, p50=0.100),
    }

    rows = ratios(phases, concurrency=C, rounds=3)

    assert [
        {
            "ratio": "transfer p50 / untuned floor p50 (c=1)",
            "value": 0.4,
            "target": "<= 0.45",
            "met": True,
        }
    ] == rows


def test_a_missed_goal_is_reported_not_raised() -> None:
    """At C, a transfer with 0.9 of the floor's throughput misses >= 0.95 and says so."""
    phases = {
        ("transfer", C): phase("transfer", C, count=90),
        ("floor", C): phase("floor", C, count=100),
    }

    row = by_name(ratios(phases, concurrency=C, rounds=3))[
        "transfer throughput / floor throughput (c=8)"
    ]

    assert {"value": 0.9, "target": ">= 0.95", "met": False} == {
        k: row[k] for k in ("value", "target", "met")
    }


def test_terms_at_c_read_the_phases_at_the_runs_concurrency() -> None:
    """A ratio at C names the run's C and reads its phases, not those at c=1."""
    phases = {
        ("transfer", 1): phase("transfer", 1, cpu=9.0),
        ("floor", 1): phase("floor", 1, cpu=1.0),
        ("transfer", 4): phase("transfer", 4, cpu=1.0),
        ("floor", 4): phase("floor", 4, cpu=1.0),
    }

    rows = by_name(ratios(phases, concurrency=4, rounds=3))

    assert 1.0 == rows["transfer CPU / floor CPU per workflow (c=4)"]["value"]


def test_a_ratio_whose_phase_did_not_run_is_left_out() -> None:
    """With only the transfer run (--only transfer), no ratio has a row."""
    phases = {("transfer", 1): phase("transfer", 1), ("transfer", C): phase("transfer", C)}

    assert [] == ratios(phases, concurrency=C, rounds=3)


def test_a_zero_denominator_leaves_the_ratio_out() -> None:
    """A floor whose CPU did not register (0 ms) gives no CPU ratio rather than a division error."""
    phases = {("transfer", C): phase("transfer", C), ("floor", C): phase("floor", C, cpu=0.0)}

    names = {row["ratio"] for row in ratios(phases, concurrency=C, rounds=3)}

    assert "transfer CPU / floor CPU per workflow (c=8)" not in names


def test_a_difference_is_shown_in_its_unit_and_judged_before_scaling() -> None:
    """Saga overhead: 50 - 40 - 3 ms is 7.0 ms, past the 5 ms that counts as near 0."""
    phases = {
        ("transfer", 1): phase("transfer", 1, p50=0.050),
        ("floor", 1): phase("floor", 1, p50=0.040),
        ("ledger", 1): phase("ledger", 1, p50=0.003),
    }

    row = by_name(ratios(phases, concurrency=C, rounds=3))[
        "saga overhead ms: transfer p50 - floor p50 - ledger p50 (c=1)"
    ]

    assert {"value": 7.0, "target": "(near 0)", "met": False} == {
        k: row[k] for k in ("value", "target", "met")
    }


def test_history_events_compare_transfer_and_floor_at_c_1() -> None:
    """A transfer with 18 events against the floor's 17 is one more: the goal is met."""
    phases = {
        ("transfer", 1): phase("transfer", 1, events=18.0),
        ("floor", 1): phase("floor", 1, events=17.0),
    }

    row = by_name(ratios(phases, concurrency=C, rounds=3))["history events: transfer - floor"]

    assert (1.0, "<= 1", True) == (row["value"], row["target"], row["met"])


@pytest.mark.parametrize(("count", "rounds"), [(LONG_RUN, 1), (LONG_RUN - 1, 1), (LONG_RUN, 3)])
def test_drift_ratios_need_one_long_round(count: int, rounds: int) -> None:
    """Throughput and memory drift are reported only for one round of at least LONG_RUN."""
    transfer = phase("transfer", C, count=count, wall=count / 20)
    transfer.result.rss_samples = [(t, 100 * 2**20) for t in range(0, int(count / 20) + 1)]

    names = {
        row["ratio"] for row in ratios({("transfer", C): transfer}, concurrency=C, rounds=rounds)
    }

    drift = {
        "throughput of the last 1000 / the first 1000",
        "worker RSS at the end / after the first 1000",
    }
    assert (drift if (count, rounds) == (LONG_RUN, 1) else set()) == names & drift


def test_an_even_long_run_has_no_drift() -> None:
    """Steady throughput and flat memory over 2000 transfers give 1.0 for both, goals met."""
    transfer = phase("transfer", C, count=2000, wall=100.0)
    transfer.result.rss_samples = [(float(t), 100 * 2**20) for t in range(101)]

    rows = by_name(ratios({("transfer", C): transfer}, concurrency=C, rounds=1))

    assert (1.0, True) == (
        rows["throughput of the last 1000 / the first 1000"]["value"],
        rows["throughput of the last 1000 / the first 1000"]["met"],
    )
    assert (1.0, True) == (
        rows["worker RSS at the end / after the first 1000"]["value"],
        rows["worker RSS at the end / after the first 1000"]["met"],
    )


@pytest.mark.parametrize(
    ("direction", "value", "met"),
    [
        (Direction.AT_MOST, 1.0, True),
        (Direction.AT_MOST, 1.01, False),
        (Direction.BELOW, 1.0, False),
        (Direction.AT_LEAST, 1.0, True),
        (Direction.AT_LEAST, 0.99, False),
        (Direction.ABOVE, 1.0, False),
        (Direction.ABOVE, math.nan, False),
        (Direction.AT_MOST, math.nan, False),
    ],
)
def test_a_goal_is_met_on_its_side_of_the_bound(
    direction: Direction, value: float, met: bool
) -> None:
    """At most and at least include the bound, below and above do not; NaN meets nothing."""
    assert met == Goal(direction, 1.0).met(value)


def test_a_goal_prints_its_bound_as_written_or_its_note() -> None:
    """The target column reads as the table writes it: '>= 1.0', '<= 2', or a note."""
    assert ">= 1.0" == Goal(Direction.AT_LEAST, 1.0).target
    assert "<= 2" == Goal(Direction.AT_MOST, 2).target
    assert "(sandbox decision)" == Goal(Direction.ABOVE, 1, "(sandbox decision)").target


def test_a_row_of_ones_own_evaluates_like_the_table_rows() -> None:
    """A Ratio built by hand reads its terms from the phases like any row of RATIOS."""
    row = Ratio(
        "dbos CPU / ledger CPU (c={c})",
        Term("dbos", None, Metric.CPU),
        (Term("ledger", None, Metric.CPU),),
        Goal(Direction.AT_LEAST, 1),
    )
    phases = {("dbos", 2): phase("dbos", 2, cpu=0.3), ("ledger", 2): phase("ledger", 2, cpu=0.1)}

    assert {
        "ratio": "dbos CPU / ledger CPU (c=2)",
        "value": 3.0,
        "target": ">= 1",
        "met": True,
    } == (row.evaluate(phases, concurrency=2, rounds=1))


def test_every_ratio_names_scenarios_that_exist() -> None:
    """A typo in the ratio table would silently drop its row; every term names a scenario."""
    keys = {s.key for s in SCENARIOS}
    for row in RATIOS:
        for term in (row.numerator, *row.denominator):
            assert term.scenario in keys, row.name
        assert row.difference or 1 == len(row.denominator), row.name
