"""Shared fixtures: a time-skipping Temporal environment and fresh ledgers."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from app.temporal import (
    DEV_SERVER_TUNING,
    register_search_attributes,
    temporal_cli,
    time_skipping_server,
)
from ledger import LedgerStore, open_store
from ledger.postgres import PostgresLedgerStore
from tests.keys import TEST_CONVERTER, TEST_KEYS
from workflows.visibility import SEARCH_ATTRIBUTES

# Every CLI and worker subprocess encrypts with the suite's fixed test key.
os.environ["TRANSFER_ENCRYPTION_KEYS"] = TEST_KEYS
os.environ.pop("TRANSFER_ENCRYPTION", None)

OPENING = {
    "ACC-001": ("Alice", "1000.00"),
    "ACC-002": ("Bob", "500.00"),
    "ACC-003": ("Charlie", "750.00"),
}


#: Where the PostgreSQL tests connect (trust auth on these machines and in CI).
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL; skip (or, with REQUIRE_POSTGRES=1 as in CI, fail) if unreachable."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as err:
        reason = f"PostgreSQL unreachable at {POSTGRES_URL}: {err}".strip()
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    return POSTGRES_URL


def postgres_schema_url(base: str) -> str:
    """A URL for a schema of its own, so every test starts from an empty ledger."""
    return f"{base}?schema=t_{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping test server for the whole session (installed binary, offline)."""
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_CONVERTER,
        test_server_existing_path=time_skipping_server(),
    )
    await register_search_attributes(environment.client)
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """One real Temporal dev server (the installed CLI, in memory, a free port) for the session.

    For what the time-skipping server does not model faithfully: many
    concurrent workflows, real timing, visibility.
    """
    environment = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER,
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=DEV_SERVER_TUNING,
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    """The time-skipping environment's client (pydantic data converter)."""
    return env.client


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LedgerStore]:
    """A fresh SQLite ledger with Alice, Bob and Charlie."""
    ledger = open_store(str(tmp_path / "ledger.db"))
    for account_id, (owner, balance) in OPENING.items():
        ledger.open_account(account_id, owner, Decimal(balance))
    yield ledger
    ledger.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    """Alice, Bob and Charlie in a fresh ledger of each kind: SQLite, then PostgreSQL."""
    if request.param == "postgres":
        url = postgres_schema_url(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_store(url)
    for account_id, (owner, balance) in OPENING.items():
        ledger.open_account(account_id, owner, Decimal(balance))
    yield ledger
    if isinstance(ledger, PostgresLedgerStore):
        ledger.drop_schema()
    ledger.close()


def balances(store: LedgerStore) -> dict[str, Decimal]:
    """Every account's balance by id; asserts the double-entry invariant on the way."""
    accounts = store.list_accounts()
    assert sum(a.balance for a in accounts) == 0, "the ledger no longer sums to zero"
    return {a.id: a.balance for a in accounts}


def opening_balances() -> dict[str, Decimal]:
    """The balances `store` starts with, clearing and external included."""
    customers = {k: Decimal(v) for k, (_, v) in OPENING.items()}
    return customers | {"CLEARING": Decimal("0.00"), "EXTERNAL": -sum(customers.values())}
