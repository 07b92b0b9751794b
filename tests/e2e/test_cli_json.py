"""The command lines' JSON mode and console commands, as processes."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.support.ledgers import seeded_ledger
from workflows.visibility import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def run(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=env["TRANSFER_DATA_DIR"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def starter(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(env, sys.executable, str(ROOT / "starter.py"), *args)


def json_error(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The `{"error": ...}` of a failed JSON-mode run: alone on stdout, nothing on stderr."""
    assert "" == result.stderr
    document = json.loads(result.stdout)
    assert ["error"] == list(document)
    assert {"message", "exit_code"} == set(document["error"])
    assert result.returncode == document["error"]["exit_code"]
    return dict(document["error"])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A CLI process's environment: its own ledger, data dir and task queue."""
    return os.environ | {
        "LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "TRANSFER_DATA_DIR": str(tmp_path),
        "TEMPORAL_TASK_QUEUE": f"e2e-{uuid.uuid4()}",
        "PYTHONPATH": str(ROOT),
    }


@pytest.mark.parametrize("script", ["saga-transfer", "saga-transfer-worker"])
def test_console_commands_print_help_and_version(env: dict[str, str], script: str) -> None:
    """The installed commands run from the venv's bin: `--help` names them; `--version` too."""
    path = BIN / script
    assert path.exists(), f"{path} is missing: run `make install`"
    helped = run(env, str(path), "--help")
    assert (0, "") == (helped.returncode, helped.stderr)
    assert helped.stdout.startswith(f"usage: {script} [-h]")
    versioned = run(env, str(path), "--version")
    assert (0, "saga-transfer 0.1.0\n", "") == (
        versioned.returncode,
        versioned.stdout,
        versioned.stderr,
    )


def test_account_actions_print_the_account_as_json(env: dict[str, str]) -> None:
    """`accounts open/freeze/unfreeze/close --json` print the account as `accounts list` does."""
    opened = starter(env, "accounts", "open", "ACC-007", "--owner", "Gus", "--json")
    assert (0, "") == (opened.returncode, opened.stderr)
    account = {
        "id": "ACC-007",
        "owner": "Gus",
        "kind": "customer",
        "currency": "USD",
        "balance": "0.00",
    }
    assert account | {"status": "open"} == json.loads(opened.stdout)
    for action, status in [("freeze", "frozen"), ("unfreeze", "open"), ("close", "closed")]:
        result = starter(env, "accounts", action, "ACC-007", "--json")
        assert (0, "") == (result.returncode, result.stderr)
        assert account | {"status": status} == json.loads(result.stdout)
    listed = json.loads(starter(env, "accounts", "list", "--json").stdout)
    assert account | {"status": "closed"} in listed


