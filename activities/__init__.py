"""Temporal activities: adapters from the workflow to the ledger."""

from activities.ledger_activities import (
    LedgerActivities,
    SettleInput,
    SettleResult,
    StepInput,
    StepResult,
    step_key,
)

__all__ = ["LedgerActivities", "SettleInput", "SettleResult", "StepInput", "StepResult", "step_key"]
