"""Standing orders on a real dev server: one transfer per period, never a period paid twice.

The orders run every 2 s against an in-process worker; the `schedule`
commands run as processes. Balances and postings are the proof: each run's
transfer id is `<order>-<scheduled time>`, and a period started again (a
backfill, Temporal's catch-up mechanism) is the same transfer id, which the
ledger's keys pay once.
"""

import asyncio
import itertools
import json
import sys
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import (
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleOverlapPolicy,
)
from temporalio.testing import WorkflowEnvironment

from ledger import LedgerStore
from tests.support.cli import run_cli_async
from tests.support.ledgers import balances, seeded_ledger
from tests.support.workers import transfer_worker

pytestmark = pytest.mark.e2e


async def settled(handle: ScheduleHandle, *, runs: int) -> ScheduleDescription:
    """The schedule once it has started at least `runs` runs and none is going or waiting."""
    for _ in range(400):
        description = await handle.describe()
        info = description.info
        idle = not info.running_actions and not description.raw_description.info.buffer_size
        if info.num_actions >= runs and idle:
            return description
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"{handle.id} never settled after {runs} runs: {description.raw_description.info}"
    )


def postings(store: LedgerStore, order_id: str) -> Counter[tuple[str, str]]:
    """How many postings of each kind each of the order's transfers has in the ledger."""
    _, receipts = store.snapshot()
    return Counter(
        (r.key.rpartition("/")[0], r.kind.value) for r in receipts if r.key.startswith(order_id)
    )


def run_ids(description: ScheduleDescription) -> list[str]:
    return [getattr(r.action, "workflow_id", "") for r in description.info.recent_actions]


