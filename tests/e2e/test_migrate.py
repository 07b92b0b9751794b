"""A worker on PostgreSQL runs no DDL: it refuses an unmigrated ledger, and runs once migrated."""

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from temporalio.testing import WorkflowEnvironment

from app.transfers import start_transfer
from ledger import SCHEMA_VERSION, open_store
from ledger.postgres import split_schema
from ledger.shown import redact_url
from tests.support.cli import run_cli_async, running_child, script_args
from tests.support.ledgers import open_accounts, postgres_schema_url
from tests.support.transfers import request as transfer_request

pytestmark = pytest.mark.e2e


async def test_a_worker_refuses_an_unmigrated_postgres_ledger_and_starts_after_migrate(
    server_env: dict[str, str], dev_env: WorkflowEnvironment, postgres_url: str, tmp_path: Path
) -> None:
    """Exit 2 with one line naming `migrate`, schema untouched; `migrate`, then it serves."""
    url = postgres_schema_url(postgres_url)
    env = server_env | {"LEDGER_URL": url}
    try:
        code, out, err = await run_cli_async(env, script="worker.py")
        assert (2, "") == (code, out)
        assert [
            f"error: ledger at {redact_url(url)} has no schema yet, this code needs version "
            f"{SCHEMA_VERSION}: run `saga-transfer migrate` (or `python starter.py migrate`) "
            "as the schema's owner"
        ] == err.splitlines()
        code, out, err = await run_cli_async(env, "migrate")
        assert 0 == code, err
        assert f"created at version {SCHEMA_VERSION}" in out
        store = open_accounts(open_store(url))
        async with running_child(env, *script_args("worker.py"), log=tmp_path / "worker.log"):
            handle, _ = await start_transfer(
                dev_env.client,
                transfer_request("ACC-001", "ACC-002", "12.50"),
                transfer_id=f"migrated-{uuid.uuid4()}",
                task_queue=env["TEMPORAL_TASK_QUEUE"],
            )
            result = await asyncio.wait_for(handle.result(), 60)
        assert Decimal("12.50") == result.amount
        assert Decimal("987.50") == store.get_account("ACC-001").balance
        store.close()
    finally:
        conninfo, schema = split_schema(url)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
