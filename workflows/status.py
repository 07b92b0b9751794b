"""Where a transfer and its steps stand, and how long a transfer may take.

Plain enums and numbers, without pydantic or Temporal: the command line's
parsers read them (`list --status`, `transfer --deadline`) before they know
whether the command talks to Temporal at all. `workflows.contract`
re-exports them with the models that carry them.
"""

from __future__ import annotations

from enum import StrEnum

#: How long a transfer may take, by default, before it gives up and compensates.
DEFAULT_DEADLINE_SECONDS = 300
MAX_DEADLINE_SECONDS = 7 * 24 * 3600

#: How far ahead a transfer may be dated (`execute_at`): a year and a day,
#: enough for any annual payment; further is refused before anything starts.
MAX_SCHEDULE_AHEAD_DAYS = 366

#: How long a parked transfer retries its compensations by itself, by
#: default, before it is overdue for an operator; and the most it may ask for.
DEFAULT_COMPENSATION_RETRY_WINDOW_SECONDS = 3 * 24 * 3600
MAX_COMPENSATION_RETRY_WINDOW_SECONDS = 30 * 24 * 3600


class TransferStatus(StrEnum):
    """Where a transfer stands."""

    PENDING = "pending"
    SCHEDULED = "scheduled"  # dated ahead (`execute_at`): waits, nothing posted yet
    RUNNING = "running"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    CANCELLED = "cancelled"  # cancelled by a client, compensations done
    NEEDS_ATTENTION = "needs_attention"  # a compensation failed for good: waits for an operator
    RESOLVED = "resolved"  # an operator settled it by hand


#: The statuses a transfer never leaves.
FINAL_STATUSES = frozenset(
    {
        TransferStatus.COMPLETED,
        TransferStatus.COMPENSATED,
        TransferStatus.CANCELLED,
        TransferStatus.RESOLVED,
    }
)


class StepStatus(StrEnum):
    """Where one step stands."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"  # a forward step that applied and was reversed
    SKIPPED = "skipped"  # a forward step that never ran: an earlier one failed
