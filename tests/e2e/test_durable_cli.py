"""Durable time from the command line, on a real dev server: dated transfers and overdue ones.

`transfer --at/--in` starts a transfer that is `scheduled` (status, list,
nothing posted) and returns; `--wait` waits it out; `cancel` calls one off
moving nothing. A parked transfer shows its automatic retries in `status`,
and one with no retry window is overdue at once: `list --overdue` finds it.
The search attributes that came with it are registered by `setup` on an
existing server, and by `worker.py --dev` on an older database.
"""

import asyncio
import json
import os
import re
import signal
import socket
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from app.temporal import temporal_cli
from tests.e2e.test_dev_server import kill_group, start_dev_worker, wait_for
from tests.support.cli import ROOT, WORKER_READY, run_cli_async
from tests.support.doubles import freezing_credit
from tests.support.ledgers import opening_balances, seeded_ledger
from tests.support.transfers import postings_of
from tests.support.workers import transfer_worker
from workflows.visibility import SEARCH_ATTRIBUTES

pytestmark = pytest.mark.e2e

#: Thirty days from now, as `status` rounds it a moment later.
IN_30D = "in (30d|29d 23h)"

#: The search attributes of the release before durable time.
OLDER_ATTRIBUTES = [
    key for key in SEARCH_ATTRIBUTES if key.name not in ("ParkedSince", "RetryUntil")
]


def transfer(transfer_id: str, amount: str = "25", *extra: str) -> list[str]:
    """`transfer --from ACC-001 --to ACC-002 --amount AMOUNT --id ID EXTRA`."""
    return ["transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", amount,
            "--id", transfer_id, *extra]  # fmt: skip


async def cli_balances(env: dict[str, str]) -> dict[str, Decimal]:
    """Every balance as `accounts list --json` prints it."""
    code, out, err = await run_cli_async(env, "accounts", "list", "--json")
    assert 0 == code, err
    return {a["id"]: Decimal(a["balance"]) for a in json.loads(out)}


async def status_json(env: dict[str, str], transfer_id: str) -> dict[str, Any]:
    code, out, err = await run_cli_async(env, "status", transfer_id, "--json")
    assert 0 == code, err
    state: dict[str, Any] = json.loads(out)
    return state


async def wait_parked(env: dict[str, str], transfer_id: str) -> dict[str, Any]:
    for _ in range(100):
        state = await status_json(env, transfer_id)
        if state["status"] == "needs_attention":
            return state
        assert state["status"] in ("pending", "running", "compensating"), state
        await asyncio.sleep(0.2)
    raise AssertionError(f"{transfer_id} never parked")


