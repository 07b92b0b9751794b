"""One benchmark run's settings and shared state: what every scenario's runner is given."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import Progress

from bench.measure import PhaseReport
from bench.workload import Accounts


@dataclass
class Bench:
    """One benchmark run's settings and shared state."""

    transfers: int
    sequential: int
    concurrency: int
    workers: int
    warmup: int
    ledger_url: str
    data_dir: Path
    progress: Progress
    dated: int = 0  # transfers of the dated scenario, all due at one moment
    rounds: int = 1
    round: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    tasks: dict[tuple[str, int], Any] = field(default_factory=dict)
    reports: dict[tuple[str, int], PhaseReport] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    accounts: Accounts = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = Accounts(self.run_id)

    def record(self, phase: PhaseReport, expect: str) -> None:
        """Check a phase's outcomes, keep it (merged into its earlier rounds), say how it went."""
        phase.check(expect)
        earlier = self.reports.setdefault((phase.scenario, phase.concurrency), phase)
        if earlier is not phase:
            earlier.absorb(phase)
        r = phase.result
        self.progress.console.print(
            f"round {self.round + 1}/{self.rounds} "
            f"{phase.scenario} c={phase.concurrency}: {r.count} in {r.wall:.1f} s, "
            f"{r.throughput:.1f}/s, p50 {r.percentile(50) * 1000:.0f} ms, "
            f"CPU {r.cpu_per_workflow * 1000:.1f} ms/wf"
            + (f" [red]{'; '.join(phase.problems)}" if phase.problems else "")
        )

    def phases(self) -> list[tuple[int, int]]:
        """(concurrency, workflows) of each phase of one round."""
        return [
            (1, -(-self.sequential // self.rounds)),
            (self.concurrency, -(-self.transfers // self.rounds)),
        ]

    def task(self, key: str, concurrency: int, count: int) -> functools.partial[None]:
        """`advance(steps=1)` of the progress bar of a scenario's phase, over all rounds."""
        if (key, concurrency) not in self.tasks:
            self.tasks[key, concurrency] = self.progress.add_task(
                f"{key} c={concurrency}", total=count * self.rounds
            )
        return functools.partial(self.progress.advance, self.tasks[key, concurrency])

    def prefix(self, key: str, concurrency: int) -> str:
        """Workflow ids of a phase in this round: `bench-<run>-<scenario>-r<n>-c<c>`."""
        return f"bench-{self.run_id}-{key}-r{self.round}-c{concurrency}"
