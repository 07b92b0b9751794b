"""The starter's parser, typed arguments and JSON mode, in-process (no server, no subprocess)."""

import json
from dataclasses import fields
from importlib.metadata import version
from pathlib import Path

import pytest

from app.cli import starter_main
from app.cli.commands import Command, leaf_parsers
from app.cli.main import starter_parser
from app.cli.worker import worker_parser

COMMANDS = {
    "accounts open", "accounts list", "accounts close", "accounts freeze", "accounts unfreeze",
    "transfer", "status", "cancel", "retry", "resolve", "list", "stats", "setup", "audit",
    "demo", "operator-log", "migrate", "keys list", "keys new", "codec-server",
    "schedule create", "schedule list", "schedule describe", "schedule pause",
    "schedule unpause", "schedule trigger", "schedule delete",
}  # fmt: skip


def test_every_command_accepts_json() -> None:
    """Walking the parser finds every command, and each one takes `--json`."""
    leaves = leaf_parsers(starter_parser())
    assert COMMANDS == {leaf.prog.removeprefix("starter.py ") for leaf in leaves}
    for leaf in leaves:
        assert leaf.get_default("json") is False, leaf.prog
        assert "--json" in leaf._option_string_actions, leaf.prog


def test_every_commands_typed_arguments_come_from_its_own_options() -> None:
    """Each command's dataclass fields are destinations of its own parser: binding never fails."""
    for leaf in leaf_parsers(starter_parser()):
        command = leaf.get_default("run")
        assert isinstance(command, Command), leaf.prog
        dests = {action.dest for action in leaf._actions} | {"command"}
        assert {f.name for f in fields(command.args)} <= dests, leaf.prog


def test_parsed_arguments_become_a_frozen_dataclass() -> None:
    """`transfer` arguments arrive typed and immutable."""
    namespace = starter_parser().parse_args(
        ["transfer", "--from", "ACC-001", "--to", "ACC-002", "--amount", "5", "--json"]
    )
    args, _ = namespace.run.bind(namespace)
    assert ("ACC-001", "ACC-002", "5", True) == (
        args.source,
        args.destination,
        args.amount,
        args.json,
    )
    with pytest.raises(AttributeError):
        args.amount = "6"


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` on both command lines prints `saga-transfer X.Y.Z` and exits 0."""
    for parser in (starter_parser(), worker_parser()):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["--version"])
        assert 0 == exited.value.code
        assert f"saga-transfer {version('saga-transfer')}\n" == capsys.readouterr().out


def test_a_usage_error_in_json_mode_is_json_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing option with `--json` gives exit 2 and `{"error": ...}` on stdout, nothing else."""
    assert 2 == starter_main(["transfer", "--from", "ACC-001", "--json"])
    out, err = capsys.readouterr()
    assert "" == err
    error = json.loads(out)["error"]
    assert 2 == error["exit_code"]
    assert "the following arguments are required: --to, --amount" in error["message"]


def test_a_usage_error_in_text_mode_is_argparse_usage_and_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without `--json`, usage and `prog: error: ...` go to stderr exactly as argparse writes."""
    assert 2 == starter_main(["status"])
    out, err = capsys.readouterr()
    assert "" == out
    assert (
        "usage: starter.py status [-h] [--json] REF\n"
        "starter.py status: error: the following arguments are required: REF\n"
    ) == err


def test_keys_in_json_mode_list_ids_and_fail_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keys new --print --json` gives an entry, `keys list --json` its id; no key, a JSON error."""
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRANSFER_ENCRYPTION_KEYS", raising=False)
    assert 2 == starter_main(["keys", "list", "--json"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert 2 == error["exit_code"]
    assert "no key is configured" in error["message"]

    assert 0 == starter_main(["keys", "new", "--print", "--json"])
    new = json.loads(capsys.readouterr().out)
    assert new["entry"].startswith(f"{new['key_id']}:")
    monkeypatch.setenv("TRANSFER_ENCRYPTION_KEYS", new["entry"])
    assert 0 == starter_main(["keys", "list", "--json"])
    assert {
        "source": "TRANSFER_ENCRYPTION_KEYS",
        "current": new["key_id"],
        "ids": [new["key_id"]],
    } == json.loads(capsys.readouterr().out)
