"""The engine floor: a workflow with two no-op activities and nothing else.

Whatever a transfer costs beyond this is the saga's own overhead.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

FLOOR_WORKFLOW = "FloorWorkflow"


@activity.defn(name="floor_step")
def floor_step(value: str) -> str:
    """Do nothing, in the worker's activity thread pool like a ledger step."""
    return value


@workflow.defn(name=FLOOR_WORKFLOW)
class FloorWorkflow:
    """Two activities in a row, as a transfer's debit and credit."""

    @workflow.run
    async def run(self, value: str) -> str:
        """Run both steps; return the second's result."""
        first = await workflow.execute_activity(
            floor_step, value, start_to_close_timeout=timedelta(seconds=10)
        )
        result: str = await workflow.execute_activity(
            floor_step, first, start_to_close_timeout=timedelta(seconds=10)
        )
        return result
