"""What the benchmark runs and what it compares, as two tables.

`SCENARIOS` lists what runs, where, and the outcome every workflow must
have. `RATIOS` lists the comparisons the report makes between phases of the
same run, each with its goal; `ratios` evaluates them. Goals are reported,
never asserted: on a shared machine a missed goal is a finding, not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.measure import PhaseReport
from bench.ratio import Direction, Goal, Metric, Ratio, Term

UNTUNED, PROJECT = "untuned", "project"


@dataclass(frozen=True)
class Scenario:
    """One row group of the report: what runs, where, and the outcome every run must have."""

    key: str
    label: str
    server: str | None  # UNTUNED, PROJECT, or None (no Temporal server: DBOS)
    # "worker" (worker processes, driven from here), "dated" (the same, all
    # its transfers due at one moment: bench.dated), "inprocess", "dbos", or
    # "ledger" (the two ledger calls straight from this process)
    runner: str
    workload: str  # "floor", "transfer", "insufficient", "refused", "default", "low-latency"
    worker_args: tuple[str, ...] = ()
    expect: str = "completed"
    #: Payloads in plain text (TRANSFER_ENCRYPTION=off for driver and workers),
    #: to price the encryption every other Temporal scenario pays.
    plain: bool = False


_FLOOR, _TRANSFER = ("--kind", "floor"), ("--kind", "transfer")

SCENARIOS = [
    Scenario(
        "floor-untuned",
        "floor: untuned dev server, SDK defaults",
        UNTUNED,
        "worker",
        "floor",
        (*_FLOOR, "--sdk-defaults"),
    ),
    Scenario(
        "floor", "floor: project server and worker settings", PROJECT, "worker", "floor", _FLOOR
    ),
    Scenario("transfer", "transfer: project default", PROJECT, "worker", "transfer", _TRANSFER),
    Scenario(
        "transfer-plain",
        "transfer: payloads not encrypted",
        PROJECT,
        "worker",
        "transfer",
        _TRANSFER,
        plain=True,
    ),
    Scenario(
        "transfer-sandboxed",
        "transfer: workflows in the SDK sandbox",
        PROJECT,
        "worker",
        "transfer",
        (*_TRANSFER, "--sandboxed"),
    ),
    Scenario(
        "dated",
        "transfer: all dated for one moment, started before it",
        PROJECT,
        "dated",
        "transfer",
        _TRANSFER,
    ),
    Scenario(
        "insufficient",
        "failure: insufficient funds",
        PROJECT,
        "worker",
        "insufficient",
        _TRANSFER,
        expect="compensated",
    ),
    Scenario(
        "refused",
        "failure: credit refused, debit compensated",
        PROJECT,
        "worker",
        "refused",
        _TRANSFER,
        expect="compensated",
    ),
    Scenario(
        "inprocess", "transfer: client and worker in one process", PROJECT, "inprocess", "default"
    ),
    Scenario(
        "low-latency",
        "low-latency: local activities, eager start",
        PROJECT,
        "inprocess",
        "low-latency",
    ),
    Scenario("dbos", "DBOS: two steps, SQLite system database", None, "dbos", "dbos"),
    Scenario("ledger", "ledger alone: debit then credit, no engine", None, "ledger", "transfer"),
]


P50, TPUT, CPU, EVENTS = Metric.P50, Metric.THROUGHPUT, Metric.CPU, Metric.EVENTS
AT_MOST, BELOW, AT_LEAST, ABOVE = (
    Direction.AT_MOST,
    Direction.BELOW,
    Direction.AT_LEAST,
    Direction.ABOVE,
)
#: A term's concurrency that stands for the run's own C (`--concurrency`).
C = None

RATIOS = [
    Ratio(
        "transfer p50 / untuned floor p50 (c=1)",
        Term("transfer", 1, P50),
        (Term("floor-untuned", 1, P50),),
        Goal(AT_MOST, 0.45),
    ),
    Ratio(
        "transfer throughput / floor throughput (c={c})",
        Term("transfer", C, TPUT),
        (Term("floor", C, TPUT),),
        Goal(AT_LEAST, 0.95),
    ),
    Ratio(
        "transfer CPU / floor CPU per workflow (c={c})",
        Term("transfer", C, CPU),
        (Term("floor", C, CPU),),
        Goal(AT_MOST, 1.1),
    ),
    Ratio(
        "saga overhead ms: transfer p50 - floor p50 - ledger p50 (c=1)",
        Term("transfer", 1, P50),
        (Term("floor", 1, P50), Term("ledger", 1, P50)),
        Goal(AT_MOST, 0.005, "(near 0)"),
        difference=True,
        scale=1000,
        places=1,
    ),
    Ratio(
        "floor p50 tuned / untuned (c=1)",
        Term("floor", 1, P50),
        (Term("floor-untuned", 1, P50),),
        Goal(BELOW, 1, "(the server setting alone)"),
    ),
    Ratio(
        "encrypted / plain transfer p50 (c=1)",
        Term("transfer", 1, P50),
        (Term("transfer-plain", 1, P50),),
        Goal(AT_MOST, 1.05, "(price of encryption)"),
    ),
    Ratio(
        "encrypted / plain transfer CPU (c={c})",
        Term("transfer", C, CPU),
        (Term("transfer-plain", C, CPU),),
        Goal(AT_MOST, 1.1, "(price of encryption)"),
    ),
    Ratio(
        "sandboxed / unsandboxed transfer p50 (c=1)",
        Term("transfer-sandboxed", 1, P50),
        (Term("transfer", 1, P50),),
        Goal(ABOVE, 1, "(sandbox decision)"),
    ),
    Ratio(
        "sandboxed / unsandboxed transfer CPU (c={c})",
        Term("transfer-sandboxed", C, CPU),
        (Term("transfer", C, CPU),),
        Goal(ABOVE, 1, "(sandbox decision)"),
    ),
    Ratio(
        "low-latency p50 / default p50, both in-process (c=1)",
        Term("low-latency", 1, P50),
        (Term("inprocess", 1, P50),),
        Goal(BELOW, 1),
    ),
    Ratio(
        "low-latency throughput / DBOS throughput (c={c})",
        Term("low-latency", C, TPUT),
        (Term("dbos", C, TPUT),),
        Goal(AT_LEAST, 1.0),
    ),
    Ratio(
        "low-latency p50 / DBOS p50 (c=1)",
        Term("low-latency", 1, P50),
        (Term("dbos", 1, P50),),
        Goal(AT_MOST, 2),
    ),
    Ratio(
        "history events: transfer - floor",
        Term("transfer", 1, EVENTS),
        (Term("floor", 1, EVENTS),),
        Goal(AT_MOST, 1),
        difference=True,
        places=2,
    ),
    Ratio(
        "dated throughput once due / transfer throughput (c={c})",
        Term("dated", C, TPUT),
        (Term("transfer", C, TPUT),),
        Goal(AT_LEAST, 0.9),
    ),
    Ratio(
        "dated worker RSS while waiting / transfer worker peak RSS (c={c})",
        Term("dated", C, Metric.RSS_WAITING),
        (Term("transfer", C, Metric.PEAK_RSS),),
        # The cache holds at most 1000 waiting transfers, whatever N: about
        # the plain worker's own footprint again (docs/performance.md).
        Goal(AT_MOST, 2, "<= 2 (the cache's cost)"),
    ),
    Ratio(
        "throughput of the last 1000 / the first 1000",
        Term("transfer", C, Metric.LAST_THOUSAND),
        (Term("transfer", C, Metric.FIRST_THOUSAND),),
        Goal(AT_LEAST, 0.9),
        long_run=True,
    ),
    Ratio(
        "worker RSS at the end / after the first 1000",
        Term("transfer", C, Metric.RSS_AT_END),
        (Term("transfer", C, Metric.RSS_AFTER_FIRST_THOUSAND),),
        Goal(BELOW, 1.2),
        long_run=True,
    ),
    Ratio(
        "dated worker RSS while waiting / after the first 1000 started",
        Term("dated", C, Metric.RSS_WAITING),
        (Term("dated", C, Metric.RSS_AFTER_FIRST_THOUSAND_STARTED),),
        Goal(BELOW, 1.2),
        long_run=True,
    ),
]


def ratios(
    phases: Mapping[tuple[str, int], PhaseReport], *, concurrency: int, rounds: int
) -> list[dict[str, Any]]:
    """The report's ratio rows, in table order, for the phases that ran."""
    rows = (r.evaluate(phases, concurrency=concurrency, rounds=rounds) for r in RATIOS)
    return [row for row in rows if row is not None]
