"""What clients and the Web UI see of a transfer: its request, result, state and updates.

These pydantic models are the transfer's public contract: the starter, the
CLI and any other client send and read them, Temporal stores them (encrypted)
in the workflow's history, and the `state` query returns them. Change them
only in ways that old histories and old clients still validate against.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from activities.ledger_activities import AccountId, Amount, Currency, Note, Operator, StepInput
from ledger import EXTERNAL_ACCOUNT, Receipt, SameAccount, format_amount, parse_amount
from ledger.shown import quoted
from workflows import banks
from workflows.status import (
    DEFAULT_COMPENSATION_RETRY_WINDOW_SECONDS as DEFAULT_COMPENSATION_RETRY_WINDOW_SECONDS,
)
from workflows.status import DEFAULT_DEADLINE_SECONDS as DEFAULT_DEADLINE_SECONDS
from workflows.status import FINAL_STATUSES as FINAL_STATUSES
from workflows.status import (
    MAX_COMPENSATION_RETRY_WINDOW_SECONDS as MAX_COMPENSATION_RETRY_WINDOW_SECONDS,
)
from workflows.status import MAX_DEADLINE_SECONDS as MAX_DEADLINE_SECONDS
from workflows.status import MAX_SCHEDULE_AHEAD_DAYS as MAX_SCHEDULE_AHEAD_DAYS
from workflows.status import StepStatus as StepStatus
from workflows.status import TransferStatus as TransferStatus

#: The workflow type names clients start (also the names in recorded histories).
WORKFLOW_NAME = "TransferWorkflow"
LOW_LATENCY_WORKFLOW_NAME = "LowLatencyTransferWorkflow"


BankName = Annotated[str, BeforeValidator(banks.validate_bank_name)]


class _HandWritten(BaseModel):
    """A model clients may write by hand (``temporal workflow start --input``): strict.

    An unknown field is refused naming a bounded prefix of it: pydantic's own
    error would quote the whole name, however long.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [name for name in data if name not in cls.model_fields]
            if unknown:
                more = f" and {len(unknown) - 1:,} more" if len(unknown) > 1 else ""
                raise ValueError(
                    f"Unknown field {quoted(str(unknown[0]))}{more}; "
                    f"the fields are {', '.join(cls.model_fields)}"
                )
        return data


class TransferRequest(_HandWritten):
    """What a client asks for. The amount may be a decimal string ("150.00")."""

    source_account: AccountId
    destination_account: AccountId
    amount: Amount
    #: If the transfer has not completed this many seconds after it started
    #: (after `execute_at`, if dated ahead), it stops and compensates.
    deadline_seconds: int = Field(default=DEFAULT_DEADLINE_SECONDS, ge=1, le=MAX_DEADLINE_SECONDS)
    #: When to move the money (timezone-aware); absent or past means now.
    #: Until then the transfer is ``scheduled`` and posts nothing. At most
    #: `MAX_SCHEDULE_AHEAD_DAYS` after the transfer starts.
    execute_at: AwareDatetime | None = None
    #: A compensation that fails for good parks the transfer for an operator;
    #: it also retries by itself, on a backoff of durable timers, for this
    #: many seconds from when it parked (0: only operators retry). After
    #: that the transfer is overdue.
    compensation_retry_window_seconds: int = Field(
        default=DEFAULT_COMPENSATION_RETRY_WINDOW_SECONDS,
        ge=0,
        le=MAX_COMPENSATION_RETRY_WINDOW_SECONDS,
    )
    #: With several banks: the bank of each account (named by its account
    #: number, see `workflows.banks`); each step runs on its bank's task
    #: queue. Without: every step runs on the workflow's own task queue.
    source_bank: BankName | None = None
    destination_bank: BankName | None = None
    #: The ISO 4217 currency the caller means; both accounts must be in it
    #: (else the ledger refuses the debit, or the credit, with CurrencyMismatch).
    #: None (requests from before currencies, hand-written ones): the
    #: accounts' own currency applies, and they must still agree.
    currency: Currency | None = None

    @model_validator(mode="after")
    def _distinct_accounts(self) -> TransferRequest:
        if self.source_account == self.destination_account:
            raise SameAccount(self.source_account)
        if self.currency is not None:
            # The amount in the currency's own places (15.5 JPY is refused here).
            # Set in place: a model validator must return this very instance.
            object.__setattr__(self, "amount", parse_amount(self.amount, currency=self.currency))
        if (self.source_bank is None) != (self.destination_bank is None):
            raise ValueError("source_bank and destination_bank go together: give both or neither")
        for account, bank in [
            (self.source_account, self.source_bank),
            (self.destination_account, self.destination_bank),
        ]:
            if bank is not None and banks.bank_code(account) != bank:
                raise ValueError(f"Account {account} is not at bank {bank}")
        return self

    @property
    def described(self) -> str:
        """`ACC-001 -> ACC-002 150.00`: the posting memo that ties a step to this transfer."""
        amount = format_amount(self.amount)
        return f"{self.source_account} -> {self.destination_account} {amount}"

    def debit_step(self) -> StepInput:
        """The debit's input: with the currency, and the destination if at the same ledger."""
        return StepInput(
            account_id=self.source_account,
            amount=self.amount,
            transfer=self.described,
            currency=self.currency,
            counterpart=None if self.cross_bank else self.destination_account,
        )

    def credit_step(self, debited: str | None) -> StepInput:
        """The credit's input, in the currency the debit moved (`debited`; None: unknown)."""
        return StepInput(
            account_id=self.destination_account,
            amount=self.amount,
            transfer=self.described,
            currency=self.currency or debited,
        )

    @property
    def banks(self) -> tuple[str | None, str | None]:
        """The source's bank and the destination's (None, None: one ledger)."""
        return self.source_bank, self.destination_bank

    @property
    def routed(self) -> bool:
        """Whether the steps run at the accounts' banks (several banks)."""
        return self.source_bank is not None

    @property
    def cross_bank(self) -> bool:
        """Whether the money leaves one bank for another."""
        return self.routed and self.source_bank != self.destination_bank


