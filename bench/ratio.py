"""A ratio between phases of one run, its goal, and how it is read off the phases.

A row of `bench.scenarios.RATIOS` names its terms (scenario, concurrency,
metric) and its goal; `Ratio.evaluate` turns it into a row of the report.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bench.measure import PhaseReport

#: A phase at least this long reports the drift of its throughput and memory.
LONG_RUN = 2000


class Metric(StrEnum):
    """A number read off one phase."""

    P50 = "p50"  # seconds
    THROUGHPUT = "throughput"  # workflows per second
    CPU = "cpu"  # CPU seconds of the metered process per workflow
    EVENTS = "events"  # mean history events per workflow
    FIRST_THOUSAND = "first thousand"  # workflows per second over the first 1000
    LAST_THOUSAND = "last thousand"  # workflows per second over the last 1000
    RSS_AFTER_FIRST_THOUSAND = "rss after first thousand"  # bytes
    RSS_AT_END = "rss at end"  # bytes, the most over the last 1000
    PEAK_RSS = "peak rss"  # bytes, the most sampled during the phase
    # The dated scenario's own (`bench.dated.FIGURES`):
    RSS_WAITING = "rss waiting"  # bytes, the most while every transfer waits for its moment
    RSS_AFTER_FIRST_THOUSAND_STARTED = "rss after first thousand started"  # bytes


def _rss_after_first_thousand(phase: PhaseReport) -> float:
    marks = sorted(phase.result.marks)
    early = [rss for t, rss in phase.result.rss_samples if t <= marks[999] + 1]
    return early[-1] if early else float("nan")


def _rss_at_end(phase: PhaseReport) -> float:
    marks = sorted(phase.result.marks)
    late = [rss for t, rss in phase.result.rss_samples if t >= marks[-1000]]
    return max(late) if late else float("nan")


def _dated(figure: str) -> Callable[[PhaseReport], float | None]:
    return lambda p: None if p.dated is None else p.dated[figure]


_READ: dict[Metric, Callable[[PhaseReport], float | None]] = {
    Metric.P50: lambda p: p.result.percentile(50),
    Metric.THROUGHPUT: lambda p: p.result.throughput,
    Metric.CPU: lambda p: p.result.cpu_per_workflow,
    Metric.EVENTS: lambda p: p.events,
    Metric.FIRST_THOUSAND: lambda p: p.result.window_throughput(1, 1000),
    Metric.LAST_THOUSAND: lambda p: p.result.window_throughput(
        p.result.count - 1000, p.result.count
    ),
    Metric.RSS_AFTER_FIRST_THOUSAND: _rss_after_first_thousand,
    Metric.RSS_AT_END: _rss_at_end,
    Metric.PEAK_RSS: lambda p: p.result.peak_rss,
    Metric.RSS_WAITING: _dated("rss_waiting_max"),
    Metric.RSS_AFTER_FIRST_THOUSAND_STARTED: _dated("rss_after_first_thousand_started"),
}


@dataclass(frozen=True)
class Term:
    """A metric of one scenario's phase at one concurrency (None: the run's C)."""

    scenario: str
    concurrency: int | None
    metric: Metric


class Direction(StrEnum):
    """Which side of its bound a value meets its goal on."""

    AT_MOST = "<="
    BELOW = "<"
    AT_LEAST = ">="
    ABOVE = ">"


_COMPARE: dict[Direction, Callable[[float, float], bool]] = {
    Direction.AT_MOST: operator.le,
    Direction.BELOW: operator.lt,
    Direction.AT_LEAST: operator.ge,
    Direction.ABOVE: operator.gt,
}


@dataclass(frozen=True)
class Goal:
    """What a ratio should be: at most, below, at least or above a bound."""

    direction: Direction
    bound: float
    #: Shown in the report instead of the bound, for a goal that is a question
    #: to answer rather than a line to meet.
    shown: str | None = None

    @property
    def target(self) -> str:
        """The goal as the report prints it."""
        return self.shown or f"{self.direction} {self.bound}"

    def met(self, value: float) -> bool:
        """Whether `value` meets the goal (never for NaN)."""
        return _COMPARE[self.direction](value, self.bound)


@dataclass(frozen=True)
class Ratio:
    """One row of the ratio table: `numerator / denominator`, or a difference.

    A difference subtracts each denominator term in turn from the numerator.
    The goal applies to the value before `scale`, which only changes the unit
    the report shows (1000: seconds as milliseconds).
    """

    name: str  # "{c}" stands for the run's C
    numerator: Term
    denominator: tuple[Term, ...]
    goal: Goal
    difference: bool = False
    scale: float = 1.0
    places: int = 3  # rounding of the reported value
    #: Only for a single-round run with at least LONG_RUN workflows in the
    #: numerator's phase (drift over time means nothing across rounds).
    long_run: bool = False

    def evaluate(
        self, phases: Mapping[tuple[str, int], PhaseReport], *, concurrency: int, rounds: int
    ) -> dict[str, Any] | None:
        """The report's row for this ratio, or None when a phase it needs did not run."""

        def phase(term: Term) -> PhaseReport | None:
            c = concurrency if term.concurrency is None else term.concurrency
            return phases.get((term.scenario, c))

        if self.long_run:
            long = phase(self.numerator)
            if long is None or long.result.count < LONG_RUN or rounds != 1:
                return None
        read = [
            None if (p := phase(term)) is None else _READ[term.metric](p)
            for term in (self.numerator, *self.denominator)
        ]
        if any(v is None for v in read):
            return None
        value, *others = [v for v in read if v is not None]
        if self.difference:
            for other in others:
                value -= other
        else:
            (denominator,) = others
            if not denominator:
                return None
            value /= denominator
        return {
            "ratio": self.name.format(c=concurrency),
            "value": round(value * self.scale, self.places),
            "target": self.goal.target,
            "met": self.goal.met(value),
        }
