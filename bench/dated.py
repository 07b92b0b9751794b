"""The `dated` scenario: N transfers dated for one moment a little ahead, started before it.

Payments cluster on dates (the first of the month at 09:00). This phase
starts `--dated` transfers (default 1,000) that all carry the same
`execute_at`; the worker takes each up (its first workflow task) and leaves
it waiting on a durable timer in status ``scheduled``, posting nothing
(`workflows.scheduled`). The phase meters the worker processes while they all
wait, then, from the moment, measures how long after it the last one
completes and how many complete per second.

The transfers are started C at a time in batches of `BATCH`, each batch
waiting until the worker has taken up its last transfer, so that the starts
go at the pace the worker keeps: a backlog of first tasks would time out and
reach the worker after the moment, and a transfer taken up after its moment
never waits. The moment comes from that pace, measured in this run: a
calibration batch dated far ahead is started the same way and timed, then
cancelled (nothing was posted); the moment is that pace for N transfers
times `SAFETY`, plus `MARGIN`. A batch taken up after the moment, or a
sampled history without its timer, is a problem of the phase.

The phase reads like any other with the moment as time zero: a workflow's
latency is how long after the moment it completed (its lateness, from the
server's close time), the phase's wall time is the last one's, so its
throughput is completions per second once due. Its worker CPU counts from
the first start to the last completion. `PhaseReport.dated` keeps what only
this phase has (`FIGURES`).
"""

from __future__ import annotations

import asyncio
import datetime
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from temporalio.client import Client

from app.transfers import TransferHandle, start_transfer, wait_outcome
from bench.history import waits_and_timeouts, with_history
from bench.measure import Meter, PhaseReport, PhaseResult
from bench.scenarios import Scenario
from bench.state import Bench
from workflows.visibility import TRANSFER_STATUS

#: Transfers started before waiting for the worker to take up the last of them; also
#: the calibration batch (never more than N, never fewer than the warm-up).
BATCH = 50
#: The moment leaves room for taking up N at this many times the calibrated pace ...
SAFETY = 1.5
#: ... plus this many seconds, in which the worker is sampled while every transfer waits.
MARGIN = 3.0
#: How often a transfer's status is read while waiting for the worker to take it up.
POLL = 0.1
MIB = 2**20

#: What `PhaseReport.dated` holds: its key and what it means.
FIGURES = {
    "predicted_s": "seconds to take up N, predicted from the calibration batch's pace",
    "start_s": "seconds to start all N, at the run's concurrency C",
    "taken_up_s": "seconds from the first start until the worker had taken up the last one",
    "lead_s": "seconds from then to the moment (< 0: the moment was too close)",
    "rss_waiting_max": "bytes: most RSS of the worker processes from then to the moment",
    "rss_waiting_samples": "how many RSS samples that is the most of",
    "rss_after_first_thousand_started": "bytes: RSS when the 1000th start returned (N >= 1000)",
    "lateness_max_s": "seconds from the moment to the last completion",
    "sampled": "histories sampled",
    "sampled_without_timer": "of those, how many never waited (taken up after the moment)",
    "sampled_task_timeouts": "workflow task timeouts in those (a sticky queue not served in time)",
}

T = TypeVar("T")


@dataclass(frozen=True)
class Due:
    """The moment, on the wall clock (for `execute_at`) and this process's monotonic one."""

    at: datetime.datetime
    monotonic: float

    @classmethod
    def after(cls, seconds: float) -> Due:
        """The moment `seconds` from now."""
        now = datetime.datetime.now(datetime.UTC)
        return cls(now + datetime.timedelta(seconds=seconds), time.monotonic() + seconds)

    def seconds_left(self) -> float:
        """Seconds until the moment (negative once past)."""
        return self.monotonic - time.monotonic()


async def _in_lanes(
    count: int,
    concurrency: int,
    one: Callable[[int], Awaitable[T]],
    done: Callable[[], Any] = lambda: None,
) -> list[T]:
    """`one(i)` for every i below `count`, `concurrency` at a time; `done()` after each."""
    results: dict[int, T] = {}
    indexes = iter(range(count))

    async def lane() -> None:
        for i in indexes:
            results[i] = await one(i)
            done()

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return [results[i] for i in range(count)]


