"""The transfer saga with its ledger steps as local activities (docs: low-latency mode)."""

from __future__ import annotations

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contract import LOW_LATENCY_WORKFLOW_NAME, TransferRequest, TransferResult
    from workflows.steps import LocalSteps, StepRunner
    from workflows.transfer import TransferWorkflow


@workflow.defn(name=LOW_LATENCY_WORKFLOW_NAME, failure_exception_types=[ValidationError])
class LowLatencyTransferWorkflow(TransferWorkflow):
    """The same saga with its ledger steps as local activities.

    The worker that runs the workflow task runs each step in the same task,
    so a transfer needs one workflow task instead of three and records each
    step as a marker. The price: steps and workflows must share a worker; a
    step that runs long holds the workflow task (heartbeated by the SDK);
    retries past `local_retry_threshold` wait on timers; and a worker crash
    mid-task re-runs the steps of that task (the ledger's idempotency keys make
    that safe, as for any retry).
    """

    runner: StepRunner = LocalSteps()

    @workflow.init
    def __init__(self, request: TransferRequest) -> None:
        super().__init__(request)

    @workflow.run
    async def run(self, request: TransferRequest) -> TransferResult:
        """The same saga as `TransferWorkflow.run`, on one bank's worker only."""
        if request.routed:
            # Local activities run on the workflow's worker, never on a bank's.
            raise ApplicationError(
                "Low-latency mode runs the steps on the workflow's own worker: "
                "it cannot route them to banks",
                type="ValidationError",
                non_retryable=True,
            )
        return await super().run(request)
