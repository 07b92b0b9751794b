"""What every benchmark phase measures, and the format phases report in.

A phase runs N workflows at concurrency C and records, for each, the time
from the client's start call to its result. The process doing the work (a
worker subprocess, or a self-driving process for the in-process modes) is
metered with psutil: CPU seconds used during the phase and resident memory,
sampled while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil


@dataclass
class PhaseResult:
    """One phase: latencies, wall time, and what the metered process spent."""

    latencies: list[float]  # seconds, start call -> result, one per workflow
    wall: float  # seconds for the whole phase
    cpu_seconds: float  # CPU (user + system) of the metered process during the phase
    peak_rss: int  # bytes, highest resident set size sampled during the phase
    rss_samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, bytes)
    outcomes: dict[str, int] = field(default_factory=dict)  # outcome -> count
    marks: list[float] = field(default_factory=list)  # seconds in when each workflow finished

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhaseResult:
        """The inverse of `to_json`."""
        data = dict(data)
        data["rss_samples"] = [tuple(s) for s in data.get("rss_samples", [])]
        return cls(**data)

    @property
    def count(self) -> int:
        """Workflows run."""
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        """Workflows per second over the whole phase."""
        return self.count / self.wall if self.wall else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile in seconds (p in 0..100), nearest-rank on the sorted sample."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[rank]

    @property
    def cpu_per_workflow(self) -> float:
        """CPU seconds of the metered process per workflow."""
        return self.cpu_seconds / self.count if self.count else float("nan")

    def window_throughput(self, first: int, last: int) -> float:
        """Workflows per second between the `first`-th and `last`-th completion (1-based)."""
        marks = sorted(self.marks)
        if last > len(marks) or first < 1 or last <= first:
            return float("nan")
        span = marks[last - 1] - marks[first - 1]
        return (last - first) / span if span > 0 else float("nan")

    @property
    def median(self) -> float:
        """p50 in seconds."""
        return statistics.median(self.latencies) if self.latencies else float("nan")

    def then(self, later: PhaseResult) -> PhaseResult:
        """Two rounds of a phase as one: their workflows together, `later` after this one."""
        return PhaseResult(
            latencies=self.latencies + later.latencies,
            wall=self.wall + later.wall,
            cpu_seconds=self.cpu_seconds + later.cpu_seconds,
            peak_rss=max(self.peak_rss, later.peak_rss),
            rss_samples=self.rss_samples + [(t + self.wall, rss) for t, rss in later.rss_samples],
            outcomes=dict(Counter(self.outcomes) + Counter(later.outcomes)),
            marks=self.marks + [t + self.wall for t in later.marks],
        )


@dataclass
class PhaseReport:
    """A phase of one scenario at one concurrency, over every round so far."""

    scenario: str
    label: str
    concurrency: int
    result: PhaseResult
    events: float | None = None  # mean history events per workflow (sampled)
    history_bytes: float | None = None
    problems: list[str] = field(default_factory=list)
    #: What only the dated scenario measures (`bench.dated.FIGURES`).
    dated: dict[str, float] | None = None

    def check(self, expect: str) -> None:
        """Record a problem unless every workflow ended as `expect`."""
        wrong = {k: v for k, v in self.result.outcomes.items() if k != expect}
        if wrong:
            self.problems.append(f"expected every workflow {expect}, got {wrong}")

    def absorb(self, later: PhaseReport) -> None:
        """Merge a later round of the same phase into this one."""
        self.result = self.result.then(later.result)
        self.problems += later.problems
        if later.events is not None and self.events is not None:
            self.events = (self.events + later.events) / 2
        if later.history_bytes is not None and self.history_bytes is not None:
            self.history_bytes = (self.history_bytes + later.history_bytes) / 2


class Meter:
    """CPU and resident memory of some processes (summed), sampled while a phase runs."""

    def __init__(self, pid: int | Sequence[int], every: float = 0.25) -> None:
        self._processes = [psutil.Process(p) for p in ([pid] if isinstance(pid, int) else pid)]
        self._every = every
        self._samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None
        self._start = 0.0
        self._cpu_start = 0.0

    def _cpu(self) -> float:
        return sum(float(t.user + t.system) for t in (p.cpu_times() for p in self._processes))

    def _sample(self) -> None:
        rss = sum(p.memory_info().rss for p in self._processes)
        self._samples.append((time.monotonic() - self._start, rss))

    async def _loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self._every)

    def start(self) -> None:
        """Start metering now."""
        self._start = time.monotonic()
        self._cpu_start = self._cpu()
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> tuple[float, int, list[tuple[float, int]]]:
        """Stop; return CPU seconds used, peak RSS and the RSS samples."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._sample()
        cpu = self._cpu() - self._cpu_start
        return cpu, max(rss for _, rss in self._samples), self._samples


#: One workflow: runs it to the end and names its outcome ("completed", ...).
RunOne = Callable[[int], Awaitable[str]]


async def drive(
    run_one: RunOne,
    *,
    transfers: int,
    concurrency: int,
    meter: Meter,
    progress: Callable[[], None] | None = None,
) -> PhaseResult:
    """Run `transfers` workflows, `concurrency` at a time, each timed start to result."""
    latencies: list[float] = []
    marks: list[float] = []
    outcomes: Counter[str] = Counter()
    next_index = 0
    start = time.monotonic()

    async def lane() -> None:
        nonlocal next_index
        while next_index < transfers:
            index = next_index
            next_index += 1
            began = time.monotonic()
            outcome = await run_one(index)
            done = time.monotonic()
            latencies.append(done - began)
            marks.append(done - start)
            outcomes[outcome] += 1
            if progress is not None:
                progress()

    meter.start()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    wall = time.monotonic() - start
    cpu, peak, samples = await meter.stop()
    return PhaseResult(
        latencies=latencies,
        wall=wall,
        cpu_seconds=cpu,
        peak_rss=peak,
        rss_samples=samples,
        outcomes=dict(outcomes),
        marks=marks,
    )


def pair(accounts: list[str], index: int) -> tuple[str, str]:
    """The (source, destination) of the `index`-th transfer: a ring over the accounts."""
    source = accounts[index % len(accounts)]
    return source, accounts[(index + 1) % len(accounts)]