async def _taken_up(handle: TransferHandle, due: Due) -> bool:
    """Wait until the worker has run the transfer's first task; whether it then waited.

    The client starts a transfer with status ``running``; its first task sets
    ``scheduled``, unless the moment had passed by then (then this returns at the moment).
    """
    while due.seconds_left() > 0:
        described = await handle.describe()
        status = described.typed_search_attributes.get(TRANSFER_STATUS)
        if status != "running" or described.close_time is not None:
            return status == "scheduled"
        await asyncio.sleep(POLL)
    return False


async def _start(
    bench: Bench, client: Client, *, task_queue: str, ids: list[str], due: Due
) -> tuple[list[TransferHandle], list[float], bool]:
    """Start a transfer dated `due` for each id, C at a time, in batches of `BATCH`.

    Each batch waits until the worker has taken up its last transfer, so the
    starts go at the pace the worker keeps (a backlog of first tasks would
    time out, and then reach the worker after the moment).

    Returns:
        The handles, when each start returned, and whether every batch was
        taken up before the moment.
    """

    async def one(i: int) -> tuple[TransferHandle, float]:
        request = bench.accounts.request("transfer", i).model_copy(update={"execute_at": due.at})
        handle, _ = await start_transfer(client, request, transfer_id=ids[i], task_queue=task_queue)
        return handle, time.monotonic()

    async def batch(begin: int) -> list[tuple[TransferHandle, float]]:
        size = min(BATCH, len(ids) - begin)
        return await _in_lanes(size, bench.concurrency, lambda j: one(begin + j))

    started: list[tuple[TransferHandle, float]] = []
    in_time = True
    for begin in range(0, len(ids), BATCH):
        started += await batch(begin)
        last = max(started[begin:], key=lambda s: s[1])[0]
        in_time = await _taken_up(last, due) and in_time
    return [handle for handle, _ in started], [at for _, at in started], in_time


async def _calibrate(bench: Bench, client: Client, *, task_queue: str, prefix: str) -> float:
    """Seconds per transfer to start and take up, from a batch dated far ahead, then cancelled."""
    count = max(bench.warmup, min(bench.dated, BATCH))
    ids = [f"{prefix}-calibration-{i}" for i in range(count)]
    began = time.monotonic()
    handles, _, _ = await _start(bench, client, task_queue=task_queue, ids=ids, due=Due.after(600))
    pace = (time.monotonic() - began) / count
    for handle in handles:
        await handle.cancel()
    await asyncio.gather(*(wait_outcome(h) for h in handles))
    return pace


async def _closed(handle: TransferHandle) -> tuple[str, datetime.datetime]:
    """The transfer's outcome once it closes, and its close time as the server recorded it."""
    outcome = await wait_outcome(handle)
    closed = (await handle.describe()).close_time
    if closed is None:  # a closed workflow always has one
        raise RuntimeError(f"{handle.id} has no close time")
    return outcome.status, closed


def _most_between(samples: Sequence[tuple[float, int]], start: float, end: float) -> list[int]:
    """The RSS samples between `start` and `end`, or the last one before `end` if none."""
    between = [rss for t, rss in samples if start <= t <= end]
    return between or [rss for t, rss in samples if t <= end][-1:]


