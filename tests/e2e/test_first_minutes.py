"""A user's first minutes: no worker running yet, a mistyped account, a zero deadline."""

import asyncio
import json
import signal
import time
from collections.abc import Mapping

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from tests.support.cli import run_cli, run_cli_async, script_args, start_worker, stop_worker
from tests.support.doubles import freezing_credit
from tests.support.ledgers import balances, opening_balances, seeded_ledger
from tests.support.transfers import park
from tests.support.workers import transfer_worker

pytestmark = pytest.mark.e2e

#: The line `transfer` prints once when no worker takes the transfer.
NO_WORKER = "no worker is polling task queue {}; start one with: python worker.py"


def start_args(
    transfer_id: str, source: str = "ACC-001", destination: str = "ACC-002"
) -> list[str]:
    """`transfer --from SOURCE --to DESTINATION --amount 25 --id ID`."""
    return [
        "transfer",
        "--from",
        source,
        "--to",
        destination,
        "--amount",
        "25",
        "--id",
        transfer_id,
    ]


async def starter(env: Mapping[str, str], *args: str) -> asyncio.subprocess.Process:
    """`python starter.py ARGS` as a child whose stdout and stderr we read."""
    return await asyncio.create_subprocess_exec(
        *script_args("starter.py", *args),
        env=dict(env),
        cwd=env["TRANSFER_DATA_DIR"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_until(stream: asyncio.StreamReader, text: str, within: float = 30) -> str:
    """Everything `stream` says up to and including the line that holds `text`."""
    said = ""
    deadline = time.monotonic() + within
    while text not in said:
        line = await asyncio.wait_for(stream.readline(), deadline - time.monotonic())
        if not line:
            raise AssertionError(f"ended without saying {text!r}: {said}")
        said += line.decode()
    return said


async def no_workflow(env: WorkflowEnvironment, transfer_id: str) -> bool:
    """Whether no workflow has this id on the server."""
    try:
        await env.client.get_workflow_handle(transfer_id).describe()
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


@pytest.mark.parametrize(
    ("source", "destination", "message"),
    [
        ("ACC-001", "ACC-777", "Account not found: ACC-777"),
        ("ACC-777", "ACC-001", "Account not found: ACC-777"),
        (
            "ACC-001",
            "acc-002",
            "Account not found: acc-002 (account numbers are case-sensitive: "
            "did you mean ACC-002?)",
        ),
    ],
)
async def test_an_unknown_account_is_refused_before_anything_starts(
    server_env: dict[str, str], dev_env: WorkflowEnvironment, source: str, destination: str,
    message: str,
) -> None:  # fmt: skip
    """Exit 2 and one line naming the account; no workflow started, no money moved."""
    store = seeded_ledger(server_env["LEDGER_URL"])
    result = run_cli(server_env, *start_args("unknown-1", source, destination))
    assert (2, f"error: {message}\n") == (result.returncode, result.stderr)
    assert await no_workflow(dev_env, "unknown-1")
    assert opening_balances() == balances(store)


def test_a_deadline_under_a_second_names_the_flag(cli_env: dict[str, str]) -> None:
    """`--deadline 0` is refused as a usage error about `--deadline`, not a model field."""
    result = run_cli(cli_env, *start_args("zero-1"), "--deadline", "0")
    assert 2 == result.returncode
    assert "argument --deadline: must be at least 1 second" in result.stderr
    assert "deadline_seconds" not in result.stderr


async def test_transfer_says_once_that_no_worker_polls_its_queue_and_keeps_waiting(
    server_env: dict[str, str],
) -> None:
    """No worker: one line naming the queue; a worker started later completes it (exit 0)."""
    store = seeded_ledger(server_env["LEDGER_URL"])
    child = await starter(server_env, *start_args("lonely-1"))
    assert child.stderr is not None
    told = await read_until(child.stderr, "no worker is polling")
    assert NO_WORKER.format(server_env["TEMPORAL_TASK_QUEUE"]) in told
    worker = start_worker(server_env)
    try:
        out, err = await asyncio.wait_for(child.communicate(), 60)
    finally:
        stop_worker(worker)
    assert 0 == child.returncode, err
    assert "Transfer lonely-1 completed: 25.00 ACC-001 -> ACC-002" in out.decode()
    assert "no worker is polling" not in err.decode(), "said more than once"
    assert 975 == balances(store)["ACC-001"]


async def test_ctrl_c_while_waiting_names_the_transfer_that_keeps_running(
    server_env: dict[str, str], dev_env: WorkflowEnvironment
) -> None:
    """Ctrl-C: exit 130, the transfer id and how to follow it; the workflow still runs."""
    seeded_ledger(server_env["LEDGER_URL"])
    child = await starter(server_env, *start_args("interrupted-1"))
    assert child.stderr is not None
    await read_until(child.stderr, "no worker is polling")
    child.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(child.communicate(), 30)
    assert 130 == child.returncode
    assert (
        "error: Interrupted: transfer interrupted-1 keeps running; follow it with "
        "`python starter.py status interrupted-1`"
    ) in err.decode()
    description = await dev_env.client.get_workflow_handle("interrupted-1").describe()
    assert "RUNNING" == description.status.name if description.status else None
    await dev_env.client.get_workflow_handle("interrupted-1").terminate("test over")


async def test_cancel_before_any_worker_is_recorded_and_undone_when_one_runs(
    server_env: dict[str, str], dev_env: WorkflowEnvironment
) -> None:
    """No worker: `cancel` records the request (exit 0); the first worker ends it cancelled."""
    store = seeded_ledger(server_env["LEDGER_URL"])
    started = run_cli(server_env, *start_args("early-1"), "--no-wait")
    assert 0 == started.returncode, started.stderr
    cancelled = run_cli(server_env, "cancel", "early-1")
    assert 0 == cancelled.returncode, cancelled.stderr
    assert (
        "Cancel recorded for transfer early-1; the transfer will be undone when a worker runs "
        f"it ({NO_WORKER.format(server_env['TEMPORAL_TASK_QUEUE'])})\n"
    ) == cancelled.stdout
    worker = start_worker(server_env)
    try:
        status = run_cli(server_env, "status", "early-1", "--json")
        for _ in range(50):
            if json.loads(status.stdout or "{}").get("status") == "cancelled":
                break
            await asyncio.sleep(0.2)
            status = run_cli(server_env, "status", "early-1", "--json")
        again = run_cli(server_env, "cancel", "early-1")
    finally:
        stop_worker(worker)
    assert "cancelled" == json.loads(status.stdout)["status"], status.stdout + status.stderr
    ended = "error: Transfer early-1 has already ended (cancelled); cancelling changes nothing\n"
    assert (1, ended) == (again.returncode, again.stderr)
    assert opening_balances() == balances(store)
    assert not [r for r in store.receipts() if r.kind.value in ("debit", "credit")]


async def test_cancel_refuses_a_parked_transfer_without_a_worker_or_a_cancel_request(
    dev_env: WorkflowEnvironment, server_env: dict[str, str]
) -> None:
    """Parked, no worker: `cancel` says use retry or resolve (exit 2), and requests nothing."""
    store = seeded_ledger(server_env["LEDGER_URL"])
    task_queue = server_env["TEMPORAL_TASK_QUEUE"]
    async with transfer_worker(
        dev_env.client, store, task_queue=task_queue, credit=freezing_credit(store)
    ):
        handle = await park(dev_env.client, store, task_queue, "parked-1")
    code, _, err = await run_cli_async(server_env, "cancel", "parked-1")
    history = await handle.fetch_history()
    await handle.terminate("test over")
    assert 2 == code, err
    assert "waits for an operator (needs_attention); use `retry` or `resolve`" in err
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED not in [
        e.event_type for e in history.events
    ]


async def test_status_says_at_once_that_no_worker_has_taken_the_transfer(
    server_env: dict[str, str], dev_env: WorkflowEnvironment
) -> None:
    """No worker: `status` names the queue and the fix instead of timing out on its query."""
    seeded_ledger(server_env["LEDGER_URL"])
    started = run_cli(server_env, *start_args("unseen-1"), "--no-wait")
    assert 0 == started.returncode, started.stderr
    await asyncio.sleep(6)  # longer than a worker would take to pick it up
    status = run_cli(server_env, "status", "unseen-1")
    expected = (
        "error: Transfer unseen-1 is waiting for a worker, so its saga state cannot be read yet: "
        f"{NO_WORKER.format(server_env['TEMPORAL_TASK_QUEUE'])}\n"
    )
    assert (3, expected) == (status.returncode, status.stderr)
    await dev_env.client.get_workflow_handle("unseen-1").terminate("test over")
