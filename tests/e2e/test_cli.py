"""The command lines as a user runs them: worker and starter processes, a real dev server."""

import base64
import json
import re
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.processes import start_process_sync, stop_process_sync
from app.temporal import temporal_cli
from ledger import open_store
from tests.support.cli import WorkerProcess, run_cli, script_args, start_worker, stop_worker
from tests.support.ledgers import OPENING, seeded_ledger

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker(server_env: dict[str, str]) -> Iterator[WorkerProcess]:
    """`python worker.py` as its own process; on teardown SIGTERM must stop it cleanly."""
    process = start_worker(server_env)
    yield process
    stop_worker(process)


def transfer(
    env: dict[str, str], source: str, destination: str, amount: str, *options: str
) -> subprocess.CompletedProcess[str]:
    """`starter.py transfer --from SOURCE --to DESTINATION --amount AMOUNT [options]`."""
    return run_cli(
        env, "transfer", "--from", source, "--to", destination, "--amount", amount, *options
    )


def balances(env: dict[str, str]) -> dict[str, str]:
    """Balances as the processes' ledger holds them (read directly: quicker than a process)."""
    return {a.id: f"{a.balance:.2f}" for a in open_store(env["LEDGER_URL"]).list_accounts()}


def open_seed_accounts(env: dict[str, str]) -> None:
    """Alice, Bob and Charlie, opened straight in the ledger the processes use."""
    seeded_ledger(env["LEDGER_URL"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "abc"], "not a number"),
        (["transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "1.001"], "two decimal"),
        (["transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "-3"], "greater than"),
        (["transfer", "--from", "ACC-001", "--to", "ACC-001", "--amount", "3"], "same account"),
        (["transfer", "--from", "A B", "--to", "ACC-001", "--amount", "3"], "Invalid account"),
        (["accounts", "open", "ACC-009", "--owner", "Eve", "--balance", "NaN"], "finite"),
        (["accounts", "open", "bad id", "--owner", "Eve"], "Invalid account number"),
        (["accounts", "open", "ACC-001", "--owner", "Again"], "already exists"),
        (["accounts", "close", "ACC-404"], "Account not found: ACC-404"),
    ],
)
def test_bad_input_gets_a_one_line_error_and_exit_2(
    cli_env: dict[str, str], args: list[str], message: str
) -> None:
    """No traceback, one line on stderr, exit 2, and nothing moved (no server needed)."""
    open_seed_accounts(cli_env)
    before = balances(cli_env)
    result = run_cli(cli_env, *args)
    assert 2 == result.returncode
    assert "Traceback" not in result.stderr
    assert 1 == len(result.stderr.strip().splitlines()), result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert before == balances(cli_env)


def test_unreachable_server_is_one_line_and_exit_3(cli_env: dict[str, str]) -> None:
    """A transfer with no server at the address says so and moves nothing."""
    open_seed_accounts(cli_env)
    env = cli_env | {"TEMPORAL_ADDRESS": "127.0.0.1:1"}
    result = run_cli(env, "transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "5")
    assert 3 == result.returncode
    assert "Cannot reach Temporal at 127.0.0.1:1" in result.stderr
    assert 1 == len(result.stderr.strip().splitlines())


def test_accounts_open_then_list_json(cli_env: dict[str, str]) -> None:
    """`accounts open` opens; `accounts list --json` shows every account with a string balance."""
    for account_id, (owner, balance) in OPENING.items():
        opened = run_cli(
            cli_env, "accounts", "open", account_id, "--owner", owner, "--balance", balance
        )
        assert 0 == opened.returncode, opened.stderr
        assert f"Opened {account_id} for {owner} with {balance} USD" == opened.stdout.strip()
    listed = json.loads(run_cli(cli_env, "accounts", "list", "--json").stdout)
    by_id = {a["id"]: a for a in listed}
    assert {
        "id": "ACC-001",
        "owner": "Alice",
        "kind": "customer",
        "balance": "1000.00",
    }.items() <= (by_id["ACC-001"].items())
    assert "-2250.00" == by_id["EXTERNAL"]["balance"]
    assert "0.00" == by_id["CLEARING"]["balance"]


def test_worker_and_starter_in_two_processes(
    server_env: dict[str, str], worker: WorkerProcess
) -> None:
    """Transfer, repeat the same id, fail one, query status: exit codes and balances as promised."""
    open_seed_accounts(server_env)
    ok = transfer(server_env, "ACC-001", "ACC-002", "150", "--id", "t-1")
    assert 0 == ok.returncode, ok.stderr
    assert "Transfer t-1 completed: 150.00 ACC-001 -> ACC-002" in ok.stdout
    assert "/namespaces/default/workflows/t-1" in ok.stdout

    again = transfer(server_env, "ACC-001", "ACC-002", "150", "--id", "t-1")
    assert 0 == again.returncode, again.stderr
    assert "Attached to existing transfer t-1" in again.stdout

    other = transfer(server_env, "ACC-001", "ACC-002", "1", "--id", "t-1")
    assert 2 == other.returncode
    assert "already used by another transfer (150.00 ACC-001 -> ACC-002)" in other.stderr

    short = transfer(server_env, "ACC-002", "ACC-003", "1000", "--json")
    assert 1 == short.returncode
    report = json.loads(short.stdout)
    assert ("compensated", "InsufficientFunds") == (report["status"], report["error"]["type"])
    assert "Insufficient funds: 650.00 < 1000.00" == report["error"]["message"]

    status = run_cli(server_env, "status", "t-1", "--json")
    assert 0 == status.returncode, status.stderr
    state = json.loads(status.stdout)
    assert "completed" == state["status"]
    assert [("debit", "completed"), ("credit", "completed")] == [
        (s["name"], s["status"]) for s in state["steps"]
    ]
    text = run_cli(server_env, "status", "t-1")
    assert "Saga status: completed" in text.stdout

    missing = run_cli(server_env, "status", "no-such-transfer")
    assert 2 == missing.returncode
    assert "No transfer with id no-such-transfer" in missing.stderr

    assert {
        "ACC-001": "850.00",
        "ACC-002": "650.00",
        "ACC-003": "750.00",
        "CLEARING": "0.00",
    }.items() <= (balances(server_env).items())


def temporal_execute(
    env: dict[str, str], workflow_id: str, payload: dict[str, str], *codec: str
) -> subprocess.CompletedProcess[str]:
    """`temporal workflow execute --type TransferWorkflow --input-file F`, as an operator runs it.

    The JSON goes through a file: the large inputs tested here exceed what
    one command-line argument may hold.
    """
    input_file = Path(env["TRANSFER_DATA_DIR"]) / f"{workflow_id}.json"
    input_file.write_text(json.dumps(payload))
    return subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "execute",
            "--address",
            env["TEMPORAL_ADDRESS"],
            "--task-queue",
            env["TEMPORAL_TASK_QUEUE"],
            "--type",
            "TransferWorkflow",
            "--workflow-id",
            workflow_id,
            "--input-file",
            str(input_file),
            *codec,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def temporal_show(env: dict[str, str], workflow_id: str, *codec: str) -> str:
    """`temporal workflow show --output json`: the history, decoded if given the codec flags."""
    result = subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "show",
            "--address",
            env["TEMPORAL_ADDRESS"],
            "--workflow-id",
            workflow_id,
            "--output",
            "json",
            *codec,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def failure_messages(history_json: str) -> list[str]:
    """The messages of the failures in a history as `temporal workflow show` printed it.

    With encoded failure attributes the message travels in a payload: plain
    JSON once the codec server decoded it, else still sealed.
    """
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            encoded = node.get("encodedAttributes")
            if isinstance(encoded, dict):
                encoding = base64.b64decode(encoded["metadata"]["encoding"])
                if encoding == b"json/plain":
                    found.append(json.loads(base64.b64decode(encoded["data"]))["message"])
                else:
                    found.append("(encrypted)")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return found


@pytest.fixture
def codec_server(server_env: dict[str, str]) -> Iterator[list[str]]:
    """`starter.py codec-server` as its own process; yields the `temporal` CLI's codec flags."""
    token = f"test-{uuid.uuid4().hex}"
    log = Path(server_env["TRANSFER_DATA_DIR"]) / "codec-server.log"
    process = start_process_sync(
        script_args("starter.py", "codec-server", "--port", "0"),
        log=log,
        ready="Ctrl-C to stop",
        env=server_env | {"TRANSFER_CODEC_TOKEN": token, "PYTHONUNBUFFERED": "1"},
        cwd=server_env["TRANSFER_DATA_DIR"],
    )
    found = re.search(r"listening on (http://\S+)", log.read_text())
    assert found, log.read_text()
    yield ["--codec-endpoint", found[1], "--codec-auth", f"Bearer {token}"]
    stop_process_sync(process, stop_signal=signal.SIGINT)


def test_plain_temporal_cli_starts_a_transfer_with_json_input(
    server_env: dict[str, str], worker: WorkerProcess, codec_server: list[str]
) -> None:
    """`temporal workflow execute` with hand-written JSON moves money; the codec shows errors.

    The CLI sends its input in plain text (the worker accepts plain payloads);
    what comes back is encrypted, so the CLI shows it only through the codec
    server.
    """
    open_seed_accounts(server_env)
    request = {"source_account": "ACC-003", "destination_account": "ACC-001", "amount": "50.25"}
    result = temporal_execute(server_env, "cli-1", request, *codec_server)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "50.25" in result.stdout  # the result, decrypted by the codec server
    assert {"ACC-003": "699.75", "ACC-001": "1050.25"}.items() <= balances(server_env).items()

    bad = temporal_execute(server_env, "cli-2", request | {"amount": "12.345"})
    assert 0 != bad.returncode
    assert "Encoded failure" in bad.stdout  # without the codec: nothing readable
    assert "12.345" not in bad.stdout

    bad = temporal_execute(server_env, "cli-3", request | {"amount": "12.345"}, *codec_server)
    assert 0 != bad.returncode
    # `execute` prints the failure's plain message ("Encoded failure"); the
    # history, shown through the codec, has the real one. Without a currency
    # the request cannot know the places, so the debit refuses it (USD has
    # two): the activity's failure, then the workflow's.
    messages = failure_messages(temporal_show(server_env, "cli-3", *codec_server))
    assert any(
        "Amount has more than two decimal places (USD has two): 12.345" in message
        for message in messages
    ), messages
    assert {"(encrypted)"} == set(failure_messages(temporal_show(server_env, "cli-3")))
    assert {"ACC-003": "699.75", "ACC-001": "1050.25"}.items() <= balances(server_env).items()


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("source_account", "A" * 100_000, "Invalid account number"),
        ("destination_account", "ACC-\u0000\u202e\ud7ff" * 50, "Invalid account number"),
        ("amount", "9" * 50_000, "Amount is not a number"),
        ("amount", ["150.00"], "amount"),
        ("deadline_seconds", "10" * 1000, "deadline_seconds"),
    ],
)
def test_oversized_or_malformed_cli_input_fails_the_workflow_before_any_posting(
    server_env: dict[str, str],
    worker: WorkerProcess,
    codec_server: list[str],
    field: str,
    value: object,
    complaint: str,
) -> None:
    """Hand-written JSON that is huge or the wrong shape: a clear validation error, no posting."""
    open_seed_accounts(server_env)
    before = balances(server_env)
    request: dict[str, Any] = {
        "source_account": "ACC-003",
        "destination_account": "ACC-001",
        "amount": "5.00",
    }
    workflow_id = f"cli-bad-{uuid.uuid4().hex[:8]}"
    result = temporal_execute(server_env, workflow_id, request | {field: value}, *codec_server)
    assert 0 != result.returncode
    shown = temporal_show(server_env, workflow_id, *codec_server)
    assert '"type": "ValidationError"' in shown
    [message] = failure_messages(shown)
    assert complaint in message
    assert len(message) < 2_000  # the error quotes a bounded prefix, never the whole input
    assert before == balances(server_env)
    receipts = open_store(server_env["LEDGER_URL"]).receipts()
    assert not [r for r in receipts if r.key.startswith(workflow_id)]


def test_an_input_beyond_the_server_blob_limit_never_starts(
    server_env: dict[str, str], worker: WorkerProcess
) -> None:
    """Above Temporal's payload size limit the server refuses the start itself: nothing runs."""
    open_seed_accounts(server_env)
    before = balances(server_env)
    request = {"source_account": "ACC-003", "destination_account": "ACC-001", "amount": "5.00"}
    result = temporal_execute(server_env, "cli-huge", request | {"memo": "x" * 3_000_000})
    assert 0 != result.returncode
    assert "size" in (result.stdout + result.stderr).lower()
    assert before == balances(server_env)


def test_encryption_off_is_plain_end_to_end_and_a_mismatch_says_why(
    server_env: dict[str, str],
) -> None:
    """Off end to end: plain payloads. Off against an encrypting worker: one clear line.

    The worker accepts the off client's plain input, so the money moves; the
    client cannot read the encrypted reply and says that encryption is off.
    """
    open_seed_accounts(server_env)
    off = server_env | {"TRANSFER_ENCRYPTION": "off"}
    worker = start_worker(off)
    try:
        result = transfer(off, "ACC-001", "ACC-002", "10", "--id", "plain-1")
        assert 0 == result.returncode, result.stdout + result.stderr
    finally:
        stop_worker(worker)
    shown = json.loads(temporal_show(server_env, "plain-1"))
    started = shown["events"][0]["workflowExecutionStartedEventAttributes"]
    [payload] = started["input"]["payloads"]
    assert b"json/plain" == base64.b64decode(payload["metadata"]["encoding"])
    assert b"ACC-001" in base64.b64decode(payload["data"])

    worker = start_worker(server_env)  # encrypts
    try:
        result = transfer(off, "ACC-001", "ACC-002", "5", "--id", "mixed-1")
        assert 2 == result.returncode, result.stdout + result.stderr
        assert "encryption is off in this process" in result.stderr
        assert "Traceback" not in result.stderr
        # The worker took the plain input: the money moved, only the reply is unreadable.
        assert "985.00" == balances(server_env)["ACC-001"]
    finally:
        stop_worker(worker)


def test_demo_runs_the_three_scenarios(server_env: dict[str, str]) -> None:
    """`starter.py demo` prints the seed's balances and ends every scenario as expected."""
    result = run_cli(server_env, "demo", timeout=240)
    assert 0 == result.returncode, result.stdout + result.stderr
    out = result.stdout
    assert "Insufficient funds: 650.00 < 1000.00" in out
    assert "Account not found: ACC-999" in out
    assert "Demo finished: every scenario ended as expected." in out
    final = out.rsplit("Balances:", 1)[1]
    for line in ("Alice", "850.00"), ("Bob", "650.00"), ("Charlie", "750.00"):
        assert any(line[0] in row and f" {line[1]} USD" in row for row in final.splitlines())
    assert out.count("Saga status: compensated") == 2
    assert "Web UI: http://localhost:8233/namespaces/default/workflows/demo-" in out
    clearing = [row.split() for row in out.splitlines() if "CLEARING" in row]
    assert [
        ["north", "Clearing", "and", "settlement", "CLEARING", "clearing", "120.00", "USD"]
    ] == [row for row in clearing if row[0] == "north"]


def test_demo_starts_the_embedded_dev_server_when_none_answers(cli_env: dict[str, str]) -> None:
    """With nothing on localhost:7233, the demo starts the dev server from the installed CLI."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 7233)) == 0:
            pytest.skip(
                "a server already listens on 7233; the embedded start cannot be tested here"
            )
    # As on a fresh clone: no key configured, so the demo makes one.
    env = {
        k: v
        for k, v in cli_env.items()
        if not k.startswith("TEMPORAL_ADDRESS") and k != "TRANSFER_ENCRYPTION_KEYS"
    }
    data = Path(cli_env["TRANSFER_DATA_DIR"])
    data.chmod(0o755)  # as an older version left it: open to everyone on the machine
    result = run_cli(env, "demo", timeout=300)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "Starting the embedded Temporal dev server" in result.stdout
    assert "Demo finished: every scenario ended as expected." in result.stdout
    # The data dir is closed, and all the demo made in it (ledgers, the dev
    # server's database, the key) is owner-only.
    assert f"Data directory {data} was mode 0755, now 0700" in result.stderr
    assert 0o700 == data.stat().st_mode & 0o777
    made = [p for p in data.iterdir() if p.name.startswith(("temporal.db", "demo-ledger"))]
    assert len(made) >= 3, made
    assert {} == {p.name: oct(p.stat().st_mode) for p in made if p.stat().st_mode & 0o077}
    assert (data / "temporal.db").is_file()
    key_file = data / "encryption-keys"
    assert "Generated encryption key" in result.stdout
    assert 0o600 == key_file.stat().st_mode & 0o777
    # The server's own database never saw the demo's failure message in clear.
    assert "Insufficient funds: 650.00 < 1000.00" in result.stdout
    stored = b"".join(p.read_bytes() for p in data.glob("temporal.db*"))
    assert b"Insufficient funds" not in stored
    assert b"TransferWorkflow" in stored  # (what is not encrypted is there to find)


def test_audit_passes_a_whole_ledger_and_names_money_no_workflow_owns(
    server_env: dict[str, str],
) -> None:
    """`audit` exits 0 on a clean ledger; a debit with no workflow behind it is a finding."""
    open_seed_accounts(server_env)
    clean = run_cli(server_env, "audit")
    assert 0 == clean.returncode, clean.stdout + clean.stderr
    assert "OK: the ledger sums to zero" in clean.stdout

    open_store(server_env["LEDGER_URL"]).debit("ghost-1/debit", "ACC-001", Decimal("5"))
    offline = run_cli(server_env, "audit", "--no-temporal", "--json")
    assert 0 == offline.returncode  # the ledger alone is consistent: money in flight
    assert {"in_flight": 1} == json.loads(offline.stdout)["outcomes"]
    found = run_cli(server_env, "audit")
    assert 1 == found.returncode
    assert "ghost-1: holds money in clearing but its workflow is missing" in found.stdout
