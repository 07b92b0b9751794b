"""Temporal activities over the ledger: keys, error mapping, nothing else.

Each activity is a thin adapter: derive the idempotency key from the
activity's own info, call the ledger once, and map its errors at this one
boundary. The ledger call blocks, so activities are synchronous and run on
the worker's thread pool, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ledger import (
    LedgerError,
    LedgerStore,
    OperatorRecord,
    Receipt,
    parse_amount,
    validate_account_id,
    validate_currency,
    validate_memo,
    validate_operator,
)

Amount = Annotated[Decimal, BeforeValidator(parse_amount)]
AccountId = Annotated[str, BeforeValidator(validate_account_id)]
Currency = Annotated[str, BeforeValidator(validate_currency)]
T = TypeVar("T")
Note = Annotated[str, BeforeValidator(validate_memo)]
Operator = Annotated[str, BeforeValidator(validate_operator)]


class StepInput(BaseModel):
    """What a ledger step needs: the customer account and the amount."""

    model_config = ConfigDict(frozen=True)

    account_id: AccountId
    amount: Amount
    #: The whole transfer this step belongs to (`ACC-001 -> ACC-002 150.00`),
    #: recorded with the posting: a second run under the same id for another
    #: transfer then conflicts instead of taking this posting for its own.
    transfer: str | None = None
    #: The currency the step moves: the account must be in it, else the
    #: ledger refuses (CurrencyMismatch). None: the account's own applies.
    currency: Currency | None = None
    #: A debit's other side: the account the money is for. If the debit's
    #: ledger holds it in another currency, the debit is refused before
    #: anything is posted.
    counterpart: AccountId | None = None


class StepResult(BaseModel):
    """What a ledger step did, and on which attempt it succeeded."""

    model_config = ConfigDict(frozen=True)

    receipt: Receipt
    attempt: int


class SettleInput(BaseModel):
    """An operator's manual settlement of a stuck saga."""

    model_config = ConfigDict(frozen=True)

    source_steps: list[str]
    to_account: AccountId
    note: Note


class SettleResult(BaseModel):
    """The settlement posting (None when nothing was left in clearing), and its attempt."""

    model_config = ConfigDict(frozen=True)

    receipt: Receipt | None
    attempt: int


class OperatorActionInput(BaseModel):
    """An operator's action on a parked transfer, to record before it is carried out."""

    model_config = ConfigDict(frozen=True)

    #: The Temporal update that carried the action: with the workflow id, the record's key.
    update_id: str
    action: Literal["retry", "resolve"]
    operator: Operator
    note: Note | None = None


class OperatorActionResult(BaseModel):
    """The operator log's entry, and the attempt that wrote (or found) it."""

    model_config = ConfigDict(frozen=True)

    record: OperatorRecord
    attempt: int


def operator_key(workflow_id: str, update_id: str) -> str:
    """The operator log key of one action: one update of one transfer, recorded once."""
    return step_key(workflow_id, f"operator/{update_id}")


def step_key(workflow_id: str, step: str) -> str:
    """The idempotency key of one step of one transfer.

    The workflow id, not the run id: the run id changes on reset and
    continue-as-new, and a new key there would move the money again.
    """
    return f"{workflow_id}/{step}"


class LedgerActivities:
    """The transfer's ledger steps, bound to one ledger store."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    @activity.defn(name="debit")
    def debit(self, step: StepInput) -> StepResult:
        """Move the amount from the source account to clearing."""
        return _run(
            lambda key: self._store.debit(
                key,
                step.account_id,
                step.amount,
                transfer=step.transfer,
                currency=step.currency,
                counterpart=step.counterpart,
            )
        )

    @activity.defn(name="credit")
    def credit(self, step: StepInput) -> StepResult:
        """Move the amount from clearing to the destination account."""
        return _run(
            lambda key: self._store.credit(
                key, step.account_id, step.amount, transfer=step.transfer, currency=step.currency
            )
        )

    @activity.defn(name="reverse_debit")
    def reverse_debit(self, step: StepInput) -> StepResult:
        """Refund the debit, or void it so a late attempt can never apply."""
        return _run(lambda key: self._store.reverse(key, original_key=_original_key("debit")))

    @activity.defn(name="settle_manually")
    def settle_manually(self, request: SettleInput) -> SettleResult:
        """Move what the saga's postings left in clearing where an operator says, with a note."""
        workflow_id = activity.info().workflow_id or ""
        keys = [step_key(workflow_id, step) for step in request.source_steps]
        receipt = _call(
            lambda key: self._store.settle_manually(
                key, source_keys=keys, to_account=request.to_account, memo=request.note
            )
        )
        activity.logger.info("Settled by hand: %s", receipt)
        return SettleResult(receipt=receipt, attempt=activity.info().attempt)

    @activity.defn(name="reverse_credit")
    def reverse_credit(self, step: StepInput) -> StepResult:
        """Take back the credit, or void it so a late attempt can never apply."""
        return _run(lambda key: self._store.reverse(key, original_key=_original_key("credit")))

    @activity.defn(name="record_operator_action")
    def record_operator_action(self, request: OperatorActionInput) -> OperatorActionResult:
        """Append who acted on the transfer, how and why to the ledger's operator log."""
        workflow_id = activity.info().workflow_id or ""
        record = _call(
            lambda key: self._store.record_operator_action(
                key,
                transfer_id=workflow_id,
                action=request.action,
                operator=request.operator,
                note=request.note,
            ),
            key=operator_key(workflow_id, request.update_id),
        )
        activity.logger.info(
            "Operator %s of %s by %s recorded%s",
            record.action,
            record.transfer_id,
            record.operator,
            " [replayed]" if record.replayed else "",
        )
        return OperatorActionResult(record=record, attempt=activity.info().attempt)


def _original_key(step: str) -> str:
    return step_key(activity.info().workflow_id or "", step)


def _run(post: Callable[[str], Receipt]) -> StepResult:
    receipt = _call(post)
    info = activity.info()
    activity.logger.info(
        "Step %s %s %s (attempt %d)%s",
        receipt.key,
        receipt.kind,
        receipt.amount,
        info.attempt,
        " [replayed]" if receipt.replayed else "",
    )
    return StepResult(receipt=receipt, attempt=info.attempt)


def _call(post: Callable[[str], T], *, key: str | None = None) -> T:
    """Call the ledger with this activity's key (or `key`) and map its errors.

    Ledger business errors become non-retryable `ApplicationError`s whose
    `type` is the error's class name; `LedgerUnavailable` and anything
    unexpected stay retryable. Every failure carries the attempt number as
    its first detail so the workflow can report it.
    """
    info = activity.info()
    key = key or step_key(info.workflow_id or "", info.activity_type)
    try:
        return post(key)
    except LedgerError as err:
        activity.logger.info("Step %s failed on attempt %d: %s", key, info.attempt, err)
        raise ApplicationError(
            str(err),
            info.attempt,
            type=type(err).__name__,
            non_retryable=not err.retryable,
            # A refused transfer is an expected outcome, not an incident:
            # benign errors are not logged as failures by the SDK.
            category=ApplicationErrorCategory.UNSPECIFIED
            if err.retryable
            else ApplicationErrorCategory.BENIGN,
        ) from err
    except Exception as err:
        # Not a business error: retry it, but keep its type and the attempt.
        activity.logger.warning("Step %s attempt %d raised %r", key, info.attempt, err)
        raise ApplicationError(f"{err}", info.attempt, type=type(err).__name__) from err
