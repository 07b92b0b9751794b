"""Command lines of `worker.py` and `starter.py`.

Every command turns bad input into a one-line error and a non-zero exit,
never a traceback: exit 1 when a transfer did not complete, 2 for bad input
or usage, 3 when Temporal or the ledger cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import Any, NoReturn

from pydantic import ValidationError
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from app import fleet, render
from app.config import ConfigError, Settings
from app.encryption import EncryptionError, generate_ring, read_key_file, write_key_file
from app.temporal import (
    ServerUnavailable,
    connect,
    metrics_runtime,
    missing_search_attributes,
    register_search_attributes,
    server_client,
)
from app.transfers import (
    TransferIdConflict,
    TransferOutcome,
    describe_request,
    start_transfer,
    validation_message,
    wait_outcome,
)
from app.worker import running_bank_workers, running_worker, wait_for_stop_signal
from ledger import (
    EXTERNAL_ACCOUNT,
    Account,
    LedgerError,
    LedgerStore,
    format_amount,
    parse_amount,
)
from ledger.audit import (
    AuditReport,
    BanksAuditReport,
    audit,
    audit_banks,
    group_across_banks,
    group_by_transfer,
)
from workflows import visibility
from workflows.banks import bank_task_queue
from workflows.contract import (
    DEFAULT_DEADLINE_SECONDS,
    FINAL_STATUSES,
    ResolveRequest,
    RetryRequest,
    TransferRequest,
    TransferState,
    TransferStatus,
)
from workflows.transfer import TransferWorkflow

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


class _Fail(Exception):
    """A command failed in a way the user should read in one line."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def exit_process(code: int) -> NoReturn:
    """Flush everything, then leave without interpreter finalization.

    The Temporal SDK's Rust core keeps threads that can call into Python
    while the interpreter finalizes; short-lived processes then die with
    "Fatal Python error: PyGILState_Release" (SIGABRT/SIGSEGV) after their
    work is done (temporalio/sdk-python#300, seen here on about one exit in
    five). All our work is finished and flushed by now, so skip finalization.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- worker ---------------------------------------------------------------------


def worker_main(argv: Sequence[str] | None = None) -> int:
    """`python worker.py [--dev]`."""
    parser = argparse.ArgumentParser(
        prog="worker.py", description="Run the money-transfer worker (workflows and activities)."
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="start the embedded Temporal dev server (state in .data/, Web UI on :8233) "
        "unless one already answers",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port (default: off)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address the metrics endpoint binds to (default 127.0.0.1; 0.0.0.0 for all)",
    )
    role = parser.add_mutually_exclusive_group()
    role.add_argument(
        "--workflows",
        action="store_true",
        help="with TRANSFER_BANKS: run only the transfer workflows (no ledger)",
    )
    role.add_argument(
        "--bank",
        metavar="NAME",
        help="with TRANSFER_BANKS: run only this bank's ledger steps, on task queue bank-NAME",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runtime, address = None, None
    if args.metrics_port:
        runtime = metrics_runtime(args.metrics_host, args.metrics_port)
        address = f"{args.metrics_host}:{args.metrics_port}"
    return _guard(
        lambda: _run_worker(
            Settings.from_env(),
            dev=args.dev,
            runtime=runtime,
            metrics_address=address,
            bank=args.bank,
            workflows_only=args.workflows,
        )
    )


async def _run_worker(
    settings: Settings,
    *,
    dev: bool,
    runtime: Runtime | None,
    metrics_address: str | None,
    bank: str | None = None,
    workflows_only: bool = False,
) -> int:
    if not settings.multi_bank and (bank or workflows_only):
        raise _Fail(
            "--bank and --workflows split the work between banks: set TRANSFER_BANKS "
            "(such as north,south) first",
            EXIT_USAGE,
        )
    served = [settings.require_bank(bank)] if bank else [] if workflows_only else settings.banks
    stores = {b: settings.open_ledger(b) for b in served}
    async with server_client(settings, dev=dev, runtime=runtime) as client:
        if bank is None:
            missing = await missing_search_attributes(client)
            if missing:
                raise _Fail(
                    f"Search attributes {', '.join(missing)} are not registered on namespace "
                    f"{client.namespace}: run `python starter.py setup` once",
                    EXIT_UNAVAILABLE,
                )
        where = f"{client.service_client.config.target_host} (namespace {client.namespace})"
        running: contextlib.AbstractAsyncContextManager[Any]
        if not settings.multi_bank:
            store = settings.open_ledger()
            running = running_worker(client, store, task_queue=settings.task_queue)
            what = f"task queue {settings.task_queue!r} at {where}, ledger {store!r}"
        else:
            running = running_bank_workers(
                client, stores, task_queue=settings.task_queue, workflows=bank is None
            )
            parts = [] if bank else [f"workflows on task queue {settings.task_queue!r}"]
            for b, store_b in stores.items():
                queue = bank_task_queue(b, settings.task_queue)
                parts.append(f"bank {b} on {queue!r} (ledger {store_b!r})")
            what = f"{'; '.join(parts)} at {where}"
        async with running, contextlib.AsyncExitStack() as codec:
            if metrics_address:
                print(f"Prometheus metrics on http://{metrics_address}/metrics", flush=True)
            ring = settings.key_ring(create=True) if dev else None
            if ring is not None:
                # The dev server's Web UI decodes through TRANSFER_CODEC_URL: serve it here.
                import errno

                from app.codec_server import codec_port, serving_codec, sign_in_url, token_source

                token = settings.codec_token_value(create=True)
                try:
                    url = await codec.enter_async_context(serving_codec(settings, ring, token))
                except OSError as err:
                    why = (
                        "is taken (another `worker.py --dev` may serve it)"
                        if err.errno == errno.EADDRINUSE
                        else f"cannot be used ({err})"
                    )
                    print(
                        f"Codec server not started: port {codec_port(settings)} {why}; the "
                        f"Web UI decodes through whatever answers at {settings.codec_url}.",
                        flush=True,
                    )
                else:
                    print(
                        f"Codec server for the Web UI on {url}: sign a browser in at "
                        f"{sign_in_url(settings, url)} with the token in "
                        f"{token_source(settings)}",
                        flush=True,
                    )
            await _serve(what, settings)
    return EXIT_OK


async def _serve(what: str, settings: Settings) -> None:
    print(
        f"Worker running: {what}. Web UI: {settings.ui_url}. Ctrl-C to stop.",
        flush=True,
    )
    sig = await wait_for_stop_signal()
    print(f"Received {sig.name}; finishing in-flight work and stopping ...", flush=True)


# -- starter --------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starter.py", description="Open accounts, start and inspect money transfers."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    accounts = commands.add_parser("accounts", help="open and list ledger accounts")
    accounts_cmd = accounts.add_subparsers(dest="accounts_command", required=True, metavar="ACTION")
    opening = accounts_cmd.add_parser("open", help="open a customer account")
    opening.add_argument("account_id", metavar="ID")
    opening.add_argument("--owner", required=True, help="the account holder's name")
    opening.add_argument("--balance", default="0", help="opening balance, e.g. 1000.00")
    opening.add_argument(
        "--bank", metavar="NAME", help="with TRANSFER_BANKS: the bank (its number must name it)"
    )
    listing = accounts_cmd.add_parser("list", help="all accounts, as one consistent snapshot")
    listing.add_argument("--bank", metavar="NAME", help="with TRANSFER_BANKS: this bank only")
    listing.add_argument("--json", action="store_true", help="print JSON")
    closing = accounts_cmd.add_parser("close", help="close an account whose balance is zero")
    closing.add_argument("account_id", metavar="ID")
    freezing = accounts_cmd.add_parser("freeze", help="stop an account taking any posting")
    freezing.add_argument("account_id", metavar="ID")
    unfreezing = accounts_cmd.add_parser("unfreeze", help="let a frozen account take postings")
    unfreezing.add_argument("account_id", metavar="ID")

    transfer = commands.add_parser("transfer", help="move money between two accounts")
    transfer.add_argument("--from", dest="source", required=True, metavar="ID")
    transfer.add_argument("--to", dest="destination", required=True, metavar="ID")
    transfer.add_argument("--amount", required=True, help="a decimal such as 150.00")
    transfer.add_argument("--id", dest="transfer_id", help="your reference (default: generated)")
    transfer.add_argument(
        "--deadline",
        type=int,
        default=DEFAULT_DEADLINE_SECONDS,
        metavar="SECONDS",
        help=f"compensate if not complete by then (default {DEFAULT_DEADLINE_SECONDS})",
    )
    transfer.add_argument("--no-wait", action="store_true", help="start it and return at once")
    transfer.add_argument(
        "--low-latency",
        action="store_true",
        help="run the steps as local activities (README: low-latency mode)",
    )
    transfer.add_argument("--json", action="store_true", help="print JSON")

    status = commands.add_parser("status", help="the saga state of a transfer")
    status.add_argument("transfer_id", metavar="REF")
    status.add_argument("--json", action="store_true", help="print JSON")

    cancel = commands.add_parser("cancel", help="cancel a transfer: its steps are undone")
    cancel.add_argument("transfer_id", metavar="REF")
    cancel.add_argument("--json", action="store_true", help="print JSON")

    retry = commands.add_parser("retry", help="run a parked transfer's pending compensations again")
    retry.add_argument("transfer_id", metavar="REF")
    retry.add_argument("--note", help="why, for the record")
    retry.add_argument("--operator", metavar="NAME", help=_OPERATOR_HELP)
    retry.add_argument("--json", action="store_true", help="print JSON")

    resolve = commands.add_parser(
        "resolve", help="settle a parked transfer by hand: move its clearing money, record why"
    )
    resolve.add_argument("transfer_id", metavar="REF")
    resolve.add_argument("--note", required=True, help="what was done by hand, and why")
    resolve.add_argument(
        "--settle-to",
        default=EXTERNAL_ACCOUNT,
        metavar="ID",
        help="where the clearing money goes (default EXTERNAL: it left the ledger by hand)",
    )
    resolve.add_argument("--operator", metavar="NAME", help=_OPERATOR_HELP)
    resolve.add_argument("--json", action="store_true", help="print JSON")

    listing = commands.add_parser("list", help="transfers, newest first, from visibility")
    listing.add_argument("--status", choices=[s.value for s in TransferStatus])
    listing.add_argument("--account", metavar="ID", help="as source or destination")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")

    stats = commands.add_parser("stats", help="counts by status, compensation rate, durations")
    stats.add_argument(
        "--window", type=float, default=24, metavar="HOURS", help="for durations (default 24)"
    )
    stats.add_argument("--json", action="store_true", help="print JSON")

    commands.add_parser(
        "setup", help="register the search attributes on the namespace (once per cluster)"
    )

    auditing = commands.add_parser("audit", help="reconcile the ledger; exit 1 on any finding")
    auditing.add_argument(
        "--no-temporal",
        action="store_true",
        help="skip checking that transfers holding money in clearing are still running",
    )
    auditing.add_argument("--json", action="store_true", help="print JSON")

    commands.add_parser("demo", help="run the self-contained demo")

    log = commands.add_parser(
        "operator-log", help="who retried or resolved what, and why (the ledger's operator log)"
    )
    log.add_argument("transfer_id", nargs="?", metavar="REF", help="one transfer only")
    log.add_argument("--json", action="store_true", help="print JSON")

    keys = commands.add_parser("keys", help="payload encryption keys (README, Security)")
    keys_cmd = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_cmd.add_parser("list", help="the key ids, newest (the one that encrypts) first")
    new_key = keys_cmd.add_parser(
        "new", help="generate a key and put it first in the key file: it encrypts from now on"
    )
    new_key.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the new `id:base64` entry instead (for keys kept in a secret store)",
    )

    codec = commands.add_parser(
        "codec-server", help="decrypt payloads for the Web UI (Temporal's remote codec API)"
    )
    codec.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    codec.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="port to listen on (default: the port of TRANSFER_CODEC_URL, 8234)",
    )
    codec.add_argument(
        "--new-token",
        action="store_true",
        help="create a random token in <data dir>/codec-token if none is configured",
    )
    return parser


def starter_main(argv: Sequence[str] | None = None) -> int:
    """`python starter.py COMMAND ...`."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    handlers: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "accounts": lambda: _accounts(settings, args),
        "transfer": lambda: _transfer(settings, args),
        "status": lambda: _status(settings, args),
        "cancel": lambda: _cancel(settings, args),
        "list": lambda: _list(args),
        "stats": lambda: _stats(args),
        "setup": _setup,
        "audit": lambda: _audit(settings, args),
        "retry": lambda: _operate(
            settings, args, RetryRequest(note=args.note, operator=_operator_identity(args))
        ),
        "resolve": lambda: _operate(
            settings,
            args,
            ResolveRequest(
                note=args.note, settle_to=args.settle_to, operator=_operator_identity(args)
            ),
        ),
        "demo": lambda: _demo(settings),
        "keys": lambda: _keys(settings, args),
        "operator-log": lambda: _operator_log(settings, args),
        "codec-server": lambda: _codec_server(settings, args),
    }
    return _guard(handlers[args.command])


