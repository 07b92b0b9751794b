"""Shared fixtures: a time-skipping Temporal environment and fresh ledgers."""

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from app.temporal import (
    DEV_SERVER_TUNING,
    temporal_cli,
)
from ledger import LedgerStore, open_store
from ledger.postgres import PostgresLedgerStore
from tests.keys import TEST_CONVERTER, TEST_KEYS
from tests.support import skipping
from tests.support.ledgers import POSTGRES_URL, open_accounts, postgres_schema_url
from workflows.visibility import SEARCH_ATTRIBUTES

# Every CLI and worker subprocess encrypts with the suite's fixed test key.
os.environ["TRANSFER_ENCRYPTION_KEYS"] = TEST_KEYS
os.environ.pop("TRANSFER_ENCRYPTION", None)


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


@pytest.fixture(autouse=True)
async def _no_workflow_left_running(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Terminate what a test left running on the time-skipping server (see StartedWorkflows)."""
    environment = request.getfixturevalue("env") if "env" in request.fixturenames else None
    yield
    if isinstance(environment, WorkflowEnvironment):
        await skipping.LEFT_RUNNING.terminate_running(environment.client)


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping test server for the whole session (installed binary, offline)."""
    environment = await skipping.time_skipping_server()
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
    ledger = open_accounts(open_store(str(tmp_path / "ledger.db")))
    yield ledger
    ledger.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    """Alice, Bob and Charlie in a fresh ledger of each kind: SQLite, then PostgreSQL."""
    if request.param == "postgres":
        url = postgres_schema_url(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_accounts(open_store(url, migrate=True))
    yield ledger
    if isinstance(ledger, PostgresLedgerStore):
        ledger.drop_schema()
    ledger.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run: the simulated and the wall time of each time-skipping test."""
    lines = skipping.report()
    if lines:
        terminalreporter.section("time skipped: simulated vs wall time")
        for line in lines:
            terminalreporter.write_line(line)


#: The session's exit status, kept for `pytest_unconfigure`.
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Keep the exit status for the exit below."""
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave once everything is reported, without the interpreter's finalization.

    Threads of the Temporal SDK's core can still call into Python while the
    interpreter finalizes, which now and then aborts the process
    (``PyGILState_Release ... must be current``) after every test passed:
    a red `make test` with nothing wrong. The entry points leave the same way
    (`app.cli.output.exit_process`).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[-1] if _EXIT_STATUS else 0)