async def listed(env: dict[str, str], *args: str, want: str, present: bool = True) -> str:
    """`list ARGS` once `want` is (or is no longer) in it: visibility is eventually consistent."""
    for _ in range(50):
        code, out, err = await run_cli_async(env, "list", *args)
        assert 0 == code, err
        if (want in out) == present:
            return out
        await asyncio.sleep(0.2)
    raise AssertionError(f"list {' '.join(args)}: {want} {'never' if present else 'still'} there")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_dated_transfer_is_scheduled_moves_nothing_until_then_and_can_be_called_off(
    dev_env: WorkflowEnvironment, server_env: dict[str, str]
) -> None:
    """`--in 30d`: scheduled (status, list), posts nothing; a re-run attaches; cancel moves nothing.

    It is `scheduled` from its start, before any worker has run it, and the
    starter returns at once. `--in 3s --wait` waits, and reports it completed.
    """
    env = server_env
    store = seeded_ledger(env["LEDGER_URL"])
    later, soon = f"dated-{uuid.uuid4().hex[:8]}", f"soon-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC)
    code, out, err = await run_cli_async(env, *transfer(later, "25", "--in", "30d"))
    assert 0 == code, err
    first, follow, web_ui = out.splitlines()
    shown = re.fullmatch(
        rf"Scheduled transfer {later}: 25.00 ACC-001 -> ACC-002 at (\S+)Z \({IN_30D}\)", first
    )
    assert shown is not None, first
    due = datetime.fromisoformat(shown.group(1)).replace(tzinfo=UTC)
    assert before + timedelta(days=30) - timedelta(seconds=1) <= due
    assert due <= datetime.now(UTC) + timedelta(days=30)
    assert f"`python starter.py cancel {later}` calls it off" in follow
    assert web_ui.startswith("  Web UI: http")
    # No worker has run it yet: the starter set its status.
    assert later in await listed(env, "--status", "scheduled", want=later)

    async with transfer_worker(dev_env.client, store, task_queue=env["TEMPORAL_TASK_QUEUE"]):
        text = (await run_cli_async(env, "status", later))[1]
        assert "  Saga status: scheduled" in text
        assert re.search(
            rf"  Scheduled for {due:%Y-%m-%dT%H:%M:%S}Z \({IN_30D}\): nothing is posted until then",
            text,
        ), text
        state = await status_json(env, later)
        assert ("scheduled", due) == (state["status"], _instant(state["request"]["execute_at"]))
        assert ["pending", "pending"] == [step["status"] for step in state["steps"]]
        assert opening_balances() == await cli_balances(env)
        assert [] == postings_of(store, later)

        # Run again a second later, `--in 30d` names another time: still the same transfer.
        await asyncio.sleep(1)
        code, out, err = await run_cli_async(env, *transfer(later, "25", "--in", "30d", "--json"))
        assert 0 == code, err
        assert {
            "attached": True,
            "status": "scheduled",
            "execute_at": f"{due:%Y-%m-%dT%H:%M:%S}Z",
        }.items() <= json.loads(out).items()
        code, _, err = await run_cli_async(env, *transfer(later, "26", "--in", "30d"))
        assert 2 == code
        assert f"Transfer id {later} is already used by another transfer" in err

        code, out, err = await run_cli_async(env, "cancel", later)
        assert (0, f"Transfer {later} cancelled: Transfer was cancelled [Cancelled]") == (
            code,
            out.strip(),
        ), err
        assert "cancelled" == (await status_json(env, later))["status"]
        assert [] == postings_of(store, later)
        assert opening_balances() == await cli_balances(env)

        code, out, err = await run_cli_async(
            env, *transfer(soon, "40", "--in", "3s", "--wait", "--json")
        )
        assert 0 == code, err
        assert ("completed", soon) == (json.loads(out)["status"], json.loads(out)["transfer_id"])
        assert err.startswith(f"Scheduled transfer {soon}: 40.00 ACC-001 -> ACC-002 at ")
        assert "Waiting until it has run (Ctrl-C stops the waiting, not the transfer)" in err
        assert [("debit", "debit"), ("credit", "credit")] == postings_of(store, soon)
        balances = await cli_balances(env)
        assert (Decimal("960.00"), Decimal("540.00")) == (balances["ACC-001"], balances["ACC-002"])
        assert soon in await listed(env, "--status", "completed", want=soon)


