"""What people see outside the payloads: attributes, summaries, list, stats, metrics.

Search attributes, static and activity summaries, current details, the `list`,
`stats` and `setup` commands, and the worker's Prometheus metrics.
"""

import asyncio
import json
import os
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from app.processes import free_port
from app.temporal import temporal_cli
from app.transfers import start_transfer
from ledger import LedgerStore
from tests.keys import TEST_CONVERTER
from tests.support.cli import ROOT, run_cli_async, running_child, script_args
from tests.support.ledgers import seeded_ledger
from tests.support.transfers import request
from tests.support.workers import transfer_worker
from workflows import visibility

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def fresh_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of this module's own, so visibility counts are exactly ours."""
    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER,
        dev_server_existing_path=temporal_cli(),
        search_attributes=visibility.SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> LedgerStore:
    return seeded_ledger(str(tmp_path_factory.mktemp("obs") / "ledger.db"))


@pytest.fixture(scope="module")
async def two_transfers(fresh_env: WorkflowEnvironment, ledger: LedgerStore) -> dict[str, str]:
    """One completed (obs-ok) and one compensated (obs-undone) transfer on `fresh_env`."""
    client = fresh_env.client
    async with transfer_worker(client, ledger) as tq:
        ok, _ = await start_transfer(
            client, request("ACC-001", "ACC-002", "150"), transfer_id="obs-ok", task_queue=tq
        )
        await ok.result()
        undone, _ = await start_transfer(
            client, request("ACC-003", "ACC-404", "20"), transfer_id="obs-undone", task_queue=tq
        )
        with pytest.raises(WorkflowFailureError):
            await undone.result()
        # Queries of closed workflows need a worker: read the details now.
        details = {
            h.id: (
                await h.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            ).current_details
            for h in (ok, undone)
        }
    await wait_visible(
        client, "WorkflowType = 'TransferWorkflow' AND ExecutionStatus != 'Running'", 2
    )
    return details


async def wait_visible(client: Client, query: str, count: int) -> None:
    """Visibility is eventually consistent: wait until `count` workflows match."""
    for _ in range(100):
        if (await client.count_workflows(query)).count >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility never showed {count} for {query}")


def cli_env(address: str, tmp: Path) -> dict[str, str]:
    return os.environ | {
        "TEMPORAL_ADDRESS": address,
        "TRANSFER_DATA_DIR": str(tmp),
        "LEDGER_URL": f"sqlite:///{tmp / 'ledger.db'}",
        "PYTHONPATH": str(ROOT),
    }


async def test_search_attributes_summaries_and_details_describe_each_transfer(
    fresh_env: WorkflowEnvironment, two_transfers: dict[str, str]
) -> None:
    """Status, accounts and amount are searchable; summaries and details read without payloads."""
    client = fresh_env.client
    described = await client.get_workflow_handle("obs-ok").describe()
    attributes = described.typed_search_attributes
    assert ("completed", "ACC-001", "ACC-002", 150.0) == (
        attributes.get(visibility.TRANSFER_STATUS),
        attributes.get(visibility.SOURCE_ACCOUNT),
        attributes.get(visibility.DESTINATION_ACCOUNT),
        attributes.get(visibility.TRANSFER_AMOUNT),
    )
    assert "Transfer 150.00 ACC-001 -> ACC-002" == await described.static_summary()
    undone = await client.get_workflow_handle("obs-undone").describe()
    assert "compensated" == undone.typed_search_attributes.get(visibility.TRANSFER_STATUS)

    summaries = []
    async for event in client.get_workflow_handle("obs-undone").fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            [summary] = await client.data_converter.decode([event.user_metadata.summary])
            summaries.append(summary)
    assert [
        "debit ACC-003 20.00",
        "credit ACC-404 20.00",
        "reverse_credit ACC-404 20.00",
        "reverse_debit ACC-003 20.00",
    ] == summaries

    assert "**Status:** completed" in two_transfers["obs-ok"]
    assert "- **debit**: completed, 150.00 ACC-001 → CLEARING" in two_transfers["obs-ok"]
    assert "**Reason:** Account not found: ACC-404" in two_transfers["obs-undone"]
    assert (
        "- **credit**: failed, AccountNotFound: Account not found: ACC-404"
        in (two_transfers["obs-undone"])
    )


