"""Durability against real processes: killed workers, a restarted server, two workers."""

import asyncio
import os
import signal
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from app.processes import free_port
from app.temporal import register_search_attributes, temporal_cli
from app.transfers import start_transfer
from ledger import PostingKind
from ledger.audit import audit
from ledger.postgres import PostgresLedgerStore
from tests.keys import TEST_CONVERTER
from tests.support.cli import ROOT, running_child, script_args
from tests.support.ledgers import balances, postgres_schema_url, seeded_ledger
from tests.support.transfers import postings_of
from tests.support.transfers import request as transfer_request

pytestmark = pytest.mark.e2e


def process_env(address: str, ledger_url: str, task_queue: str, tmp: Path) -> dict[str, str]:
    return os.environ | {
        "TEMPORAL_ADDRESS": address,
        "LEDGER_URL": ledger_url,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "TRANSFER_DATA_DIR": str(tmp),
        "PYTHONPATH": str(ROOT),
    }


def worker_args() -> list[str]:
    return script_args("worker.py")


def fault_worker_args(fault: str) -> list[str]:
    return [sys.executable, "-m", "tests.e2e.fault_worker", fault]


@pytest.mark.parametrize("fault", ["kill-before-credit", "kill-after-debit-commit"])
async def test_a_killed_worker_is_replaced_and_the_transfer_settles_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, fault: str
) -> None:
    """SIGKILL mid-transfer, start a fresh worker.py: one debit, one credit, nothing twice."""
    client = dev_env.client
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = seeded_ledger(url)
    task_queue = f"crash-{uuid.uuid4()}"
    env = process_env(client.service_client.config.target_host, url, task_queue, tmp_path)
    transfer_id = f"crash-{fault}"

    async with running_child(env, *fault_worker_args(fault), log=tmp_path / "fault.log") as doomed:
        handle, _ = await start_transfer(
            client, transfer_request("ACC-001", "ACC-002", "150"), transfer_id=transfer_id,
            task_queue=task_queue,
        )  # fmt: skip
        assert -signal.SIGKILL == await asyncio.wait_for(doomed.wait(), 60)
    after_crash = postings_of(store, transfer_id)
    assert [("debit", "debit")] == after_crash

    async with running_child(env, *worker_args(), log=tmp_path / "worker.log"):
        result = await asyncio.wait_for(handle.result(), 120)
    assert Decimal("150.00") == result.amount
    assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    assert (fault == "kill-after-debit-commit") == result.debit.replayed
    assert {"ACC-001": Decimal("850.00"), "ACC-002": Decimal("650.00")}.items() <= (
        balances(store).items()
    )
    assert [] == audit(*store.snapshot()).findings


async def test_transfers_in_flight_survive_a_dev_server_restart(tmp_path: Path) -> None:
    """Stop the server with transfers pending, start it on the same database: all settle."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    server_args = [
        temporal_cli(), "server", "start-dev", "--headless", "--port", str(port),
        "--db-filename", str(tmp_path / "temporal.db"), "--log-level", "error",
    ]  # fmt: skip
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = seeded_ledger(url)
    env = process_env(address, url, "restart-test", tmp_path)
    ids = [f"restart-{n}" for n in range(6)]

    async with running_child(env, *server_args, log=tmp_path / "server1.log", ready="Server:"):
        client = await Client.connect(address, data_converter=TEST_CONVERTER)
        await register_search_attributes(client)
        for transfer_id in ids[:3]:  # no worker yet: these wait in the server
            await start_transfer(
                client, transfer_request("ACC-001", "ACC-002", "10"), transfer_id=transfer_id,
                task_queue="restart-test",
            )  # fmt: skip
    async with running_child(env, *server_args, log=tmp_path / "server2.log", ready="Server:"):
        client = await Client.connect(address, data_converter=TEST_CONVERTER)
        async with running_child(env, *worker_args(), log=tmp_path / "worker.log"):
            for transfer_id in ids[3:]:
                await start_transfer(
                    client, transfer_request("ACC-003", "ACC-002", "5"), transfer_id=transfer_id,
                    task_queue="restart-test",
                )  # fmt: skip
            results = [
                await asyncio.wait_for(client.get_workflow_handle(i).result(), 60) for i in ids
            ]
    assert 6 == len(results)
    for transfer_id in ids:
        assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, transfer_id)
    after = balances(store)
    assert (Decimal("970.00"), Decimal("545.00"), Decimal("735.00")) == (
        after["ACC-001"],
        after["ACC-002"],
        after["ACC-003"],
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_two_worker_processes_share_the_queue_and_the_ledger(
    dev_env: WorkflowEnvironment, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """30 transfers through two worker.py processes: both work, every one settles once."""
    if kind == "postgres":
        url = postgres_schema_url(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = seeded_ledger(url)
    client = dev_env.client
    task_queue = f"two-{uuid.uuid4()}"
    env = process_env(client.service_client.config.target_host, url, task_queue, tmp_path)
    try:
        async with (
            running_child(env, *worker_args(), log=tmp_path / "a.log"),
            running_child(env, *worker_args(), log=tmp_path / "b.log"),
        ):
            handles = [
                (
                    await start_transfer(
                        client,
                        transfer_request(
                            *(("ACC-001", "ACC-002") if n % 2 else ("ACC-002", "ACC-003")), "1"
                        ),
                        transfer_id=f"two-{kind}-{n}",
                        task_queue=task_queue,
                    )
                )[0]
                for n in range(30)
            ]
            await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 120)
        logs = [(tmp_path / name).read_text() for name in ("a.log", "b.log")]
        assert all("Step two-" in log for log in logs), "one worker did all the work"
        debits = [r for r in store.receipts() if r.kind == PostingKind.DEBIT]
        assert 30 == len(debits)
        assert [] == audit(*store.snapshot()).findings
        after = balances(store)
        assert (Decimal("985.00"), Decimal("500.00"), Decimal("765.00")) == (
            after["ACC-001"],
            after["ACC-002"],
            after["ACC-003"],
        )
    finally:
        if isinstance(store, PostgresLedgerStore):
            store.drop_schema()