async def test_a_standing_order_pays_each_period_once_whatever_starts_it_again(
    dev_env: WorkflowEnvironment, server_env: dict[str, str]
) -> None:
    """Every 2 s a run of its own id; a trigger, a backfill over paid periods, pause, delete.

    Pause stops the runs; a trigger pays one more, once; the backfill starts
    every paid period again under its id and pays nothing; delete removes it.
    """
    order = f"rent-{uuid.uuid4().hex[:6]}"
    store = seeded_ledger(server_env["LEDGER_URL"])
    handle = dev_env.client.get_schedule_handle(order)
    async with transfer_worker(dev_env.client, store, task_queue=server_env["TEMPORAL_TASK_QUEUE"]):
        code, out, err = await run_cli_async(
            server_env, "schedule", "create", order, "--from", "ACC-001", "--to", "ACC-002",
            "--amount", "10", "--every", "2s", "--json",
        )  # fmt: skip
        assert 0 == code, err
        created = json.loads(out)
        assert ("2s", None, "10.00", False) == (
            created["every"], created["cron"], created["amount"], created["paused"]
        )  # fmt: skip
        assert {"overlap": "buffer_one", "catchup_window": "1d"} == created["policy"]
        assert created["next_runs"]

        await settled(handle, runs=3)
        code, out, _ = await run_cli_async(
            server_env, "schedule", "pause", order, "--note", "tenant moved out"
        )
        assert (0, f"Paused standing order {order} (tenant moved out)") == (
            code, out.split(";")[0]
        )  # fmt: skip
        paused = await settled(handle, runs=3)
        periods = list(paused.info.recent_actions)
        ids = run_ids(paused)
        n = len(ids)
        # One transfer per period: its id names the order and the scheduled time, to the second.
        assert [f"{order}-{p.scheduled_at:%Y-%m-%dT%H:%M:%SZ}" for p in periods] == ids
        assert n == len(set(ids))
        gaps = {(b.scheduled_at - a.scheduled_at) for a, b in itertools.pairwise(periods)}
        assert {timedelta(seconds=2)} == gaps
        assert Decimal(1000 - 10 * n) == balances(store)["ACC-001"]

        # Paused: no period runs.
        await asyncio.sleep(5)
        assert n == (await handle.describe()).info.num_actions

        # A trigger: exactly one more run, under an id of its own, paid once.
        code, out, err = await run_cli_async(server_env, "schedule", "trigger", order)
        assert 0 == code, err
        triggered = out.strip().rpartition(" ")[2]
        assert f"Triggered {order}: started transfer {triggered}" == out.strip()
        after_trigger = await settled(handle, runs=n + 1)
        assert [*ids, triggered] == run_ids(after_trigger)
        assert triggered not in ids
        assert Decimal(1000 - 10 * (n + 1)) == balances(store)["ACC-001"]

        # Catch-up: Temporal starts every paid period again under its same id ...
        await handle.backfill(
            ScheduleBackfill(
                start_at=periods[0].scheduled_at - timedelta(seconds=1),
                end_at=periods[-1].scheduled_at,
                overlap=ScheduleOverlapPolicy.BUFFER_ALL,
            )
        )
        caught_up = await settled(handle, runs=2 * n + 1)
        assert [*ids, triggered, *ids] == run_ids(caught_up)
        # ... and the ledger pays none of them again.
        assert Decimal(1000 - 10 * (n + 1)) == balances(store)["ACC-001"]
        assert Decimal(500 + 10 * (n + 1)) == balances(store)["ACC-002"]
        assert {
            (transfer_id, kind): 1
            for transfer_id in [*ids, triggered]
            for kind in ("debit", "credit")
        } == dict(postings(store, order))

        code, out, _ = await run_cli_async(server_env, "schedule", "describe", order, "--json")
        described = json.loads(out)
        assert (0, True, "tenant moved out") == (code, described["paused"], described["note"])
        assert [(i, "completed", False) for i in [*ids, triggered]] + [
            (i, "completed", True) for i in ids
        ] == [(r["transfer_id"], r["status"], r["repeat"]) for r in described["runs"]]
        assert 2 * n + 1 == described["counts"]["started"]
        code, out, _ = await run_cli_async(server_env, "schedule", "describe", order)
        assert "  State: paused (tenant moved out)" in out.splitlines()
        assert f"{ids[0]}  completed (a repeat of this period: it replayed the first run's" in out

        # The runs are ordinary transfers: `list` shows each one.
        code, out, _ = await run_cli_async(server_env, "list", "--account", "ACC-001", "--json")
        listed = {row["transfer_id"]: row["status"] for row in json.loads(out)}
        assert {i: "completed" for i in [*ids, triggered]} == {
            i: s for i, s in listed.items() if i.startswith(order)
        }

    # `saga-transfer` is the same command line.
    saga_transfer = str(Path(sys.executable).parent / "saga-transfer")
    process = await asyncio.create_subprocess_exec(
        saga_transfer, "schedule", "delete", order,
        env=server_env, cwd=server_env["TRANSFER_DATA_DIR"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out_bytes, _ = await process.communicate()
    assert (0, f"Deleted standing order {order}") == (
        process.returncode,
        out_bytes.decode().strip(),
    )
    code, _, err = await run_cli_async(server_env, "schedule", "describe", order)
    assert (2, f"error: No standing order with id {order}") == (code, err.strip())
    for _ in range(100):  # the list comes from visibility, a moment behind
        code, out, _ = await run_cli_async(server_env, "schedule", "list", "--json")
        if order not in {o["order_id"] for o in json.loads(out)}:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"{order} still listed after delete")


async def test_a_run_refused_for_insufficient_funds_shows_why_in_describe_and_list(
    dev_env: WorkflowEnvironment, server_env: dict[str, str]
) -> None:
    """Bob pays 300.00 every 2 s from 500.00: the first run completes, the next is compensated."""
    order = f"loan-{uuid.uuid4().hex[:6]}"
    store = seeded_ledger(server_env["LEDGER_URL"])
    handle = dev_env.client.get_schedule_handle(order)
    async with transfer_worker(dev_env.client, store, task_queue=server_env["TEMPORAL_TASK_QUEUE"]):
        code, _, err = await run_cli_async(
            server_env, "schedule", "create", order, "--from", "ACC-002", "--to", "ACC-003",
            "--amount", "300", "--every", "2s",
        )  # fmt: skip
        assert 0 == code, err
        await settled(handle, runs=2)
        await handle.pause()
        description = await settled(handle, runs=2)
        first, second, *_ = run_ids(description)
        code, out, _ = await run_cli_async(server_env, "schedule", "describe", order)
        assert 0 == code
        lines = out.splitlines()
        assert any(line.endswith(f"{first}  completed") for line in lines), out
        refused = f"{second}  compensated: Insufficient funds: 200.00 < 300.00 [InsufficientFunds]"
        assert any(line.endswith(refused) for line in lines), out
        code, out, _ = await run_cli_async(server_env, "schedule", "list")
        [line] = [line for line in out.splitlines() if line.strip().startswith(order)]
        assert line.endswith(
            "compensated: Insufficient funds: 200.00 < 300.00 [InsufficientFunds]"
        ), line
        assert f"  {order}  paused  300.00 ACC-002 -> ACC-003, every 2s; last: " in line
        # Bob is paid 300.00, then the refused period is started again: it stays
        # refused (its debit was voided), so it can never pay late by accident.
        store.debit("top-up/debit", "ACC-001", Decimal(300))
        store.credit("top-up/credit", "ACC-002", Decimal(300))
        await handle.backfill(
            ScheduleBackfill(
                start_at=description.info.recent_actions[1].scheduled_at - timedelta(seconds=1),
                end_at=description.info.recent_actions[1].scheduled_at,
            )
        )
        again = await settled(handle, runs=description.info.num_actions + 1)
        assert second == run_ids(again)[-1]
        code, out, _ = await run_cli_async(server_env, "schedule", "describe", order, "--json")
        rerun = json.loads(out)["runs"][-1]
        assert (second, "compensated", "StepVoided") == (
            rerun["transfer_id"], rerun["status"], rerun["error"]["type"]
        )  # fmt: skip
        assert {(first, "debit"): 1, (first, "credit"): 1} == {
            key: n for key, n in postings(store, order).items() if key[1] in ("debit", "credit")
        }
    assert Decimal("500.00") == balances(store)["ACC-002"]
    await handle.delete()


async def test_one_run_at_a_time_a_run_that_does_not_end_holds_the_order_back(
    dev_env: WorkflowEnvironment, server_env: dict[str, str]
) -> None:
    """No worker takes the first run: the next period waits, later ones are skipped and counted.

    A trigger is skipped too (exit 1); once a worker comes, the period that
    waited runs, and every run is paid once.
    """
    order = f"gym-{uuid.uuid4().hex[:6]}"
    store = seeded_ledger(server_env["LEDGER_URL"])
    handle = dev_env.client.get_schedule_handle(order)
    code, _, err = await run_cli_async(
        server_env, "schedule", "create", order, "--from", "ACC-003", "--to", "ACC-001",
        "--amount", "5", "--every", "1s",
    )  # fmt: skip
    assert 0 == code, err
    for _ in range(100):
        info = (await handle.describe()).info
        if info.num_actions_skipped_overlap >= 2:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("no period was skipped")
    code, out, _ = await run_cli_async(server_env, "schedule", "trigger", order)
    [going] = (await handle.describe()).info.running_actions
    stuck = getattr(going, "workflow_id", "")
    assert (1, f"Trigger of {order} skipped: transfer {stuck} is still running and another run "
            "already waits (one run at a time)") == (code, out.strip())  # fmt: skip
    code, out, _ = await run_cli_async(server_env, "schedule", "describe", order, "--json")
    described = json.loads(out)
    assert ([stuck], 1, 1) == (
        described["running"], described["counts"]["started"], described["counts"]["waiting"]
    )  # fmt: skip
    assert described["counts"]["skipped"] >= 3  # two periods and the trigger
    assert [(stuck, "running")] == [(r["transfer_id"], r["status"]) for r in described["runs"]]

    async with transfer_worker(dev_env.client, store, task_queue=server_env["TEMPORAL_TASK_QUEUE"]):
        for _ in range(100):
            if (await handle.describe()).info.num_actions >= 2:
                break
            await asyncio.sleep(0.2)
        await handle.pause()  # a pause drops a period still waiting: pause after it started
        done = await settled(handle, runs=2)
    first, waited, *_ = done.info.recent_actions
    assert stuck == getattr(first.action, "workflow_id", "")
    # The period right after the stuck one waited for it (until the worker came) ...
    assert first.scheduled_at + timedelta(seconds=1) == waited.scheduled_at
    assert waited.started_at - waited.scheduled_at > timedelta(seconds=3)
    # ... and every run is a transfer of its own, paid once.
    ids = run_ids(done)
    assert len(ids) == len(set(ids)) == done.info.num_actions
    assert Decimal(750 - 5 * len(ids)) == balances(store)["ACC-003"]
    assert {(i, k): 1 for i in ids for k in ("debit", "credit")} == dict(postings(store, order))
    await handle.delete()