async def test_list_filters_by_status_and_account(
    fresh_env: WorkflowEnvironment, two_transfers: dict[str, str], tmp_path: Path
) -> None:
    """`list --status` and `list --account` run visibility queries on the attributes."""
    env = cli_env(fresh_env.client.service_client.config.target_host, tmp_path)
    code, out, err = await run_cli_async(env, "list", "--status", "compensated", "--json")
    assert 0 == code, err
    assert [("obs-undone", "compensated", "20.00")] == [
        (r["transfer_id"], r["status"], r["amount"]) for r in json.loads(out)
    ]
    code, out, _ = await run_cli_async(env, "list", "--account", "ACC-002", "--json")
    assert ["obs-ok"] == [r["transfer_id"] for r in json.loads(out)]
    code, out, _ = await run_cli_async(env, "list")
    assert "obs-ok" in out
    assert "obs-undone" in out
    code, _, err = await run_cli_async(env, "list", "--account", "x' OR '1'='1")
    assert 2 == code
    assert "Invalid account number" in err


async def test_visibility_commands_need_no_key_and_payload_commands_say_they_do(
    fresh_env: WorkflowEnvironment, two_transfers: dict[str, str], tmp_path: Path
) -> None:
    """Someone without the encryption keys can list and count, not read a transfer."""
    env = cli_env(fresh_env.client.service_client.config.target_host, tmp_path)
    env.pop("TRANSFER_ENCRYPTION_KEYS")
    code, out, err = await run_cli_async(env, "list", "--json")
    assert 0 == code, err
    assert {"obs-ok", "obs-undone"} <= {r["transfer_id"] for r in json.loads(out)}
    code, _, err = await run_cli_async(env, "stats")
    assert 0 == code, err
    code, _, err = await run_cli_async(env, "status", "obs-ok")
    assert 2 == code
    assert "no key is configured" in err
    assert not (tmp_path / "encryption-keys").exists()


async def test_stats_counts_by_status_and_reports_durations(
    fresh_env: WorkflowEnvironment, two_transfers: dict[str, str], tmp_path: Path
) -> None:
    """One completed, one compensated: a 50% compensation rate and two closed durations."""
    env = cli_env(fresh_env.client.service_client.config.target_host, tmp_path)
    code, out, err = await run_cli_async(env, "stats", "--json")
    assert 0 == code, err
    stats = json.loads(out)
    assert 2 == stats["total"]
    assert {"completed": 1, "compensated": 1} == {k: v for k, v in stats["by_status"].items() if v}
    assert 0.5 == stats["compensation_rate"]
    assert 2 == stats["closed_in_window"]
    assert 0 < stats["mean_seconds"] <= stats["p95_seconds"] < 60
    code, out, _ = await run_cli_async(env, "stats")
    assert "Compensation rate: 50.0%" in out


async def test_setup_registers_search_attributes_and_the_worker_insists_on_them(
    tmp_path: Path,
) -> None:
    """On a bare server the worker refuses to start; `setup` registers; a second `setup` says so."""
    bare = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli())
    try:
        env = cli_env(bare.client.service_client.config.target_host, tmp_path)
        code, _, err = await run_cli_async(env, script="worker.py")
        assert 3 == code
        assert "are not registered" in err
        assert "python starter.py setup" in err
        code, out, err = await run_cli_async(env, "setup")
        assert 0 == code, err
        assert (
            "Registered search attributes on default: DestinationAccount, ParkedSince, "
            "RetryUntil, SourceAccount, TransferAmount, TransferStatus"
        ) in out
        code, out, _ = await run_cli_async(env, "setup")
        assert "Already registered on default: DestinationAccount" in out
    finally:
        await bare.shutdown()


async def test_worker_serves_sdk_and_transfer_metrics(
    fresh_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """`worker.py --metrics-port` serves Prometheus text: the SDK's and the transfer's metrics."""
    env = cli_env(fresh_env.client.service_client.config.target_host, tmp_path)
    env["TEMPORAL_TASK_QUEUE"] = "metrics-test"
    seeded_ledger(env["LEDGER_URL"])
    port = free_port()
    worker_args = script_args("worker.py", "--metrics-port", str(port))
    async with running_child(env, *worker_args, log=tmp_path / "worker.log"):
        client = fresh_env.client
        handle, _ = await start_transfer(
            client, request("ACC-001", "ACC-002", "12.34"), transfer_id="metrics-1",
            task_queue="metrics-test",
        )  # fmt: skip
        await handle.result()
        text = ""
        for _ in range(50):
            text = await asyncio.to_thread(
                lambda: (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    .read()
                    .decode()
                )
            )
            if "transfer_completed" in text:
                break
            await asyncio.sleep(0.2)
    samples = {
        line.split(" ")[0].split("{")[0]: line
        for line in text.splitlines()
        if not line.startswith("#")
    }
    for name in ("transfer_started", "transfer_completed", "transfer_amount_moved"):
        assert name in samples, name
    assert "1234" == samples["transfer_amount_moved"].rsplit(" ", 1)[1]
    assert any(name.startswith("transfer_duration") for name in samples)
    assert any(name.startswith("temporal_") for name in samples), "SDK metrics missing"
