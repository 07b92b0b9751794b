"""The ledger's records: accounts, posting receipts and operator records, plain and immutable."""

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from ledger.currency import DEFAULT_CURRENCY
from ledger.errors import (
    InvalidAccountId,
    InvalidMemo,
    InvalidOperator,
    InvalidOwner,
    LedgerError,
)
from ledger.shown import quoted

#: Account numbers: a letter or digit, then letters, digits, '-', '_' or '.'.
#: Strict on purpose: an account number ends up in keys, logs and the Web UI.
ACCOUNT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
MAX_OWNER_LENGTH = 200
MAX_MEMO_LENGTH = 1000
MAX_OPERATOR_LENGTH = 200


class AccountKind(StrEnum):
    """What an account is for."""

    CUSTOMER = "customer"  # holds a customer's money; never below zero
    CLEARING = "clearing"  # money in flight between a debit and its credit
    EXTERNAL = "external"  # the outside world: opening deposits come from here


class AccountStatus(StrEnum):
    """Whether an account takes postings."""

    OPEN = "open"
    FROZEN = "frozen"  # temporarily takes no postings (fraud check, court order, ...)
    CLOSED = "closed"  # for good; only an empty account closes


class PostingKind(StrEnum):
    """What a posting (or a void) was for."""

    OPENING = "opening"  # external -> customer, the opening balance
    DEBIT = "debit"  # customer -> clearing
    CREDIT = "credit"  # clearing -> customer
    REVERSAL = "reversal"  # the opposite movement of an earlier posting
    VOID = "void"  # a reversal of a key that never applied: no money moves
    MANUAL = "manual"  # clearing -> anywhere, by an operator settling a stuck transfer


class OperatorActionKind(StrEnum):
    """What an operator did to a transfer parked in needs_attention."""

    RETRY = "retry"  # ran the pending compensations again
    RESOLVE = "resolve"  # settled the transfer by hand


#: The system accounts, one of each per currency (keyed by id and currency).
CLEARING_ACCOUNT = "CLEARING"
EXTERNAL_ACCOUNT = "EXTERNAL"
SYSTEM_ACCOUNTS = (CLEARING_ACCOUNT, EXTERNAL_ACCOUNT)
#: The clearing account's owner label in a new ledger, unless the store is told
#: otherwise (a bank's ledger among several holds settlement positions there too).
CLEARING_OWNER = "Transfers in flight"


@dataclass(frozen=True)
class Account:
    """An account and its balance at the moment it was read."""

    id: str
    owner: str
    kind: AccountKind
    balance: Decimal
    status: AccountStatus = AccountStatus.OPEN
    #: ISO 4217 code, fixed when the account was opened.
    currency: str = DEFAULT_CURRENCY


@dataclass(frozen=True)
class Receipt:
    """What a posting did. Re-applying its key returns the same receipt.

    A void (kind ``void``) moved no money: it records that `reverses` was
    reversed before it ever applied, so it never will.
    """

    key: str
    kind: PostingKind
    amount: Decimal
    from_account: str | None
    to_account: str | None
    reverses: str | None
    posted_at: datetime
    memo: str | None = None
    replayed: bool = False
    #: The currency both accounts are in (None in receipts written before
    #: the ledger knew currencies, such as those in older workflow histories).
    currency: str | None = None


@dataclass(frozen=True)
class OperatorRecord:
    """One entry of the operator log: who acted on which transfer, how and why.

    The log is append-only. Recording its key again returns the same record
    (marked `replayed`).
    """

    key: str
    transfer_id: str
    action: OperatorActionKind
    operator: str
    note: str | None
    recorded_at: datetime
    replayed: bool = False


def validate_account_id(account_id: object) -> str:
    """Return the account number if it is well formed, else raise InvalidAccountId."""
    if not isinstance(account_id, str) or not ACCOUNT_ID_PATTERN.fullmatch(account_id):
        shown = (
            quoted(account_id) if isinstance(account_id, str) else repr(type(account_id).__name__)
        )
        raise InvalidAccountId(
            f"Invalid account number {shown}: use 1-64 letters, digits, '-', '_' or '.'"
        )
    return account_id


def _printable(
    value: object, error: type[LedgerError], *, empty: str, what: str, limit: int
) -> str:
    """`value` trimmed, if it is non-empty printable text of at most `limit` characters."""
    if not isinstance(value, str) or not value.strip():
        raise error(empty)
    text = value.strip()
    if len(text) > limit:
        raise error(f"{what} is longer than {limit} characters")
    if any(not ch.isprintable() for ch in text):
        raise error(f"{what} must not contain control characters")
    return text


def validate_owner(owner: object) -> str:
    """Return the owner name, trimmed, if it is printable and not too long."""
    return _printable(
        owner,
        InvalidOwner,
        empty="Owner name must not be empty",
        what="Owner name",
        limit=MAX_OWNER_LENGTH,
    )


def validate_memo(memo: object) -> str:
    """Return an operator's note, trimmed, if it is printable and not too long."""
    return _printable(
        memo, InvalidMemo, empty="A note is required", what="Note", limit=MAX_MEMO_LENGTH
    )


def validate_operator(operator: object) -> str:
    """Return who acted (a login, an e-mail address), trimmed, if printable and not too long."""
    return _printable(
        operator,
        InvalidOperator,
        empty="The operator must be named",
        what="Operator name",
        limit=MAX_OPERATOR_LENGTH,
    )