class StepError(BaseModel):
    """Why a step (or the transfer) failed: a stable type and a message."""

    type: str
    message: str


class StepState(BaseModel):
    """One forward step, compensation or operator settlement of a transfer."""

    name: str
    kind: Literal["forward", "compensation", "operator"]
    status: StepStatus = StepStatus.PENDING
    result: Receipt | None = None
    error: StepError | None = None
    attempts: int = 0


class RetryRequest(_HandWritten):
    """The `retry` update: run the pending compensations again."""

    note: Note | None = None
    #: Who acts; recorded in each bank's operator log (optional only so that
    #: updates sent before it existed still validate).
    operator: Operator | None = None


class ResolveRequest(_HandWritten):
    """The `resolve` update: an operator settled the transfer by hand.

    What the transfer left in clearing moves to `settle_to` (EXTERNAL when
    the money left the ledger by hand, such as a cheque) under the key
    ``<transfer id>/settle_manually``, with the note as its memo.
    """

    note: Note
    settle_to: AccountId = EXTERNAL_ACCOUNT
    #: Who acts; recorded in each bank's operator log (optional only so that
    #: updates sent before it existed still validate).
    operator: Operator | None = None


class OperatorAction(BaseModel):
    """One operator action on a parked transfer, and how it went."""

    action: Literal["retry", "resolve"]
    note: str | None
    outcome: str
    #: Who acted, as the ledger's operator log names them.
    operator: str | None = None


class TransferState(BaseModel):
    """The `state` query: the transfer and every step, at this moment."""

    transfer_id: str
    request: TransferRequest
    status: TransferStatus
    steps: list[StepState]
    error: StepError | None = None
    compensation_errors: list[StepError] = []
    pending_compensations: list[str] = []
    operator_actions: list[OperatorAction] = []
    #: A resolve failed part-way: its settlement may have posted at a bank,
    #: so only `resolve` (idempotent) may finish the transfer, never `retry`.
    settlement_begun: bool = False
    #: When the transfer first parked in ``needs_attention``.
    parked_since: datetime | None = None
    #: Parked: the pending compensations retry by themselves until then.
    retry_until: datetime | None = None
    #: Parked: when the next automatic retry runs (None: no more).
    next_retry_at: datetime | None = None
    #: Automatic retries run so far.
    automatic_retries: int = 0
    #: Parked past `retry_until`: only an operator can settle it now.
    overdue: bool = False

    @property
    def currency(self) -> str | None:
        """The transfer's currency: the request's, else what its debit moved (None: unknown)."""
        if self.request.currency is not None:
            return self.request.currency
        debit = next((s for s in self.steps if s.name == "debit"), None)
        return None if debit is None or debit.result is None else debit.result.currency

    def step(self, name: str) -> StepState:
        """The step called `name` (KeyError if it has not been added)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


class TransferResult(BaseModel):
    """A completed transfer: what moved, with both ledger receipts."""

    transfer_id: str
    source_account: str
    destination_account: str
    amount: Decimal
    debit: Receipt
    credit: Receipt
