"""Temporal activities: adapters from the workflow to the ledger."""

from activities.ledger_activities import LedgerActivities, StepInput, StepResult, step_key

__all__ = ["LedgerActivities", "StepInput", "StepResult", "step_key"]