def _guard(command: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a command; turn expected failures into one line on stderr and an exit code."""
    try:
        return asyncio.run(command())
    except _Fail as err:
        message, code = str(err), err.code
    except ValidationError as err:
        message, code = validation_message(err), EXIT_USAGE
    except (LedgerError, ValueError, TransferIdConflict) as err:
        retryable = isinstance(err, LedgerError) and err.retryable
        message, code = str(err), EXIT_UNAVAILABLE if retryable else EXIT_USAGE
    except EncryptionError as err:
        message, code = f"cannot decrypt: {err}", EXIT_USAGE
    except (ServerUnavailable, FileNotFoundError) as err:
        message, code = str(err), EXIT_UNAVAILABLE
    except RPCError as err:
        message, code = f"Temporal refused the call: {err.message}", EXIT_UNAVAILABLE
    except WorkflowQueryFailedError as err:
        message, code = f"The transfer's state query failed: {err}", EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        message, code = "Interrupted", 130
    print(f"error: {message}", file=sys.stderr)
    return code


def _ledger_of(settings: Settings, account_id: str) -> LedgerStore:
    """The ledger that holds an account: the one ledger, or its bank's."""
    if not settings.multi_bank:
        return settings.open_ledger()
    return settings.open_ledger(settings.bank_of(account_id))


def _account_json(account: Account, bank: str | None) -> dict[str, Any]:
    return ({"bank": bank} if bank else {}) | {
        "id": account.id,
        "owner": account.owner,
        "kind": account.kind.value,
        "balance": format_amount(account.balance),
        "status": account.status.value,
    }


async def _accounts(settings: Settings, args: argparse.Namespace) -> int:
    if args.accounts_command == "list":
        return _list_accounts(settings, args)
    store = _ledger_of(settings, args.account_id)
    if args.accounts_command == "open":
        if args.bank is not None:
            bank = settings.require_bank(args.bank)
            if settings.bank_of(args.account_id) != bank:
                raise _Fail(
                    f"Account {args.account_id} is at bank {settings.bank_of(args.account_id)} "
                    f"(its number says so), not {bank}: number it {bank.upper()}-...",
                    EXIT_USAGE,
                )
        account = store.open_account(
            args.account_id, args.owner, parse_amount(args.balance, allow_zero=True)
        )
        at = f" at bank {settings.bank_of(account.id)}" if settings.multi_bank else ""
        print(f"Opened {account.id}{at} for {account.owner} with {format_amount(account.balance)}")
    elif args.accounts_command == "close":
        account = store.close_account(args.account_id)
        print(f"Closed {account.id}")
    elif args.accounts_command == "freeze":
        account = store.freeze_account(args.account_id)
        print(f"Froze {account.id}: it takes no postings until unfrozen")
    elif args.accounts_command == "unfreeze":
        account = store.unfreeze_account(args.account_id)
        print(f"Unfroze {account.id}")
    return EXIT_OK


def _list_accounts(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.multi_bank:
        if args.bank is not None:
            settings.require_bank(args.bank)  # explains that no banks are configured
        accounts = settings.open_ledger().list_accounts()
        if args.json:
            print(json.dumps([_account_json(a, None) for a in accounts], indent=2))
        else:
            print(render.balance_table(accounts))
        return EXIT_OK
    banks = [settings.require_bank(args.bank)] if args.bank else list(settings.banks)
    listed = {b: settings.open_ledger(b).list_accounts() for b in banks}
    if args.json:
        print(
            json.dumps([_account_json(a, b) for b, accs in listed.items() for a in accs], indent=2)
        )
    else:
        print("\n\n".join(render.balance_table(accs, b) for b, accs in listed.items()))
    return EXIT_OK


async def _transfer(settings: Settings, args: argparse.Namespace) -> int:
    if args.low_latency and settings.multi_bank:
        raise _Fail(
            "--low-latency runs the steps on the workflow's own worker, which holds no "
            "bank's ledger: it cannot serve TRANSFER_BANKS",
            EXIT_USAGE,
        )
    routing = (
        {
            "source_bank": settings.bank_of(args.source),
            "destination_bank": settings.bank_of(args.destination),
        }
        if settings.multi_bank
        else {}
    )
    request = TransferRequest(
        source_account=args.source,
        destination_account=args.destination,
        amount=args.amount,
        deadline_seconds=args.deadline,
        **routing,
    )
    transfer_id = args.transfer_id or f"transfer-{uuid.uuid4().hex[:12]}"
    client = await connect()
    try:
        handle, attached = await start_transfer(
            client,
            request,
            transfer_id=transfer_id,
            task_queue=settings.task_queue,
            low_latency=args.low_latency,
        )
    except RPCError as err:
        # The server may have started it before the reply was lost: say which
        # id to look at, and that starting it again under that id is safe.
        raise _Fail(
            f"Starting transfer {transfer_id} failed: {err.message}. It may have started "
            f"anyway: `starter.py status {transfer_id}` tells; to try again, start it with "
            f"`--id {transfer_id}` (the same id attaches, it never moves money twice)",
            EXIT_UNAVAILABLE,
        ) from err
    url = settings.workflow_url(client.namespace, transfer_id)
    verb = "Attached to existing" if attached else "Started"
    if args.no_wait:
        if args.json:
            print(json.dumps({"transfer_id": transfer_id, "attached": attached, "url": url}))
        else:
            print(f"{verb} transfer {transfer_id}: {describe_request(request)}\n  Web UI: {url}")
        return EXIT_OK
    # Before waiting, whatever the output format: a caller interrupted while
    # waiting must still know which transfer is running (JSON keeps stdout
    # for the outcome, so the line goes to stderr there).
    print(
        f"{verb} transfer {transfer_id}: {describe_request(request)}\n  Web UI: {url}",
        file=sys.stderr if args.json else sys.stdout,
        flush=True,
    )
    outcome = await _wait_saying_when_parked(handle)
    if args.json:
        print(json.dumps(_outcome_json(outcome, attached, url), indent=2))
    else:
        print(render.outcome_line(outcome))
    return EXIT_OK if outcome.ok else EXIT_NOT_COMPLETED


async def _wait_saying_when_parked(handle: Any, every: float = 2.0) -> TransferOutcome:
    """The transfer's outcome; if it parks for an operator meanwhile, say so once (stderr).

    A parked transfer waits for `retry` or `resolve`, which may be days away:
    a caller left waiting in silence cannot tell that from a hang.
    """
    waiting = asyncio.ensure_future(wait_outcome(handle))
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=every)
            if done:
                break
            try:
                state = await handle.query(TransferWorkflow.state, rpc_timeout=timedelta(seconds=5))
            except (RPCError, WorkflowQueryFailedError):
                continue  # no worker just now: keep waiting for the outcome
            if state.status == TransferStatus.NEEDS_ATTENTION:
                print(
                    f"Transfer {handle.id} is parked for an operator (needs_attention): "
                    f"waiting for `starter.py retry {handle.id}` or `resolve`. Ctrl-C stops "
                    "waiting, not the transfer.",
                    file=sys.stderr,
                    flush=True,
                )
                break
        return await waiting
    finally:
        waiting.cancel()


def _outcome_json(outcome: TransferOutcome, attached: bool, url: str) -> dict[str, Any]:
    return {
        "transfer_id": outcome.transfer_id,
        "status": outcome.status,
        "attached": attached,
        "result": outcome.result.model_dump(mode="json") if outcome.result else None,
        "error": (
            {"type": outcome.error_type, "message": outcome.error_message}
            if outcome.error_type
            else None
        ),
        "url": url,
    }


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    client = await connect()
    handle = client.get_workflow_handle_for(TransferWorkflow.run, args.transfer_id)
    try:
        state = await handle.query(TransferWorkflow.state, rpc_timeout=timedelta(seconds=10))
    except WorkflowQueryFailedError as err:
        raise _Fail(f"Query failed: {err}", EXIT_UNAVAILABLE) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise _not_found(args.transfer_id, err) from err
        raise _Fail(
            f"No worker answered the state query ({err.message}); is `python worker.py` running?",
            EXIT_UNAVAILABLE,
        ) from err
    if args.json:
        print(state.model_dump_json(indent=2))
    else:
        print(render.state_text(state))
        print(f"  Web UI: {settings.workflow_url(client.namespace, args.transfer_id)}")
    return EXIT_OK


async def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    client = await connect()
    handle = client.get_workflow_handle_for(TransferWorkflow.run, args.transfer_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        raise _not_found(args.transfer_id, err) from err
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "closed"
        raise _Fail(
            f"Transfer {args.transfer_id} has already ended ({status}); cancelling changes nothing",
            EXIT_NOT_COMPLETED,
        )
    state = await handle.query(TransferWorkflow.state, rpc_timeout=timedelta(seconds=10))
    if state.status == TransferStatus.NEEDS_ATTENTION:
        raise _Fail(
            f"Transfer {args.transfer_id} is already compensating and waits for an operator "
            f"(needs_attention); use `retry` or `resolve`",
            EXIT_USAGE,
        )
    await handle.cancel()
    outcome = await _wait_saying_when_parked(handle)
    url = settings.workflow_url(client.namespace, args.transfer_id)
    if args.json:
        print(json.dumps(_outcome_json(outcome, True, url), indent=2))
    else:
        print(render.outcome_line(outcome))
    return EXIT_OK if outcome.status == "cancelled" else EXIT_NOT_COMPLETED


_OPERATOR_HELP = (
    "who acts, for the ledger's operator log and Temporal's history "
    "(default: $TRANSFER_OPERATOR, else <login>@<host>)"
)


def _operator_identity(args: argparse.Namespace) -> str:
    """Who runs `retry` or `resolve`: --operator, else $TRANSFER_OPERATOR, else login@host."""
    if args.operator is not None:
        return str(args.operator)
    if os.environ.get("TRANSFER_OPERATOR"):
        return os.environ["TRANSFER_OPERATOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment or the password database
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def _operate(
    settings: Settings, args: argparse.Namespace, request: RetryRequest | ResolveRequest
) -> int:
    """`retry` and `resolve`: an operator's update on a parked transfer.

    The operator named in the request is also the client's identity, so the
    update's events in Temporal's history name the same person as the
    ledger's operator log.
    """
    client = await connect(identity=request.operator)
    handle = client.get_workflow_handle_for(TransferWorkflow.run, args.transfer_id)
    update = asyncio.ensure_future(
        handle.execute_update(args.command, request, result_type=TransferState)
    )
    try:
        done, _ = await asyncio.wait({update}, timeout=UPDATE_QUIET_SECONDS)
        if not done:
            # An update waits until a worker runs it; with none running it
            # waits indefinitely, which looks like a hang.
            print(
                f"No worker has carried out the {args.command} after "
                f"{UPDATE_QUIET_SECONDS:.0f} s; still waiting (is `python worker.py` running?)",
                file=sys.stderr,
                flush=True,
            )
        state = await update
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise _Fail(message, EXIT_USAGE) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise await _closed_or_missing(handle, args.command) from err
        raise _not_found(args.transfer_id, err) from err
    if args.json:
        print(state.model_dump_json(indent=2))
    else:
        if state.operator_actions:
            print(f"{args.command}: {state.operator_actions[-1].outcome}")
        print(render.state_text(state))
        print(f"  Web UI: {settings.workflow_url(client.namespace, args.transfer_id)}")
    return EXIT_OK if state.status in FINAL_STATUSES else EXIT_NOT_COMPLETED


#: How long `retry`/`resolve` wait in silence before saying no worker has acted.
UPDATE_QUIET_SECONDS = 10.0


async def _closed_or_missing(handle: Any, action: str) -> _Fail:
    """Why an update found no workflow: the transfer has ended, or there is none."""
    try:
        description = await handle.describe()
    except RPCError:
        return _Fail(f"No transfer with id {handle.id}", EXIT_USAGE)
    status = description.status.name.lower() if description.status else "closed"
    final = description.typed_search_attributes.get(visibility.TRANSFER_STATUS)
    ended = f"{status}, {final}" if final else status
    return _Fail(
        f"Transfer {handle.id} has already ended ({ended}); {action} is only for a transfer "
        "in needs_attention",
        EXIT_USAGE,
    )


def _not_found(transfer_id: str, err: RPCError) -> _Fail:
    if err.status == RPCStatusCode.NOT_FOUND:
        return _Fail(f"No transfer with id {transfer_id}", EXIT_USAGE)
    return _Fail(f"Temporal refused the call: {err.message}", EXIT_UNAVAILABLE)


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    report: AuditReport | BanksAuditReport
    if settings.multi_bank:
        snapshots = {b: settings.open_ledger(b).snapshot() for b in settings.banks}
        report = audit_banks(snapshots)
        transfers = group_across_banks(snapshots)
    else:
        accounts, receipts = settings.open_ledger().snapshot()
        report = audit(accounts, receipts)
        transfers = group_by_transfer(receipts)
    checked_temporal = False
    if not args.no_temporal:
        in_flight = sorted(t for t, group in transfers.items() if group.in_clearing != 0)
        checked_temporal = await _check_running(in_flight, report.findings)
    if args.json:
        print(json.dumps(asdict(report) | {"ok": report.ok}, indent=2, default=str))
    elif isinstance(report, BanksAuditReport):
        print(render.banks_audit_text(report, checked_temporal=checked_temporal))
    else:
        print(render.audit_text(report, checked_temporal=checked_temporal))
    return EXIT_OK if report.ok else EXIT_NOT_COMPLETED


async def _check_running(transfer_ids: list[str], findings: list[str]) -> bool:
    """Each transfer holding money in clearing must still be running; False if none to check."""
    if not transfer_ids:
        return False
    client = await connect(need_key=False)
    for transfer_id in transfer_ids:
        try:
            status = (await client.get_workflow_handle(transfer_id).describe()).status
        except RPCError:
            status = None
        if status != WorkflowExecutionStatus.RUNNING:
            findings.append(
                f"{transfer_id}: holds money in clearing but its workflow is "
                f"{status.name.lower() if status else 'missing'}"
            )
    return True


async def _setup() -> int:
    client = await connect(need_key=False)
    added, existing = await register_search_attributes(client)
    if added:
        print(f"Registered search attributes on {client.namespace}: {', '.join(added)}")
    if existing:
        print(f"Already registered on {client.namespace}: {', '.join(existing)}")
    return EXIT_OK


async def _list(args: argparse.Namespace) -> int:
    client = await connect(need_key=False)
    rows = await fleet.list_transfers(
        client, status=args.status, account=args.account, limit=args.limit
    )
    if args.json:
        print(json.dumps([_row_json(r) for r in rows], indent=2))
    else:
        print(render.transfer_table(rows))
    return EXIT_OK


def _row_json(row: fleet.TransferRow) -> dict[str, Any]:
    data = asdict(row)
    for key in ("started", "closed"):
        data[key] = data[key].isoformat() if data[key] else None
    data["amount"] = f"{row.amount:.2f}" if row.amount is not None else None
    return data


async def _stats(args: argparse.Namespace) -> int:
    client = await connect(need_key=False)
    stats = await fleet.transfer_stats(client, window=timedelta(hours=args.window))
    if args.json:
        print(json.dumps(stats.as_json(), indent=2))
    else:
        print(render.stats_text(stats))
    return EXIT_OK


async def _codec_server(settings: Settings, args: argparse.Namespace) -> int:
    """`codec-server`: decrypt payloads for the Web UI until SIGINT or SIGTERM."""
    from app.codec_server import codec_port, serving_codec, sign_in_url, token_source

    ring = settings.key_ring()
    if ring is None:
        raise _Fail(
            "TRANSFER_ENCRYPTION=off: payloads go to Temporal in plain text, so a codec "
            "server has nothing to decrypt",
            EXIT_USAGE,
        )
    try:
        token = settings.codec_token_value()
        created = False
    except ConfigError:
        if not args.new_token:
            raise
        token = settings.codec_token_value(create=True)
        created = True
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    port = codec_port(settings) if args.port is None else args.port
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(
                serving_codec(settings, ring, token, host=args.host, port=port)
            )
        except OSError as err:
            raise _Fail(
                f"Cannot listen on {args.host}:{port}: {err.strerror or err}", EXIT_UNAVAILABLE
            ) from err
        if created:
            print(f"Created a new codec token in {token_source(settings)} (owner-only)")
        elif args.new_token:
            print(f"Kept the codec token already in {token_source(settings)}")
        print(f"Codec server listening on {url} for the Web UI at {settings.ui_url}")
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"warning: plain HTTP on {args.host}: the token, the sign-in cookie and "
                "decrypted payloads cross the network in the clear; serve it behind a "
                "TLS-terminating proxy under a host name of its own (README, Security)",
                file=sys.stderr,
            )
        if not url.endswith(f":{codec_port(settings)}"):
            print(
                f"  The Web UI calls TRANSFER_CODEC_URL ({settings.codec_url}), not this "
                "port: point it here (temporal server start-dev --ui-codec-endpoint)."
            )
        login = sign_in_url(settings, url)
        print(
            f"  Sign a browser in at {login} with the token in {token_source(settings)}; then "
            'in the Web UI\'s Codec Server settings choose "Use my browser setting", enter '
            f'{login.removesuffix("/login")} and turn on "Include cross-origin credentials".\n'
            "  Other clients send `Authorization: Bearer <token>`. Ctrl-C to stop.",
            flush=True,
        )
        sig = await wait_for_stop_signal()
        print(f"Received {sig.name}; stopping the codec server", flush=True)
    return EXIT_OK


async def _operator_log(settings: Settings, args: argparse.Namespace) -> int:
    """`operator-log [REF]`: the ledger's append-only record of retry and resolve, per bank."""
    banks: list[str | None] = list(settings.banks) if settings.multi_bank else [None]
    rows = [
        (bank, record)
        for bank in banks
        for record in settings.open_ledger(bank).operator_actions(args.transfer_id)
    ]
    rows.sort(key=lambda row: row[1].recorded_at)
    if args.json:
        print(
            json.dumps(
                [
                    ({"bank": bank} if bank else {})
                    | {
                        "key": r.key,
                        "transfer_id": r.transfer_id,
                        "action": r.action.value,
                        "operator": r.operator,
                        "note": r.note,
                        "recorded_at": r.recorded_at.isoformat(),
                    }
                    for bank, r in rows
                ],
                indent=2,
            )
        )
        return EXIT_OK
    if not rows:
        print(
            "No operator actions recorded"
            + (f" for {args.transfer_id}" if args.transfer_id else "")
        )
    for bank, r in rows:
        where = f" at {bank}" if bank else ""
        note = f": {r.note}" if r.note else ""
        when = f"{r.recorded_at:%Y-%m-%d %H:%M:%S}"
        print(f"{when} {r.transfer_id} {r.action.value}{where} by {r.operator}{note}")
    return EXIT_OK


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    """`keys list` and `keys new`: never prints key material unless asked to (--print)."""
    if not settings.encryption:
        raise _Fail("TRANSFER_ENCRYPTION=off: payloads are not encrypted", EXIT_USAGE)
    source = (
        "TRANSFER_ENCRYPTION_KEYS" if settings.encryption_keys else f"key file {settings.key_file}"
    )
    if args.keys_command == "list":
        ring = settings.key_ring()
        assert ring is not None
        print(f"Keys from {source}, newest first:")
        for key_id in ring.ids:
            print(f"  {key_id}{'  (encrypts new payloads)' if key_id == ring.current else ''}")
        return EXIT_OK
    if args.print_only:
        ring = generate_ring()
        print(ring.env_value())
        print(
            f"Put it first in TRANSFER_ENCRYPTION_KEYS (keep the old keys after it), then "
            f"restart every worker and client; new payloads use {ring.current}.",
            file=sys.stderr,
        )
        return EXIT_OK
    if settings.encryption_keys:
        raise _Fail(
            "The keys come from TRANSFER_ENCRYPTION_KEYS, not a file: use `keys new --print` "
            "and put the entry first in that variable",
            EXIT_USAGE,
        )
    old = read_key_file(settings.key_file) if settings.key_file.exists() else None
    ring = old.with_new_key() if old else generate_ring()
    write_key_file(settings.key_file, ring)
    print(f"Key {ring.current} added to {settings.key_file}; it encrypts new payloads.")
    if old:
        print(
            f"Older keys ({', '.join(old.ids)}) still decrypt what they encrypted. Restart every "
            "worker, client and codec server to pick the new key up."
        )
    return EXIT_OK


async def _demo(settings: Settings) -> int:
    from app.demo import run_demo

    return await run_demo(settings)
