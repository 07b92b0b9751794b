"""`accounts open|list|close|freeze|unfreeze`: the ledger's customer accounts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app import render
from app.cli.commands import Args, CommandParser, add_command
from app.cli.output import EXIT_OK, EXIT_USAGE, CommandError, Output, warn
from app.config import Settings
from ledger import (
    Account,
    AccountNotFound,
    CurrencyMismatch,
    LedgerStore,
    LedgerUnavailable,
    format_amount,
    parse_amount,
    validate_currency,
)

if TYPE_CHECKING:  # pydantic is loaded by the handlers, not by `--help`
    from workflows.contract import TransferRequest


@dataclass(frozen=True, kw_only=True)
class OpenAccount(Args):
    """`accounts open ID --owner NAME [--balance AMOUNT] [--currency CODE] [--bank NAME]`."""

    account_id: str
    owner: str
    balance: str
    currency: str | None
    bank: str | None


@dataclass(frozen=True, kw_only=True)
class ListAccounts(Args):
    """`accounts list [--bank NAME]`."""

    bank: str | None


@dataclass(frozen=True, kw_only=True)
class AccountAction(Args):
    """`accounts close|freeze|unfreeze ID`."""

    account_id: str


def add_commands(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `accounts` and its actions."""
    accounts = commands.add_parser("accounts", help="open and list ledger accounts")
    actions = accounts.add_subparsers(dest="accounts_command", required=True, metavar="ACTION")
    opening = add_command(actions, "open", OpenAccount, _open, help="open a customer account")
    opening.add_argument("account_id", metavar="ID")
    opening.add_argument("--owner", required=True, help="the account holder's name")
    opening.add_argument("--balance", default="0", help="opening balance, e.g. 1000.00")
    opening.add_argument(
        "--currency",
        metavar="CODE",
        help="its ISO 4217 currency, fixed for good (default LEDGER_CURRENCY, else USD)",
    )
    opening.add_argument(
        "--bank", metavar="NAME", help="with TRANSFER_BANKS: the bank (its number must name it)"
    )
    listing = add_command(
        actions, "list", ListAccounts, _list, help="all accounts, as one consistent snapshot"
    )
    listing.add_argument("--bank", metavar="NAME", help="with TRANSFER_BANKS: this bank only")
    for name, handler, help_text in (
        ("close", _close, "close an account whose balance is zero"),
        ("freeze", _freeze, "stop an account taking any posting"),
        ("unfreeze", _unfreeze, "let a frozen account take postings"),
    ):
        action = add_command(actions, name, AccountAction, handler, help=help_text)
        action.add_argument("account_id", metavar="ID")


def account_json(account: Account, bank: str | None) -> dict[str, Any]:
    """An account as JSON: the same shape in every command that prints one."""
    return ({"bank": bank} if bank else {}) | {
        "id": account.id,
        "owner": account.owner,
        "kind": account.kind.value,
        "currency": account.currency,
        "balance": format_amount(account.balance, account.currency),
        "status": account.status.value,
    }


def _ledger_of(settings: Settings, account_id: str) -> LedgerStore:
    """The ledger that holds an account: the one ledger, or its bank's."""
    if not settings.multi_bank:
        return settings.open_ledger()
    return settings.open_ledger(settings.bank_of(account_id))


def require_accounts(settings: Settings, *account_ids: str) -> list[Account | None]:
    """Refuse accounts that their ledger (their bank's, with several banks) does not know.

    A ledger this process cannot reach is not a refusal: the transfer's own
    steps check the accounts too, so it says so and lets the caller go on.

    Returns:
        Each account as read, or None where its ledger could not be reached.

    Raises:
        CommandError: An account is not found (exit 2), with a hint when only
            its case differs from one that is.
    """
    found: list[Account | None] = []
    for account_id in account_ids:
        store = _ledger_of(settings, account_id)
        try:
            found.append(store.get_account(account_id))
        except AccountNotFound as err:
            raise CommandError(_not_found(store, err), EXIT_USAGE) from err
        except LedgerUnavailable as err:
            warn(f"Could not check account {account_id} at its ledger ({err}); going on")
            found.append(None)
        finally:
            store.close()
    return found


