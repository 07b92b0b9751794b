"""`keys list|new` and `codec-server`: payload encryption keys, and decryption for the Web UI."""

from __future__ import annotations

import argparse
import contextlib
import logging
from dataclasses import dataclass

from app.cli.commands import Args, CommandParser, add_command
from app.cli.output import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError, Output, warn
from app.codec_tokens import SHARED_PERSON
from app.config import ConfigError, Settings
from app.keys import generate_ring, read_key_file, write_key_file


@dataclass(frozen=True, kw_only=True)
class NewKey(Args):
    """`keys new [--print]`."""

    print_only: bool


@dataclass(frozen=True, kw_only=True)
class CodecServer(Args):
    """`codec-server [--host HOST] [--port PORT] [--new-token]`."""

    host: str
    port: int | None
    new_token: bool


def add_commands(commands: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `keys` and its actions, and `codec-server`."""
    keys = commands.add_parser("keys", help="payload encryption keys (docs/security.md)")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    add_command(
        actions, "list", Args, _list_keys, help="the key ids, newest (the one that encrypts) first"
    )
    new_key = add_command(
        actions,
        "new",
        NewKey,
        _new_key,
        help="generate a key and put it first in the key file: it encrypts from now on",
    )
    new_key.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the new `id:base64` entry instead (for keys kept in a secret store)",
    )
    codec = add_command(
        commands,
        "codec-server",
        CodecServer,
        _codec_server,
        help="decrypt payloads for the Web UI (Temporal's remote codec API)",
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


def _key_source(settings: Settings) -> str:
    """Where the keys come from; refuses when encryption is off."""
    if not settings.encryption:
        raise CommandError("TRANSFER_ENCRYPTION=off: payloads are not encrypted", EXIT_USAGE)
    if settings.encryption_keys:
        return "TRANSFER_ENCRYPTION_KEYS"
    return f"key file {settings.key_file}"


async def _list_keys(settings: Settings, args: Args) -> int:
    """`keys list`: key ids only, never key material."""
    source = _key_source(settings)
    ring = settings.key_ring()
    assert ring is not None
    lines = [f"Keys from {source}, newest first:"] + [
        f"  {key_id}{'  (encrypts new payloads)' if key_id == ring.current else ''}"
        for key_id in ring.ids
    ]
    Output(args.json).result(
        "\n".join(lines), {"source": source, "current": ring.current, "ids": ring.ids}
    )
    return EXIT_OK


async def _new_key(settings: Settings, args: NewKey) -> int:
    """`keys new`: never prints key material unless asked to (--print)."""
    _key_source(settings)
    out = Output(args.json)
    if args.print_only:
        ring = generate_ring()
        out.result(ring.env_value(), {"key_id": ring.current, "entry": ring.env_value()})
        warn(
            f"Put it first in TRANSFER_ENCRYPTION_KEYS (keep the old keys after it), then "
            f"restart every worker and client; new payloads use {ring.current}."
        )
        return EXIT_OK
    if settings.encryption_keys:
        raise CommandError(
            "The keys come from TRANSFER_ENCRYPTION_KEYS, not a file: use `keys new --print` "
            "and put the entry first in that variable",
            EXIT_USAGE,
        )
    old = read_key_file(settings.key_file) if settings.key_file.exists() else None
    ring = old.with_new_key() if old else generate_ring()
    write_key_file(settings.key_file, ring)
    lines = [f"Key {ring.current} added to {settings.key_file}; it encrypts new payloads."]
    if old:
        lines.append(
            f"Older keys ({', '.join(old.ids)}) still decrypt what they encrypted. Restart every "
            "worker, client and codec server to pick the new key up."
        )
    out.result(
        "\n".join(lines),
        {
            "key_id": ring.current,
            "key_file": str(settings.key_file),
            "older": old.ids if old else [],
        },
    )
    return EXIT_OK


async def _codec_server(settings: Settings, args: CodecServer) -> int:
    """`codec-server`: decrypt payloads for the Web UI until SIGINT or SIGTERM."""
    from app.codec_server import codec_port, serving_codec, sign_in_url, token_source
    from app.worker import wait_for_stop_signal

    out = Output(args.json)
    ring = settings.key_ring()
    if ring is None:
        raise CommandError(
            "TRANSFER_ENCRYPTION=off: payloads go to Temporal in plain text, so a codec "
            "server has nothing to decrypt",
            EXIT_USAGE,
        )
    try:
        tokens = settings.codec_tokens()
        created = False
    except ConfigError:
        if not args.new_token or settings.codec_tokens_text or settings.codec_tokens_file:
            raise
        tokens = settings.codec_tokens(create=True)
        created = True
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    port = codec_port(settings) if args.port is None else args.port
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(
                serving_codec(settings, ring, tokens, host=args.host, port=port)
            )
        except OSError as err:
            raise CommandError(
                f"Cannot listen on {args.host}:{port}: {err.strerror or err}", EXIT_UNAVAILABLE
            ) from err
        if created:
            out.note(f"Created a new codec token in {token_source(settings)} (owner-only)")
        elif args.new_token:
            out.note(f"Kept the codec tokens already in {token_source(settings)}")
        lines = [f"Codec server listening on {url} for the Web UI at {settings.ui_url}"]
        if set(tokens) != {SHARED_PERSON}:
            lines.append(
                f"  Tokens of {', '.join(sorted(tokens))} (from {token_source(settings)}); "
                "each decode is logged under its person's name."
            )
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            warn(
                f"warning: plain HTTP on {args.host}: the token, the sign-in cookie and "
                "decrypted payloads cross the network in the clear; serve it behind a "
                "TLS-terminating proxy under a host name of its own (docs/security.md)"
            )
        if not url.endswith(f":{codec_port(settings)}"):
            lines.append(
                f"  The Web UI calls TRANSFER_CODEC_URL ({settings.codec_url}), not this "
                "port: point it here (temporal server start-dev --ui-codec-endpoint)."
            )
        login = sign_in_url(settings, url)
        lines.append(
            f"  Sign a browser in at {login} with the token in {token_source(settings)}; then "
            'in the Web UI\'s Codec Server settings choose "Use my browser setting", enter '
            f'{login.removesuffix("/login")} and turn on "Include cross-origin credentials".\n'
            "  Other clients send `Authorization: Bearer <token>`. Ctrl-C to stop."
        )
        out.result(
            "\n".join(lines),
            {
                "url": url,
                "ui_url": settings.ui_url,
                "sign_in_url": login,
                "token_source": str(token_source(settings)),
                "token_created": created,
                "people": sorted(tokens),
            },
            indent=None,
        )
        sig = await wait_for_stop_signal()
        out.note(f"Received {sig.name}; stopping the codec server")
    return EXIT_OK
