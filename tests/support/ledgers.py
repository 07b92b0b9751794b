"""The suite's ledgers: the opening accounts, their balances, and PostgreSQL schemas."""

import os
import uuid
from decimal import Decimal

from ledger import LedgerStore, open_store

#: Alice, Bob and Charlie: account id -> (owner, opening balance).
OPENING = {
    "ACC-001": ("Alice", "1000.00"),
    "ACC-002": ("Bob", "500.00"),
    "ACC-003": ("Charlie", "750.00"),
}

#: Where the PostgreSQL tests connect (trust auth on these machines and in CI).
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def open_accounts(store: LedgerStore) -> LedgerStore:
    """Open Alice, Bob and Charlie in `store` with their opening balances; `store`."""
    for account_id, (owner, balance) in OPENING.items():
        store.open_account(account_id, owner, Decimal(balance))
    return store


def seeded_ledger(url: str) -> LedgerStore:
    """The ledger at `url`, migrated (as its owner would), with Alice, Bob and Charlie in it."""
    return open_accounts(open_store(url, migrate=True))


def postgres_schema_url(base: str) -> str:
    """A URL for a schema of its own, so every test starts from an empty ledger."""
    return f"{base}?schema=t_{uuid.uuid4().hex[:16]}"


def balances(store: LedgerStore) -> dict[str, Decimal]:
    """Every account's balance by id; asserts the double-entry invariant on the way.

    The invariant holds per currency. System accounts in a currency other
    than USD are keyed ``CLEARING EUR``.
    """
    accounts = store.list_accounts()
    for currency in {a.currency for a in accounts}:
        total = sum(a.balance for a in accounts if a.currency == currency)
        assert total == 0, f"the ledger no longer sums to zero in {currency}"
    return {
        a.id if a.kind == "customer" or a.currency == "USD" else f"{a.id} {a.currency}": a.balance
        for a in accounts
    }


def opening_balances() -> dict[str, Decimal]:
    """The balances a seeded ledger starts with, clearing and external included."""
    customers = {k: Decimal(v) for k, (_, v) in OPENING.items()}
    return customers | {"CLEARING": Decimal("0.00"), "EXTERNAL": -sum(customers.values())}