def transfer_currency(
    settings: Settings, source: str, destination: str, asked: str | None
) -> str | None:
    """The currency of a transfer between two accounts, checked before anything moves.

    Both accounts must exist (`require_accounts`) and be in one currency,
    and in `asked` (``--currency``) if given: the ledger never converts.

    Returns:
        The currency, for the request to carry; `asked` (or None) when an
        account's ledger could not be reached (the steps check it then).

    Raises:
        CommandError: Not found, an unknown code, or a mismatch (exit 2),
            naming both currencies.
    """
    if asked is not None:
        asked = validate_currency(asked)
    accounts = require_accounts(settings, source, destination)
    if accounts[0] is not None and accounts[1] is not None:
        paying, paid = accounts[0], accounts[1]
        if paying.currency != paid.currency:
            mismatch = CurrencyMismatch.between(source, paying.currency, destination, paid.currency)
            raise CommandError(f"{mismatch} [CurrencyMismatch]", EXIT_USAGE)
    for account in accounts:
        if account is not None and asked is not None and account.currency != asked:
            mismatch = CurrencyMismatch.asked(account.id, account.currency, asked)
            raise CommandError(f"{mismatch} [CurrencyMismatch]", EXIT_USAGE)
        if account is not None:
            asked = account.currency
    return asked


def routing(settings: Settings, source: str, destination: str) -> dict[str, str]:
    """A transfer request's `source_bank` and `destination_bank`; none with one ledger."""
    if not settings.multi_bank:
        return {}
    return {
        "source_bank": settings.bank_of(source),
        "destination_bank": settings.bank_of(destination),
    }


def in_its_currency(
    settings: Settings, request: TransferRequest, amount: str, asked: str | None
) -> TransferRequest:
    """`request` carrying its accounts' currency, `amount` read in that currency's places.

    Checked before anything moves (`transfer_currency`: 15.5 JPY is refused);
    `request` as it is when an account's ledger could not be reached.
    """
    currency = transfer_currency(
        settings, request.source_account, request.destination_account, asked
    )
    if currency is None:
        return request
    in_places = parse_amount(amount, currency=currency)
    return request.model_copy(update={"currency": currency, "amount": in_places})


def _not_found(store: LedgerStore, err: AccountNotFound) -> str:
    """`Account not found: X`, and the account meant, when only the case differs."""
    upper = err.account_id.upper()
    if upper == err.account_id:
        return str(err)
    try:
        store.get_account(upper)
    except AccountNotFound:
        return str(err)
    return f"{err} (account numbers are case-sensitive: did you mean {upper}?)"


def _bank_name(settings: Settings, account_id: str) -> str | None:
    return settings.bank_of(account_id) if settings.multi_bank else None


async def _open(settings: Settings, args: OpenAccount) -> int:
    store = _ledger_of(settings, args.account_id)
    if args.bank is not None:
        bank = settings.require_bank(args.bank)
        if settings.bank_of(args.account_id) != bank:
            raise CommandError(
                f"Account {args.account_id} is at bank {settings.bank_of(args.account_id)} "
                f"(its number says so), not {bank}: number it {bank.upper()}-...",
                EXIT_USAGE,
            )
    currency = validate_currency(args.currency or settings.ledger_currency)
    account = store.open_account(
        args.account_id,
        args.owner,
        parse_amount(args.balance, allow_zero=True, currency=currency),
        currency=currency,
    )
    bank_name = _bank_name(settings, account.id)
    at = f" at bank {bank_name}" if bank_name else ""
    balance = format_amount(account.balance, account.currency)
    Output(args.json).result(
        f"Opened {account.id}{at} for {account.owner} with {balance} {account.currency}",
        account_json(account, bank_name),
    )
    return EXIT_OK


async def _close(settings: Settings, args: AccountAction) -> int:
    account = _ledger_of(settings, args.account_id).close_account(args.account_id)
    Output(args.json).result(
        f"Closed {account.id}", account_json(account, _bank_name(settings, account.id))
    )
    return EXIT_OK


async def _freeze(settings: Settings, args: AccountAction) -> int:
    account = _ledger_of(settings, args.account_id).freeze_account(args.account_id)
    Output(args.json).result(
        f"Froze {account.id}: it takes no postings until unfrozen",
        account_json(account, _bank_name(settings, account.id)),
    )
    return EXIT_OK


async def _unfreeze(settings: Settings, args: AccountAction) -> int:
    account = _ledger_of(settings, args.account_id).unfreeze_account(args.account_id)
    Output(args.json).result(
        f"Unfroze {account.id}", account_json(account, _bank_name(settings, account.id))
    )
    return EXIT_OK


async def _list(settings: Settings, args: ListAccounts) -> int:
    out = Output(args.json)
    if not settings.multi_bank:
        if args.bank is not None:
            settings.require_bank(args.bank)  # explains that no banks are configured
        accounts = settings.open_ledger().list_accounts()
        out.result(render.balance_table(accounts), [account_json(a, None) for a in accounts])
        return EXIT_OK
    banks = [settings.require_bank(args.bank)] if args.bank else list(settings.banks)
    listed = {b: settings.open_ledger(b).list_accounts() for b in banks}
    out.result(
        "\n\n".join(render.balance_table(accs, b) for b, accs in listed.items()),
        [account_json(a, b) for b, accs in listed.items() for a in accs],
    )
    return EXIT_OK