async def test_a_parked_transfer_shows_its_automatic_retries_and_one_past_its_window_is_overdue(
    dev_env: WorkflowEnvironment, server_env: dict[str, str]
) -> None:
    """`status` names the next automatic retry and the window's end; `--retry-window 0`: overdue.

    Only the overdue one is in `list --overdue`, in text and JSON.
    """
    env = server_env
    store = seeded_ledger(env["LEDGER_URL"])
    # Bob is frozen, so each credit fails; the credit freezes Alice, so her refund fails too.
    store.freeze_account("ACC-002")
    retrying, overdue = f"retrying-{uuid.uuid4().hex[:8]}", f"overdue-{uuid.uuid4().hex[:8]}"
    async with transfer_worker(
        dev_env.client, store, task_queue=env["TEMPORAL_TASK_QUEUE"], credit=freezing_credit(store)
    ):
        code, _, err = await run_cli_async(env, *transfer(retrying, "80", "--no-wait"))
        assert 0 == code, err
        state = await wait_parked(env, retrying)
        parked, until = _instant(state["parked_since"]), _instant(state["retry_until"])
        next_retry = _instant(state["next_retry_at"])
        assert (timedelta(days=3), timedelta(minutes=1)) == (until - parked, next_retry - parked)
        assert (0, False) == (state["automatic_retries"], state["overdue"])
        code, text, _ = await run_cli_async(env, "status", retrying)
        assert 0 == code
        lines = text.splitlines()
        assert f"  Parked since {parked:%Y-%m-%dT%H:%M:%S}Z (" in "\n".join(lines)
        [retries] = [line for line in lines if line.startswith("  Automatic retries: ")]
        assert re.fullmatch(
            rf"  Automatic retries: 0 so far; next at {next_retry:%Y-%m-%dT%H:%M:%S}Z "
            rf"\(in \d+s\); until {until:%Y-%m-%dT%H:%M:%S}Z \(in (3d|2d 23h)\)",
            retries,
        ), retries
        assert "Overdue" not in text

        store.unfreeze_account("ACC-001")  # for the next debit; its credit freezes her again
        code, _, err = await run_cli_async(
            env, *transfer(overdue, "30", "--retry-window", "0", "--no-wait")
        )
        assert 0 == code, err
        state = await wait_parked(env, overdue)
        assert (True, None) == (state["overdue"], state["next_retry_at"])
        assert state["parked_since"] == state["retry_until"]
        code, text, _ = await run_cli_async(env, "status", overdue)
        assert re.search(
            r"\n  Overdue: automatic retries \(0 so far\) ended at \S+Z \(\d+s ago\); only an "
            r"operator can settle it now\n",
            text,
        ), text

        out = await listed(env, "--overdue", want=overdue)
        assert retrying not in out
        [row] = [line for line in out.splitlines() if line.startswith(overdue)]
        assert re.fullmatch(
            rf"{overdue} +needs_attention +30.00  ACC-001 +ACC-002 +"
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
            row,
        ), row
        code, out, err = await run_cli_async(env, "list", "--overdue", "--json")
        assert 0 == code, err
        [found] = [r for r in json.loads(out) if r["transfer_id"] == overdue]
        assert ("needs_attention", "30.00") == (found["status"], found["amount"])
        assert _instant(found["parked_since"]) == _instant(found["retry_until"])
        assert retrying not in out
        code, _, err = await run_cli_async(env, "list", "--overdue", "--status", "needs_attention")
        assert 2 == code
        assert "argument --status: not allowed with argument --overdue" in err
    assert Decimal("890.00") == store.get_account("ACC-001").balance  # both parked in clearing


async def test_setup_registers_the_new_search_attributes_on_an_existing_server(
    tmp_path: Path,
) -> None:
    """A server set up by the release before: the worker names what is missing; `setup` adds it."""
    older = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), search_attributes=OLDER_ATTRIBUTES
    )
    try:
        env = os.environ | {
            "TEMPORAL_ADDRESS": older.client.service_client.config.target_host,
            "TRANSFER_DATA_DIR": str(tmp_path),
            "LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "PYTHONPATH": str(ROOT),
        }
        code, _, err = await run_cli_async(env, script="worker.py")
        assert 3 == code
        assert (
            "error: Search attributes ParkedSince, RetryUntil are not registered on namespace "
            "default: run `python starter.py setup` (once per cluster, and again after an "
            "upgrade that adds some), then start the worker again"
        ) == err.strip().splitlines()[-1]
        code, out, err = await run_cli_async(env, "setup")
        assert 0 == code, err
        assert "Registered search attributes on default: ParkedSince, RetryUntil" in out
        assert "Already registered on default: DestinationAccount, SourceAccount" in out
    finally:
        await older.shutdown()


async def test_the_dev_worker_registers_the_search_attributes_an_older_database_lacks(
    cli_env: dict[str, str],
) -> None:
    """`worker.py --dev` on a `.data/temporal.db` made by the release before: it adds the new ones.

    The dev server registers its `--search-attribute`s only in a new database,
    and `setup` cannot reach a server that runs only inside the worker.
    """
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 7233)) == 0:
            pytest.skip("a server already listens on 7233; the embedded start cannot be tested")
    data = Path(cli_env["TRANSFER_DATA_DIR"])
    older = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=OLDER_ATTRIBUTES,
        dev_server_database_filename=str(data / "temporal.db"),
    )
    await older.shutdown()
    env = {k: v for k, v in cli_env.items() if not k.startswith("TEMPORAL_ADDRESS")}
    worker = start_dev_worker(env, data / "worker.out")
    try:
        told = wait_for(data / "worker.out", WORKER_READY)
        # SIGTERM, so that the worker stops the dev server it started (a group of its own).
        os.killpg(worker.pid, signal.SIGTERM)
        assert 0 == worker.wait(60)
    finally:
        kill_group(worker)
    assert "Registered search attributes new in this release: ParkedSince, RetryUntil" in told
