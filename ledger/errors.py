"""The ledger's errors: one base, one leaf per business rule.

Business errors (a rule was broken) are final: retrying them cannot help.
`LedgerUnavailable` is the one retryable error: the store could not be
reached or was busy, and the same call may succeed later.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    retryable: ClassVar[bool] = False


class InvalidAmount(LedgerError, ValueError):
    """An amount is not a positive decimal with at most two places."""


class UnknownCurrency(LedgerError, ValueError):
    """A currency code is not an ISO 4217 code this ledger keeps."""


class CurrencyMismatch(LedgerError, ValueError):
    """A transfer or posting would mix two currencies: refused before anything moves."""

    def __init__(self, message: str, *, expected: str, found: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found

    @classmethod
    def between(
        cls, source: str, source_currency: str, target: str, target_currency: str
    ) -> CurrencyMismatch:
        """Two accounts in different currencies: `ACC-1 is in EUR, ACC-2 in USD`."""
        return cls(
            f"Currency mismatch: {source} is in {source_currency}, {target} in "
            f"{target_currency}; a transfer never converts currencies",
            expected=source_currency,
            found=target_currency,
        )

    @classmethod
    def asked(cls, account: str, account_currency: str, asked: str) -> CurrencyMismatch:
        """The caller means one currency, the account is in another."""
        return cls(
            f"Currency mismatch: the transfer is in {asked}, {account} is in {account_currency}",
            expected=asked,
            found=account_currency,
        )


class InvalidAccountId(LedgerError, ValueError):
    """An account number is empty, too long, or has characters we refuse."""


class InvalidOwner(LedgerError, ValueError):
    """An owner name is empty, too long, or has control characters."""


class InvalidMemo(LedgerError, ValueError):
    """An operator's note is empty, too long, or has control characters."""


class InvalidOperator(LedgerError, ValueError):
    """An operator's name is empty, too long, or has control characters."""


class SameAccount(LedgerError, ValueError):
    """A transfer names the same account on both sides."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"Source and destination are the same account: {account_id}")
        self.account_id = account_id


class AccountNotFound(LedgerError):
    """No account has this number."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"Account not found: {account_id}")
        self.account_id = account_id


class AccountExists(LedgerError):
    """An account with this number is already open."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"Account already exists: {account_id}")
        self.account_id = account_id


class AccountNotCustomer(LedgerError):
    """Transfers move money between customer accounts only."""

    def __init__(self, account_id: str, kind: str) -> None:
        super().__init__(f"Account {account_id} is a {kind} account, not a customer account")
        self.account_id = account_id
        self.kind = kind


class AccountClosed(LedgerError):
    """The account is closed and takes no postings."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"Account is closed: {account_id}")
        self.account_id = account_id


class AccountFrozen(LedgerError):
    """The account is frozen: it takes no postings until it is unfrozen."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"Account is frozen: {account_id}")
        self.account_id = account_id


class AccountStatusConflict(LedgerError):
    """The account is not in the state the operation needs (freezing a frozen one, say)."""

    def __init__(self, account_id: str, status: str, expected: str) -> None:
        super().__init__(f"Account {account_id} is {status}, not {expected}")
        self.account_id = account_id


class AccountNotEmpty(LedgerError):
    """Only an account with a zero balance can be closed."""

    def __init__(self, account_id: str, balance: Decimal) -> None:
        super().__init__(f"Account {account_id} still holds {balance} and cannot be closed")
        self.account_id = account_id
        self.balance = balance


class InsufficientFunds(LedgerError):
    """A customer account would go below zero."""

    def __init__(self, account_id: str, balance: Decimal, amount: Decimal) -> None:
        # Both already have the account currency's places.
        super().__init__(f"Insufficient funds: {balance} < {amount}")
        self.account_id = account_id
        self.balance = balance
        self.amount = amount


class StepVoided(LedgerError):
    """The key was reversed before it was ever applied, so it may never apply.

    This is what refuses a late-arriving original: an attempt that outlived
    its timeout and reached the ledger after its compensation already ran.
    """

    def __init__(self, key: str) -> None:
        super().__init__(f"Step {key} was voided by its compensation and cannot apply")
        self.key = key


class StepReversed(LedgerError):
    """The key applied once and was reversed since: it may not apply, or count as applied, again.

    This is what stops a transfer run again under the same id from taking a
    reversed debit for a done one and paying out its credit.
    """

    def __init__(self, key: str, reversal_key: str) -> None:
        super().__init__(f"Step {key} was reversed by {reversal_key} and cannot apply again")
        self.key = key
        self.reversal_key = reversal_key


class StepSettled(LedgerError):
    """An operator settled the transfer by hand: its steps move no money any more.

    A settlement takes over the keys of the transfer's steps, so a late
    refund, or a second run of the transfer, cannot move money the operator
    has already accounted for.
    """

    def __init__(self, key: str, settlement_key: str) -> None:
        super().__init__(f"Step {key} was settled by hand ({settlement_key}) and cannot apply")
        self.key = key
        self.settlement_key = settlement_key


class IdempotencyConflict(LedgerError):
    """A key was reused for a different posting (or operator record).

    Re-applying a key must describe the same movement (or the same action);
    anything else is a bug in the caller and must not be answered with the
    first receipt.
    """

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"Key {key} was already used for a different posting: {detail}")
        self.key = key


class LedgerSchemaMismatch(LedgerError):
    """The ledger's schema is not one this process may use as it is.

    Missing, older or newer than this code's version (ledger/schema.py), or
    this database role may not read or migrate it; the message says what to
    run (`saga-transfer migrate`, as the schema's owner).
    """


class LedgerUnavailable(LedgerError):
    """The store could not be reached or stayed busy; the call may be retried."""

    retryable = True
