"""History events and bytes of a phase's workflows, sampled from the server."""

from __future__ import annotations

import statistics

from temporalio.client import Client

from bench.measure import PhaseReport

#: Histories sampled per phase for the events and bytes columns.
HISTORY_SAMPLE = 20


async def with_history(phase: PhaseReport, client: Client, ids: list[str]) -> PhaseReport:
    """The phase with the mean events and serialized bytes of a sample of its histories."""
    events, sizes = [], []
    for workflow_id in ids[:: max(1, len(ids) // HISTORY_SAMPLE)][:HISTORY_SAMPLE]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events.append(len(history.events))
        sizes.append(sum(e.ByteSize() for e in history.events))
    phase.events, phase.history_bytes = statistics.fmean(events), statistics.fmean(sizes)
    return phase
