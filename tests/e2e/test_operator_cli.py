"""Operator commands as processes: status, retry, resolve, cancel, freeze and unfreeze."""

import argparse
import asyncio
import getpass
import json
import os
import socket
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from app.cli import operators as app_cli
from app.config import Settings
from ledger import LedgerStore
from tests.support.cli import ROOT, run_cli_async
from tests.support.doubles import freezing_credit
from tests.support.ledgers import seeded_ledger
from tests.support.transfers import park
from tests.support.workers import transfer_worker
from workflows.contract import RetryRequest

pytestmark = pytest.mark.e2e


async def wait_parked(env: dict[str, str], transfer_id: str) -> dict[str, object]:
    for _ in range(100):
        code, out, _ = await run_cli_async(env, "status", transfer_id, "--json")
        if code == 0 and json.loads(out)["status"] == "needs_attention":
            return dict(json.loads(out))
        await asyncio.sleep(0.2)
    raise AssertionError(f"{transfer_id} never parked")


async def update_identities(client: Client, transfer_id: str) -> list[str]:
    """The client identity on each update the transfer's history accepted, in order."""
    history = await client.get_workflow_handle(transfer_id).fetch_history()
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.identity
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


async def test_operator_unfreezes_and_retries_or_resolves_from_the_command_line(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Two parked transfers: one retried after `accounts unfreeze`, one resolved with a note.

    Each action names its operator (`--operator`, else $TRANSFER_OPERATOR, else
    login@host) in the ledger's operator log and in Temporal's history.
    """
    env = {k: v for k, v in os.environ.items() if k != "TRANSFER_OPERATOR"} | {
        "LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "TRANSFER_DATA_DIR": str(tmp_path),
        "TEMPORAL_TASK_QUEUE": f"e2e-{uuid.uuid4()}",
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "PYTHONPATH": str(ROOT),
    }
    store = seeded_ledger(env["LEDGER_URL"])
    # Bob is frozen, so each credit fails (the starter checks only that he exists).
    store.freeze_account("ACC-002")

    async with transfer_worker(
        dev_env.client, store, task_queue=env["TEMPORAL_TASK_QUEUE"], credit=freezing_credit(store)
    ):
        code, _, err = await run_cli_async(
            env, "transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "80",
            "--id", "park-1", "--no-wait",
        )  # fmt: skip
        assert 0 == code, err
        parked = await wait_parked(env, "park-1")
        assert ["reverse_debit"] == parked["pending_compensations"]
        code, out, _ = await run_cli_async(env, "status", "park-1")
        assert "Waiting for an operator: pending reverse_debit." in out
        assert "reverse_debit   failed       AccountFrozen: Account is frozen: ACC-001" in out

        code, out, _ = await run_cli_async(env, "retry", "park-1", "--note", "too early")
        assert 1 == code
        assert "Account is frozen: ACC-001" in out
        login = f"{getpass.getuser()}@{socket.gethostname()}"
        assert f"Operator retry by {login} (too early): " in out

        code, _, err = await run_cli_async(env, "retry", "park-1", "--operator", " ")
        assert (2, "error: operator: The operator must be named\n") == (code, err)

        code, _, err = await run_cli_async(env, "cancel", "park-1")
        assert 2 == code
        assert "waits for an operator (needs_attention)" in err

        code, out, _ = await run_cli_async(env, "accounts", "unfreeze", "ACC-001")
        assert (0, "Unfroze ACC-001") == (code, out.strip())
        code, out, _ = await run_cli_async(
            env, "retry", "park-1", "--note", "unfrozen by fraud team", "--operator", "Dana Ops"
        )
        assert 0 == code, out
        assert "retry: compensations completed" in out
        assert "Operator retry by Dana Ops (unfrozen by fraud team): compensations completed" in out
        assert "Saga status: compensated" in out
        assert Decimal("1000.00") == store.get_account("ACC-001").balance

        # This time the starter waits (JSON): it names the transfer on stderr
        # before waiting, says when it parks, and reports how it really ended.
        start = ["--from", "ACC-001", "--to", "ACC-002", "--amount", "30", "--id", "park-2"]
        waiting = asyncio.create_task(run_cli_async(env, "transfer", *start, "--json"))
        await wait_parked(env, "park-2")
        await asyncio.sleep(4)  # the waiting starter looks every 2 s
        code, out, _ = await run_cli_async(
            env | {"TRANSFER_OPERATOR": "erin@bank"}, "resolve", "park-2", "--note",
            "Paid by cheque 42",
        )  # fmt: skip
        assert 0 == code, out
        code, out, err = await waiting
        assert 1 == code
        assert ("resolved", "park-2") == (json.loads(out)["status"], json.loads(out)["transfer_id"])
        assert err.startswith("Started transfer park-2: 30.00 ACC-001 -> ACC-002")
        assert "Transfer park-2 is parked for an operator (needs_attention)" in err
        code, out, _ = await run_cli_async(env, "status", "park-2")
        assert "Operator resolve by erin@bank (Paid by cheque 42): settled by hand" in out
        assert "Saga status: resolved" in out
        settlement = store.find_receipt("park-2/settle_manually")
        assert settlement is not None
        assert (Decimal("30.00"), "EXTERNAL", "Paid by cheque 42") == (
            settlement.amount,
            settlement.to_account,
            settlement.memo,
        )

        code, _, err = await run_cli_async(env, "retry", "park-2")
        assert 2 == code
        assert "Transfer park-2 has already ended (resolved); retry is only for" in err

        code, _, err = await run_cli_async(env, "cancel", "park-1")
        assert 1 == code
        assert "Transfer park-1 has already ended (compensated); cancelling changes" in err

        # Refused updates (bad operator, a transfer no longer parked) reached neither log.
        assert [login, "Dana Ops"] == await update_identities(dev_env.client, "park-1")
        assert ["erin@bank"] == await update_identities(dev_env.client, "park-2")
    assert [
        ("retry", login, "too early"),
        ("retry", "Dana Ops", "unfrozen by fraud team"),
    ] == [(r.action, r.operator, r.note) for r in store.operator_actions("park-1")]
    assert [("resolve", "erin@bank", "Paid by cheque 42")] == [
        (r.action, r.operator, r.note) for r in store.operator_actions("park-2")
    ]
    assert {"park-1", "park-2"} == {r.key.split("/operator/")[0] for r in store.operator_actions()}
    # The same log from the command line.
    code, out, _ = await run_cli_async(env, "operator-log", "park-1")
    assert 0 == code
    assert [f"retry by {login}: too early", "retry by Dana Ops: unfrozen by fraud team"] == [
        line.split(" park-1 ", 1)[1] for line in out.splitlines()
    ]
    code, out, _ = await run_cli_async(env, "operator-log", "--json")
    assert 0 == code
    assert ["resolve", "retry", "retry"] == sorted(e["action"] for e in json.loads(out))

    balances = {a.id: a.balance for a in store.list_accounts()}
    assert Decimal("0.00") == balances["CLEARING"]
    assert Decimal("970.00") == balances["ACC-001"]
    assert 0 == sum(balances.values())


async def test_retry_says_when_no_worker_has_carried_it_out(
    dev_env: WorkflowEnvironment,
    store: LedgerStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No worker running: `retry` says so on stderr, then finishes once a worker is back."""
    client = dev_env.client
    task_queue = f"e2e-{uuid.uuid4()}"
    transfer_id = f"nw-{uuid.uuid4().hex[:8]}"
    async with transfer_worker(client, store, task_queue=task_queue, credit=freezing_credit(store)):
        await park(client, store, task_queue, transfer_id)
    monkeypatch.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setattr(app_cli, "UPDATE_QUIET_SECONDS", 0.5)
    args = argparse.Namespace(transfer_id=transfer_id, command="retry", json=True)
    retrying = asyncio.create_task(
        app_cli._operate(Settings.from_env(), args, RetryRequest(operator="op"))
    )
    for _ in range(100):
        if "No worker has carried out the retry" in capsys.readouterr().err:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("retry never said that no worker acted")
    assert not retrying.done()
    async with transfer_worker(client, store, task_queue=task_queue):
        code = await asyncio.wait_for(retrying, 60)
    assert app_cli.EXIT_NOT_COMPLETED == code  # still frozen: parked again, and says so
    assert "needs_attention" in capsys.readouterr().out