def test_currencies_are_chosen_at_opening_and_a_transfer_across_them_is_refused(
    env: dict[str, str],
) -> None:
    """`--currency` opens in a currency (in its places); mixing is exit 2 before any start."""
    for command in (
        ["ACC-E1", "--owner", "Dora", "--balance", "300", "--currency", "eur"],
        ["ACC-E2", "--owner", "Emil", "--currency", "EUR"],
        ["ACC-U1", "--owner", "Uma", "--balance", "10"],
        ["ACC-J1", "--owner", "Fumi", "--balance", "1500", "--currency", "JPY"],
    ):
        opened = starter(env, "accounts", "open", *command)
        assert (0, "") == (opened.returncode, opened.stderr)
    assert "Opened ACC-J1 for Fumi with 1500 JPY\n" == opened.stdout
    refusals = [
        (
            ["transfer", "--from", "ACC-U1", "--to", "ACC-E1", "--amount", "5"],
            "Currency mismatch: ACC-U1 is in USD, ACC-E1 in EUR; a transfer never converts "
            "currencies [CurrencyMismatch]",
        ),
        (
            [
                "transfer",
                "--from",
                "ACC-E1",
                "--to",
                "ACC-E2",
                "--amount",
                "5",
                "--currency",
                "USD",
            ],
            "Currency mismatch: the transfer is in USD, ACC-E1 is in EUR [CurrencyMismatch]",
        ),
        (
            [
                "accounts",
                "open",
                "ACC-J2",
                "--owner",
                "Goro",
                "--balance",
                "15.5",
                "--currency",
                "JPY",
            ],
            "Amount has decimal places (JPY has none): 15.5",
        ),
    ]
    for command, message in refusals:
        refused = starter(env, *command)
        assert (2, "", f"error: {message}\n") == (
            refused.returncode,
            refused.stdout,
            refused.stderr,
        )
    unknown = starter(env, "accounts", "open", "ACC-X1", "--owner", "X", "--currency", "XYZ")
    assert 2 == unknown.returncode
    assert unknown.stderr.startswith("error: Unknown currency 'XYZ': use an ISO 4217 code")
    listed = json.loads(starter(env, "accounts", "list", "--json").stdout)
    shown = {(a["id"], a["currency"]): a["balance"] for a in listed}
    assert "300.00" == shown["ACC-E1", "EUR"]
    assert "1500" == shown["ACC-J1", "JPY"]
    assert ("-300.00", "-1500") == (shown["EXTERNAL", "EUR"], shown["EXTERNAL", "JPY"])
    assert "ACC-J2" not in {a["id"] for a in listed}
    table = starter(env, "accounts", "list").stdout
    assert "  Fumi" in table
    assert " 1,500 JPY" in table


def test_errors_in_json_mode_are_json_with_the_text_modes_exit_code(env: dict[str, str]) -> None:
    """Unknown accounts and bad amount exit 2, no server exits 3: each as `{"error": ...}`."""
    missing = json_error(starter(env, "accounts", "close", "ACC-404", "--json"))
    assert {"message": "Account not found: ACC-404", "exit_code": 2} == missing
    text = starter(env, "accounts", "close", "ACC-404")
    assert (2, "", "error: Account not found: ACC-404\n") == (
        text.returncode,
        text.stdout,
        text.stderr,
    )

    move = ["transfer", "--from", "ACC-001", "--to", "ACC-002", "--json", "--amount"]
    bad_amount = json_error(starter(env, *move, "abc"))
    assert 2 == bad_amount["exit_code"]
    assert "not a number" in str(bad_amount["message"])

    unknown = json_error(starter(env, *move, "5"))  # checked before Temporal is called
    assert {"message": "Account not found: ACC-001", "exit_code": 2} == unknown
    seeded_ledger(env["LEDGER_URL"])
    unreachable = json_error(starter(env | {"TEMPORAL_ADDRESS": "127.0.0.1:1"}, *move, "5"))
    assert 3 == unreachable["exit_code"]
    assert "Cannot reach Temporal at 127.0.0.1:1" in str(unreachable["message"])


def test_a_bad_environment_in_json_mode_is_a_json_error(env: dict[str, str]) -> None:
    """A setting the CLI cannot use is reported before any command runs, as JSON, exit 2."""
    error = json_error(starter(env | {"TRANSFER_ENCRYPTION": "maybe"}, "setup", "--json"))
    assert 2 == error["exit_code"]
    assert "TRANSFER_ENCRYPTION" in str(error["message"])


def test_setup_json_names_every_search_attribute(
    env: dict[str, str], dev_env: WorkflowEnvironment
) -> None:
    """`setup --json` against a dev server says which attributes it added and which were there."""
    address = dev_env.client.service_client.config.target_host
    result = starter(env | {"TEMPORAL_ADDRESS": address}, "setup", "--json")
    assert (0, "") == (result.returncode, result.stderr)
    report = json.loads(result.stdout)
    assert "default" == report["namespace"]
    assert {attribute.name for attribute in SEARCH_ATTRIBUTES} == set(
        report["registered"] + report["already_registered"]
    )
