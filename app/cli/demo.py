"""`demo`: the self-contained demo (app/demo.py tells its story)."""

from __future__ import annotations

import argparse

from app.cli.commands import Args, CommandParser, add_command
from app.cli.output import EXIT_OK, Output
from app.config import Settings


def add_commands(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `demo`."""
    add_command(commands, "demo", Args, _demo, help="run the self-contained demo")


async def _demo(settings: Settings, args: Args) -> int:
    """Run the demo; with `--json` its story goes to stderr and stdout says how it went."""
    from app.demo import run_demo

    out = Output(args.json)
    with out.narrating():
        code = await run_demo(settings)
    out.result(None, {"ok": code == EXIT_OK, "exit_code": code})
    return code
