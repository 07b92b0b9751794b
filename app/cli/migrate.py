"""`migrate [--grant ROLE]`: create or upgrade every ledger's schema, as its owner.

Workers and the other commands never change a PostgreSQL ledger's schema:
they check its version and refuse, naming this command, when it is not the
one they need (docs/ledger.md, *Migrations*). A SQLite ledger migrates
itself when opened; `migrate` on one says what it found.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from app.cli.commands import Args, CommandParser, add_command
from app.cli.output import EXIT_OK, Output
from app.config import BANK_CLEARING_OWNER, Settings
from ledger import CLEARING_OWNER, migrate


@dataclass(frozen=True, kw_only=True)
class Migrate(Args):
    """`migrate [--grant ROLE]`."""

    grant: str | None


def add_commands(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `migrate`."""
    parser = add_command(
        commands,
        "migrate",
        Migrate,
        _migrate,
        help="create or upgrade the ledger schema (every bank's); PostgreSQL: as its owner",
    )
    parser.add_argument(
        "--grant",
        metavar="ROLE",
        help="PostgreSQL: also grant ROLE what workers and commands need, and nothing more "
        "(no DDL, no change to the operator log)",
    )


async def _migrate(settings: Settings, args: Migrate) -> int:
    out = Output(args.json)
    ledgers: list[tuple[str | None, str, str]]
    if settings.multi_bank:
        ledgers = [(b, settings.bank_ledger_url(b), BANK_CLEARING_OWNER) for b in settings.banks]
    else:
        ledgers = [(None, settings.ledger_url, CLEARING_OWNER)]
    done: list[dict[str, Any]] = []
    for bank, url, owner in ledgers:
        report, grants = migrate(
            url, clearing_owner=owner, grant_to=args.grant, currency=settings.ledger_currency
        )
        where = f"Bank {bank}, ledger" if bank else "Ledger"
        # Told as each ledger is done: a later one may fail (unreachable, not its owner).
        out.note(f"{where} {report.ledger}: {report.describe()}")
        if grants:
            out.note(f"  Granted {args.grant} the runtime privileges:")
            for statement in grants:
                out.note(f"    {statement};")
        done.append(
            ({"bank": bank} if bank else {})
            | {
                "ledger": report.ledger,
                "action": report.action,
                "before": report.before,
                "after": report.after,
                "grants": grants,
            }
        )
    out.result(None, {"ledgers": done})
    return EXIT_OK
