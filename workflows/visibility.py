"""What a transfer shows outside its payloads: search attributes, summaries, details, metrics.

Search attributes are stored in plain text by Temporal's visibility store, so
they hold only what filtering needs: status, the two account numbers and the
amount. They are registered on the server by the embedded dev server and by
`python starter.py setup`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

from ledger.money import shown_amount

if TYPE_CHECKING:
    from workflows.contract import OperatorAction, StepState, TransferRequest, TransferState

TRANSFER_STATUS = SearchAttributeKey.for_keyword("TransferStatus")
SOURCE_ACCOUNT = SearchAttributeKey.for_keyword("SourceAccount")
DESTINATION_ACCOUNT = SearchAttributeKey.for_keyword("DestinationAccount")
TRANSFER_AMOUNT = SearchAttributeKey.for_float("TransferAmount")
#: Set when a transfer first parks for an operator, with the end of its
#: automatic retries: `starter.py list --overdue` finds those past it.
PARKED_SINCE = SearchAttributeKey.for_datetime("ParkedSince")
RETRY_UNTIL = SearchAttributeKey.for_datetime("RetryUntil")

#: Every search attribute a transfer sets, for registration on a server.
SEARCH_ATTRIBUTES: Sequence[SearchAttributeKey[Any]] = [
    TRANSFER_STATUS,
    SOURCE_ACCOUNT,
    DESTINATION_ACCOUNT,
    TRANSFER_AMOUNT,
    PARKED_SINCE,
    RETRY_UNTIL,
]


def _pairs(request: TransferRequest, status: str) -> list[SearchAttributePair[Any]]:
    return [
        SearchAttributePair(TRANSFER_STATUS, status),
        SearchAttributePair(SOURCE_ACCOUNT, request.source_account),
        SearchAttributePair(DESTINATION_ACCOUNT, request.destination_account),
        # A double is fine for filtering and sorting; money itself never is.
        SearchAttributePair(TRANSFER_AMOUNT, float(request.amount)),
    ]


def search_attributes(request: TransferRequest, status: str) -> TypedSearchAttributes:
    """All four attributes of a transfer, set by the client when it starts one."""
    return TypedSearchAttributes(_pairs(request, status))


def search_attribute_updates(
    request: TransferRequest, status: str
) -> list[SearchAttributeUpdate[Any]]:
    """All four attributes as upserts, for the workflow's first status change.

    The workflow sets them itself, so a transfer started without them (from
    the plain `temporal` CLI, say) is searchable too.
    """
    return [pair.key.value_set(pair.value) for pair in _pairs(request, status)]


def transfer_summary(request: TransferRequest) -> str:
    """The workflow's static summary: `Transfer 150.00 ACC-001 -> ACC-002`."""
    return (
        f"Transfer {shown_amount(request.amount, request.currency)} "
        f"{request.source_account} -> {request.destination_account}"
    )


def step_summary(step: str, account_id: str, amount: Decimal, currency: str | None = None) -> str:
    """An activity's summary: `debit ACC-001 150.00`."""
    return f"{step} {account_id} {shown_amount(amount, currency)}"


def current_details(state: TransferState) -> str:
    """Markdown for the Web UI's current details: status, reason, steps, operator actions.

    Steps and actions are lists, not tables: the UI renders the markdown
    without any table styling, so a table's cells ran together
    (``settle_manuallycompleted1``). Text that came from outside (error
    messages, operators' names and notes) is escaped, so it shows as written.
    """
    lines = [f"**Status:** {state.status}", ""]
    due = state.request.execute_at
    if state.status == "scheduled" and due is not None:
        lines += [f"**Scheduled for:** {_when(due)} (nothing posted until then)", ""]
    if state.error is not None:
        lines += [f"**Reason:** {_escaped(state.error.message)} (`{state.error.type}`)", ""]
    if state.pending_compensations:
        lines += [
            "**Waiting for an operator:** pending "
            + ", ".join(state.pending_compensations)
            + " (`starter.py retry` or `starter.py resolve`)",
            "",
        ]
    if state.status == "needs_attention":
        lines += _retry_lines(state)
    lines += ["**Steps:**", ""]
    lines += [_step_item(step) for step in state.steps]
    if state.operator_actions:
        lines += ["", "**Operator actions:**", ""]
        lines += [_action_item(action) for action in state.operator_actions]
    return "\n".join(lines)


def _retry_lines(state: TransferState) -> list[str]:
    """When a parked transfer retries by itself next, or since when it is overdue."""
    if state.parked_since is None:
        return []  # parked before automatic retries existed
    since = f"parked since {_when(state.parked_since)}"
    tried = f", {state.automatic_retries} automatic retries so far"
    if state.overdue:
        return [
            f"**Overdue:** {since}{tried}; retried by itself until {_when(state.retry_until)}",
            "",
        ]
    if state.next_retry_at is not None:
        return [
            f"**Retrying by itself:** next at {_when(state.next_retry_at)}, until "
            f"{_when(state.retry_until)} ({since}{tried})",
            "",
        ]
    return [f"**Parked:** {since}{tried}", ""]


def _when(moment: datetime | None) -> str:
    """`2026-12-24 09:00:00 UTC`."""
    if moment is None:
        return "unknown"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _step_item(step: StepState) -> str:
    """`- **debit**: completed, 150.00 ACC-001 → CLEARING (attempt 2)`."""
    if step.result is not None:
        receipt = step.result
        if receipt.kind == "void":
            detail = "void: never applied, now never will"
        else:
            amount = shown_amount(receipt.amount, receipt.currency)
            detail = f"{amount} {receipt.from_account} → {receipt.to_account}"
    elif step.error is not None:
        detail = _escaped(f"{step.error.type}: {step.error.message}")
    else:
        detail = ""
    attempts = f" (attempt {step.attempts})" if step.attempts > 1 else ""
    return f"- **{step.name}**: {step.status}{f', {detail}' if detail else ''}{attempts}"


def _action_item(action: OperatorAction) -> str:
    """`- **resolve** by alice@ops: “paid by cheque” → settled by hand`."""
    who = f" by {_escaped(action.operator)}" if action.operator else ""
    note = f": “{_escaped(action.note)}”" if action.note else ""
    return f"- **{action.action}**{who}{note} → {_escaped(action.outcome)}"


#: The characters that mean something inside a line of markdown; escaped with a
#: backslash they show as themselves (free text never starts a line here).
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~])")


def _escaped(text: str) -> str:
    """`text` as literal markdown, on one line."""
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split()))
