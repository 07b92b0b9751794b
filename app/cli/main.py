"""`starter.py` (`saga-transfer`): the parser assembled from the command groups, and its run."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from app.cli import accounts, demo, fleet, migrate, operators, schedules, security, transfers
from app.cli.commands import (
    Command,
    CommandParser,
    UsageError,
    add_json_option,
    add_version,
    start_settings,
)
from app.cli.output import EXIT_USAGE, Output, exit_process, guard
from app.config import ConfigError
from app.private_files import owner_only_umask
from app.tracing import start_tracing


def starter_parser(prog: str = "starter.py") -> CommandParser:
    """Every starter command, in the order `--help` lists them."""
    parser = CommandParser(
        prog=prog, description="Open accounts, start and inspect money transfers."
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    accounts.add_commands(commands)
    transfers.add_commands(commands)
    operators.add_commands(commands)
    fleet.add_commands(commands)
    schedules.add_commands(commands)
    demo.add_commands(commands)
    operators.add_log_command(commands)
    migrate.add_commands(commands)
    security.add_commands(commands)
    add_json_option(parser)
    return parser


def starter_main(argv: Sequence[str] | None = None, *, prog: str = "starter.py") -> int:
    """`python starter.py COMMAND ...`; returns the exit code.

    Every file and directory it creates is owner-only (`starter.py`,
    `saga-transfer` and `make demo` all come through here), and a data
    directory others can enter is closed first.

    A usage error is JSON too when `--json` is among the arguments: the
    parser fails before it could say whether the command takes it.
    """
    with owner_only_umask():
        return _starter_main(argv, prog)


def _starter_main(argv: Sequence[str] | None, prog: str) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        namespace = starter_parser(prog).parse_args(arguments)
    except UsageError as err:
        return Output("--json" in arguments).usage_error(err.usage, err.message)
    command: Command[Any] = namespace.run
    args, handler = command.bind(namespace)
    out = Output(args.json)
    try:
        settings = start_settings()
        start_tracing("starter")
    except ConfigError as err:
        return out.error(str(err), EXIT_USAGE)
    return guard(lambda: handler(settings, args), out)


def run() -> NoReturn:
    """The `saga-transfer` console command."""
    exit_process(starter_main(prog="saga-transfer"))
