"""Every `workflow.patched` id of the transfer: what it guards, and when it can go.

A transfer that was running when its worker was upgraded replays its history
on the new code. Where the new code would issue different commands, the
change sits behind ``workflow.patched(ID)``: new runs record the marker and
take the new branch; runs from before replay the old one.

A patch can be deprecated (``workflow.deprecate_patch(ID)``, keeping only the
new branch) once no transfer that started before it can still be running:
transfers end within their deadline (at most seven days) unless parked for an
operator, so wait until `starter.py list --status needs_attention` shows none
from before the release that added it. Delete the id only after a further
release with `deprecate_patch`, as Temporal's versioning guide describes.
"""

from __future__ import annotations

#: Record each operator action (retry, resolve) in every touched bank's
#: operator log before carrying it out (an activity per bank). Transfers
#: parked before the operator log existed replay without that activity.
#: Added with payload encryption and the operator log (issue 8).
OPERATOR_LOG = "operator-log"

#: Refuse `retry` once a `resolve` failed part-way: its settlement may have
#: posted at a bank, and a compensation would refund money it paid out.
#: Without it, a transfer that retried after a failed resolve replays as it ran.
SETTLEMENT_BEGUN = "retry-refused-after-settlement"

#: Leave a forward step's compensation out when the step's key holds another
#: transfer's posting (a second run under an id used before, for another
#: transfer): reversing that key would undo the first transfer.
FOREIGN_POSTINGS = "foreign-postings-left-alone"

#: A cancelled transfer whose compensation was parked and then resolved by an
#: operator closes as failed with status ``resolved``, not as cancelled: its
#: balances are not as they were before it started.
RESOLVED_AFTER_CANCEL = "resolved-after-cancel"

#: The deadline counts from the workflow's start (when the client started it),
#: not from its first workflow task (when a worker first ran it): a transfer
#: that waited for a worker may have no time left, and then moves no money.
#: A forward step the deadline stopped before it was scheduled gets no
#: compensation: no attempt of it can exist, so there is nothing to void.
#: Checked only where it matters (a first task more than a second after the
#: start; a step the deadline stops), so the happy path records no marker.
#: Without it, a transfer replays with the deadline it started with.
DEADLINE_FROM_START = "deadline-from-workflow-start"

#: A parked transfer also retries its pending compensations by itself, on a
#: backoff of workflow timers within its retry window, and records when it
#: parked (the ``ParkedSince`` and ``RetryUntil`` search attributes).
#: Checked when a transfer first parks, so the happy path records no marker.
#: Without it, a parked transfer waits for operators only, as it did.
COMPENSATION_RETRIES = "compensations-retry-by-themselves"

#: Every id above, for tests that check each is documented and used.
ALL = (
    OPERATOR_LOG,
    SETTLEMENT_BEGUN,
    FOREIGN_POSTINGS,
    RESOLVED_AFTER_CANCEL,
    DEADLINE_FROM_START,
    COMPENSATION_RETRIES,
)