async def run_dated(
    bench: Bench, scenario: Scenario, client: Client, *, task_queue: str, pids: list[int]
) -> None:
    """Run and record the phase at the run's C on worker processes `pids` polling `task_queue`."""
    say, key, count = bench.progress.console.print, scenario.key, bench.dated
    prefix = bench.prefix(key, bench.concurrency)
    pace = await _calibrate(bench, client, task_queue=task_queue, prefix=prefix)
    due = Due.after(SAFETY * pace * count + MARGIN)
    say(f"{key}: starting {count} transfers dated {due.seconds_left():.1f} s ahead")
    ids = [f"{prefix}-{i}" for i in range(count)]
    meter = Meter(pids)
    meter.start()
    first = time.monotonic()  # the meter's time zero, within a millisecond
    handles, returned, in_time = await _start(
        bench, client, task_queue=task_queue, ids=ids, due=due
    )
    taken_up, started = time.monotonic(), max(returned)
    say(
        f"{key}: {count} started in {started - first:.1f} s, taken up in {taken_up - first:.1f} s;"
        f" due in {due.seconds_left():.1f} s"
    )
    await asyncio.sleep(max(0.0, due.seconds_left()))
    cpu_waiting, _, waiting_samples = await meter.stop()
    meter, since = Meter(pids), time.monotonic()
    meter.start()
    task = bench.progress.add_task(f"{key} c={bench.concurrency}", total=count)
    closed = await _in_lanes(
        count,
        bench.concurrency,
        lambda i: _closed(handles[i]),
        lambda: bench.progress.advance(task),
    )
    cpu_due, _, due_samples = await meter.stop()

    # Every time from here on counts from the moment.
    samples = [(t + first - due.monotonic, rss) for t, rss in waiting_samples]
    samples += [(t + since - due.monotonic, rss) for t, rss in due_samples]
    lateness = [(at - due.at).total_seconds() for _, at in closed]
    waiting = _most_between(samples, taken_up - due.monotonic, 0.0)
    thousandth = sorted(returned)[999] - due.monotonic if count >= 1000 else math.nan
    dated: dict[str, float] = {
        "predicted_s": pace * count,
        "start_s": started - first,
        "taken_up_s": taken_up - first,
        "lead_s": due.monotonic - taken_up,
        "rss_waiting_max": max(waiting),
        "rss_waiting_samples": len(waiting),
        "rss_after_first_thousand_started": (
            _most_between(samples, -math.inf, thousandth)[-1] if count >= 1000 else math.nan
        ),
        "lateness_max_s": max(lateness),
        **await waits_and_timeouts(client, ids),
    }
    result = PhaseResult(
        latencies=lateness,
        wall=max(lateness),
        cpu_seconds=cpu_waiting + cpu_due,
        peak_rss=max(rss for _, rss in samples),
        rss_samples=samples,
        outcomes=dict(Counter(status for status, _ in closed)),
        marks=sorted(lateness),
    )
    phase = PhaseReport(key, scenario.label, bench.concurrency, result, dated=dated)
    if not in_time or dated["sampled_without_timer"]:
        phase.problems.append(
            f"the moment was too close: the last transfer was taken up {taken_up - first:.1f} s "
            f"after the first start ({pace * count:.1f} s predicted), and "
            f"{dated['sampled_without_timer']:.0f} of {dated['sampled']:.0f} sampled never waited"
        )
    bench.record(await with_history(phase, client, ids), scenario.expect)


def summary(row: dict[str, Any], plain: dict[str, Any] | None) -> str:
    """The dated phase in a sentence, against the plain transfer's row at the same C if any."""
    d, n, c = row["dated"], row["workflows"], row["concurrency"]
    rss = d["rss_waiting_max"] / MIB
    text = (
        f"Dated: {n} transfers due at one moment, started at c={c} in {d['start_s']:.1f} s and "
        f"all taken up {d['lead_s']:.1f} s before the moment. While they waited the worker's RSS "
        f"was at most {rss:.0f} MiB ({d['rss_waiting_samples']:.0f} samples)"
    )
    if plain is not None:
        text += f", {rss / plain['peak_rss_mib']:.2f} times the plain transfer's peak"
    text += (
        f". The last completed {d['lateness_max_s']:.1f} s after the moment: "
        f"{row['throughput_per_s']:.1f} transfers/s once due"
    )
    if plain is not None:
        text += (
            f", {row['throughput_per_s'] / plain['throughput_per_s']:.2f} times the plain "
            f"transfer's {plain['throughput_per_s']:.1f}/s at c={c}"
        )
    return (
        text + f"; {d['sampled_task_timeouts']:.0f} workflow task timeouts in "
        f"{d['sampled']:.0f} sampled histories."
    )
