"""The ledger's interface, and the one function that picks a store for a URL."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from ledger.currency import DEFAULT_CURRENCY
from ledger.models import CLEARING_OWNER, Account, OperatorActionKind, OperatorRecord, Receipt
from ledger.schema import MigrationReport
from ledger.shown import quoted, redact_url
from ledger.sql import SqlLedgerStore


class LedgerStore(Protocol):
    """The system of record. Every write is one transaction, idempotent by key."""

    def open_account(
        self,
        account_id: str,
        owner: str,
        opening_balance: Decimal = ...,
        *,
        currency: str | None = None,
    ) -> Account:
        """Open a customer account in `currency` (default: the store's), for good.

        Its opening balance is posted from that currency's external account.
        """
        ...

    def close_account(self, account_id: str) -> Account:
        """Close an account with a zero balance; it takes no postings after that."""
        ...

    def freeze_account(self, account_id: str) -> Account:
        """Freeze an open customer account: it takes no postings until unfrozen."""
        ...

    def unfreeze_account(self, account_id: str) -> Account:
        """Let a frozen account take postings again."""
        ...

    def settle_manually(
        self, key: str, *, source_keys: Sequence[str], to_account: str, memo: str
    ) -> Receipt | None:
        """Move what the postings `source_keys` left in clearing to `to_account`, with a note."""
        ...

    def get_account(self, account_id: str, *, currency: str | None = None) -> Account:
        """One account, or AccountNotFound (a system account: in `currency`, else the default)."""
        ...

    def list_accounts(self) -> list[Account]:
        """Every account, clearing and external included, as one consistent snapshot."""
        ...

    def debit(
        self,
        key: str,
        account_id: str,
        amount: Decimal,
        *,
        transfer: str | None = None,
        currency: str | None = None,
        counterpart: str | None = None,
    ) -> Receipt:
        """Move `amount` from a customer account to its currency's clearing, if the balance allows.

        `transfer` describes the whole transfer the step belongs to; kept as the
        posting's memo, it makes a replay under the key from another transfer
        an `IdempotencyConflict` even when this step's own movement matches.
        `currency` (the one the caller means) and `counterpart` (the account
        the money goes to, if this ledger holds it) must be in the account's
        currency, else `CurrencyMismatch` before anything is posted.
        """
        ...

    def credit(
        self,
        key: str,
        account_id: str,
        amount: Decimal,
        *,
        transfer: str | None = None,
        currency: str | None = None,
    ) -> Receipt:
        """Move `amount` from the clearing of `currency` to a customer account in it.

        `transfer`: as for `debit`. Without `currency`, the account's applies.
        """
        ...

    def reverse(self, key: str, *, original_key: str) -> Receipt:
        """Undo the posting `original_key`, or void it if it never applied."""
        ...

    def snapshot(self) -> tuple[list[Account], list[Receipt]]:
        """Every account and every receipt, read in one transaction (for audits)."""
        ...

    def find_receipt(self, key: str) -> Receipt | None:
        """The receipt of a key (posting or void), or None."""
        ...

    def receipts(self) -> list[Receipt]:
        """Every posting and void, oldest first."""
        ...

    def record_operator_action(
        self,
        key: str,
        *,
        transfer_id: str,
        action: OperatorActionKind | str,
        operator: str,
        note: str | None,
    ) -> OperatorRecord:
        """Append who acted on a transfer, how and why to the operator log, idempotent by key."""
        ...

    def operator_actions(self, transfer_id: str | None = None) -> list[OperatorRecord]:
        """The operator log, oldest first: every entry, or one transfer's."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


DEFAULT_LEDGER_URL = "sqlite:///.data/ledger.db"


def open_store(
    url: str = DEFAULT_LEDGER_URL,
    *,
    clearing_owner: str = CLEARING_OWNER,
    migrate: bool | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> LedgerStore:
    """Open the store a URL names, checking (or migrating) its schema.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a bare
    file path select SQLite; ``postgresql://user@host:port/db[?schema=name]``
    selects PostgreSQL.

    Args:
        url: The ledger.
        clearing_owner: Labels the clearing account of a ledger this call
            creates (an existing ledger keeps its label).
        migrate: Create or upgrade the schema first. By default a SQLite
            file (this process's own) is migrated and a PostgreSQL ledger
            never is: it is only checked, and `migrate` (as the schema's
            owner) is what creates or upgrades it.
        currency: The currency of accounts opened without one, and the one
            an upgrade gives what the ledger held before it knew currencies.

    Raises:
        ValueError: The URL names a store this build does not have.
        LedgerSchemaMismatch: Not migrating, and the schema is missing,
            older or newer than this code's; or it is newer than this code
            knows.
    """
    from ledger.sqlite import SqliteLedgerStore

    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        # sqlite:///rel.db -> "/rel.db" (relative), sqlite:////abs.db -> "//abs.db"
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ValueError(f"LEDGER_URL has no file path: {redact_url(url)!r}")
        return SqliteLedgerStore(
            Path(path),
            clearing_owner=clearing_owner,
            migrate=migrate is not False,
            currency=currency,
        )
    if parsed.scheme in ("postgresql", "postgres"):
        from ledger.postgres import PostgresLedgerStore

        return PostgresLedgerStore(
            url, clearing_owner=clearing_owner, migrate=bool(migrate), currency=currency
        )
    if parsed.scheme == "" and url:
        return SqliteLedgerStore(
            Path(url),
            clearing_owner=clearing_owner,
            migrate=migrate is not False,
            currency=currency,
        )
    raise ValueError(
        f"Unsupported LEDGER_URL scheme {quoted(parsed.scheme)}: "
        "use sqlite:///path.db or postgresql://host/db"
    )


def migrate(
    url: str,
    *,
    clearing_owner: str = CLEARING_OWNER,
    grant_to: str | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> tuple[MigrationReport, list[str]]:
    """Create or upgrade the ledger at `url` to this code's schema version.

    For PostgreSQL, run it as the schema's owner: workers and commands only
    check the version.

    Args:
        url: The ledger.
        clearing_owner: Labels the clearing account if the ledger is created.
        grant_to: A PostgreSQL role to grant the runtime privileges to
            (`PostgresLedgerStore.grant_runtime`).
        currency: What the ledger held before it knew currencies is in this
            one (``LEDGER_CURRENCY``).

    Returns:
        What it did, and the GRANT statements it ran.

    Raises:
        ValueError: `grant_to` for a SQLite ledger (it has no roles), or a
            malformed role name.
        LedgerSchemaMismatch: The ledger is newer than this code knows.
    """
    from ledger.postgres import PostgresLedgerStore, validate_name

    if grant_to is not None:
        if urlparse(url).scheme not in ("postgresql", "postgres"):
            raise ValueError("a SQLite ledger has no roles to grant: --grant is for PostgreSQL")
        validate_name(grant_to, "role")
    store = open_store(url, clearing_owner=clearing_owner, migrate=True, currency=currency)
    try:
        assert isinstance(store, SqlLedgerStore)
        assert store.migration is not None
        if not isinstance(store, PostgresLedgerStore) or grant_to is None:
            return store.migration, []
        return store.migration, store.grant_runtime(grant_to)
    finally:
        store.close()
