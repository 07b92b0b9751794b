"""Settling a parked transfer by hand: what an operator's `resolve` posts, at each bank.

What the transfer left in clearing moves to the request's ``settle_to``
(EXTERNAL when the money left the ledger by hand, such as a cheque): at the
source bank, and at the destination bank too if the transfer crosses banks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import LedgerActivities, SettleInput, SettleResult
    from workflows.contract import ResolveRequest, StepError, StepState, TransferState
    from workflows.steps import SETTLEMENT, StepFailed, StepOptions

#: The steps whose postings a manual settlement looks at.
LEDGER_STEPS = ["debit", "credit", "reverse_debit", "reverse_credit"]

#: Runs one step and keeps its `StepState` current (`StepTracker.run`).
RunStep = Callable[[StepState, Any, BaseModel, StepOptions, str | None], Awaitable[Any]]


def banks_touched(state: TransferState) -> list[str | None]:
    """The source bank, and the destination bank if the transfer crosses banks."""
    transfer = state.request
    at = [transfer.source_bank]
    if transfer.cross_bank:
        at.append(transfer.destination_bank)
    return at


async def settle(state: TransferState, request: ResolveRequest, run_step: RunStep) -> bool:
    """Move what the transfer left in clearing at each of its banks to `settle_to`.

    Each bank's settlement is an operator step in the transfer's state. False
    if one failed: it may have posted at an earlier bank, so only another
    resolve (idempotent) may finish the transfer.
    """
    cross_bank = state.request.cross_bank
    for bank in banks_touched(state):
        name = f"settle_manually at {bank}" if cross_bank else "settle_manually"
        step = StepState(name=name, kind="operator")
        state.steps.append(step)
        try:
            result: SettleResult = await run_step(
                step,
                LedgerActivities.settle_manually,
                SettleInput(
                    source_steps=LEDGER_STEPS, to_account=request.settle_to, note=request.note
                ),
                SETTLEMENT,
                bank,
            )
        except StepFailed:
            return False
        if result.receipt is None:
            step.error = StepError(type="NothingToSettle", message="Clearing held nothing")
    return True
