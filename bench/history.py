"""History events and bytes of a phase's workflows, sampled from the server."""

from __future__ import annotations

import statistics
from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.measure import PhaseReport

#: Histories sampled per phase for the events and bytes columns.
HISTORY_SAMPLE = 20


def sample(ids: list[str]) -> list[str]:
    """At most `HISTORY_SAMPLE` of a phase's workflow ids, spread over the phase."""
    return ids[:: max(1, len(ids) // HISTORY_SAMPLE)][:HISTORY_SAMPLE]


async def with_history(phase: PhaseReport, client: Client, ids: list[str]) -> PhaseReport:
    """The phase with the mean events and serialized bytes of a sample of its histories."""
    events, sizes = [], []
    for workflow_id in sample(ids):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events.append(len(history.events))
        sizes.append(sum(e.ByteSize() for e in history.events))
    phase.events, phase.history_bytes = statistics.fmean(events), statistics.fmean(sizes)
    return phase


async def waits_and_timeouts(client: Client, ids: list[str]) -> dict[str, float]:
    """Of a sample of dated transfers: how many never waited on a timer, and task timeouts."""
    without_timer, timeouts = 0, 0
    for workflow_id in sample(ids):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        kinds = Counter(e.event_type for e in history.events)
        without_timer += kinds[EventType.EVENT_TYPE_TIMER_STARTED] == 0
        timeouts += kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT]
    return {
        "sampled": len(sample(ids)),
        "sampled_without_timer": without_timer,
        "sampled_task_timeouts": timeouts,
    }
