"""How a command is declared: its parser, its typed arguments and its handler, in one call.

Each command group (accounts, transfers, ...) registers its commands with
`add_command`, next to their handlers. The parsed `argparse.Namespace` is
turned into the command's frozen dataclass right after parsing, so
handlers take typed arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from app.cli.output import warn
from app.config import Settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")
A = TypeVar("A", bound="Args")


class UsageError(Exception):
    """argparse found bad usage; the caller reports it as text or JSON."""

    def __init__(self, usage: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.message = message


class CommandParser(argparse.ArgumentParser):
    """An argument parser that raises `UsageError` instead of printing and exiting.

    Its subparsers are of the same class, so one handler reports bad usage
    for every command, in text exactly as argparse prints it, or as JSON.
    """

    def error(self, message: str) -> NoReturn:
        """Raise the usage line and `prog: error: message` for the caller to report."""
        raise UsageError(self.format_usage(), f"{self.prog}: error: {message}")


def version_text() -> str:
    """`saga-transfer X.Y.Z`, from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"saga-transfer {version('saga-transfer')}"
    except PackageNotFoundError:
        return "saga-transfer (not installed)"


class _VersionAction(argparse.Action):
    """argparse's `version` action, reading the package metadata only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **_: Any) -> None:
        super().__init__(
            option_strings,
            dest=dest,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show program's version number and exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        print(version_text(), flush=True)
        parser.exit()


def add_version(parser: argparse.ArgumentParser) -> None:
    """Give `parser` a `--version` option."""
    parser.add_argument("--version", action=_VersionAction)


@dataclass(frozen=True, kw_only=True)
class Args:
    """What every starter command takes.

    Attributes:
        json: Print JSON instead of text (errors too).
    """

    json: bool = False


def flag_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse` as an argparse type: its ValueError's message, under the flag's name."""

    def parsed(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parsed


def typed(cls: type[D], namespace: argparse.Namespace) -> D:
    """The dataclass `cls` filled from the parsed namespace's attributes of the same names."""
    return cls(**{f.name: getattr(namespace, f.name) for f in fields(cls)})


#: A command's coroutine: settings and its typed arguments in, the exit code out.
Handler = Callable[[Settings, A], Coroutine[Any, Any, int]]


@dataclass(frozen=True)
class Command(Generic[A]):
    """A command's typed arguments and the coroutine that carries it out."""

    args: type[A]
    handler: Handler[A]

    def bind(self, namespace: argparse.Namespace) -> tuple[A, Handler[A]]:
        """The typed arguments from `namespace`, and the handler that takes them."""
        return typed(self.args, namespace), self.handler


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under `parser` that runs a command (not a group such as `accounts`)."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found += leaf_parsers(child) if child._subparsers else [child]
    return found


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """The one declaration of `--json`: every command under `parser` takes it.

    It is added after each command's own options, so help and usage list it last.
    """
    for leaf in leaf_parsers(parser):
        leaf.add_argument("--json", action="store_true", help="print JSON")


def add_command(
    commands: argparse._SubParsersAction[CommandParser],
    name: str,
    args: type[A],
    handler: Handler[A],
    **options: Any,
) -> CommandParser:
    """Add command `name` whose handler takes `args`; returns its parser.

    Args:
        commands: The subparsers to add it to.
        name: The command's name.
        args: The frozen dataclass its parsed arguments become.
        handler: The coroutine that runs it.
        **options: For `add_parser` (help, description, ...).
    """
    parser = commands.add_parser(name, **options)
    parser.set_defaults(run=Command(args, handler))
    return parser


def start_settings(say: Callable[[str], None] = warn) -> Settings:
    """The settings every entry point starts from, its data directory closed to others.

    Says so, once, when a data directory open to others was closed: with
    `say`, on stderr by default (the worker logs it).

    Raises:
        ConfigError: A setting is wrong, or the data directory is open to
            others and not this user's to close.
    """
    settings = Settings.from_env()
    closed = settings.secure_data_dir()
    if closed:
        say(closed)
    return settings
