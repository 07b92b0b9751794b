"""The codec server's tokens: one per person, from the environment or a file, checked at start.

``TRANSFER_CODEC_TOKENS=alice:token1,bob:token2`` or a tokens file
(``TRANSFER_CODEC_TOKENS_FILE``: one ``name:token`` a line, ``#`` comments,
owner-only like the key file) names who holds each token; the codec
server signs a browser in as that person and logs each decode under the
name. The single shared ``TRANSFER_CODEC_TOKEN`` (or ``.data/codec-token``)
still works: its holder is `SHARED_PERSON`. Removing a person's entry and
restarting the codec server revokes their token and their sessions.

No message here ever quotes a token, nor an entry that did not parse (its
text may be a token written where the name belongs): entries are named by
position, and people by name once the name is valid.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.private_files import UnsafeFile, read_private_file

#: Who holds the single shared token (``TRANSFER_CODEC_TOKEN`` or the token file).
SHARED_PERSON = "default"
#: The shortest token accepted: a guessable token would let anyone who
#: reaches the codec server decrypt transfers (it has no rate limit of its own).
MIN_TOKEN_LENGTH = 16
#: A token of few distinct characters (``aaaaaaaaaaaaaaaa``) is long but guessable.
MIN_DISTINCT_CHARACTERS = 8
#: A person's name: short, printable, nothing that splits an entry or a log field.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"


class InvalidCodecTokens(ValueError):
    """The configured tokens are malformed, weak or ambiguous; the message never shows one."""


def strong_token(token: str, source: str) -> str:
    """`token` if it is long and varied enough, else InvalidCodecTokens naming `source`."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise InvalidCodecTokens(
            f"The codec token in {source} is {len(token)} characters; use a random one of at "
            f"least {MIN_TOKEN_LENGTH} (`python starter.py codec-server --new-token` makes one "
            "when no token is set; `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    if len(set(token)) < MIN_DISTINCT_CHARACTERS:
        raise InvalidCodecTokens(
            f"The codec token in {source} has {len(set(token))} distinct characters; a random "
            f"one has many more: use at least {MIN_DISTINCT_CHARACTERS}"
        )
    return token


def parse_tokens(entries: list[tuple[str, str]], source: str) -> dict[str, str]:
    """Tokens by person from ``name:token`` entries, each labelled for messages.

    Args:
        entries: (label, text) pairs: ``entry 2``, ``line 4``.
        source: Where they come from, for messages.

    Raises:
        InvalidCodecTokens: An entry is not ``name:token``, a name is
            malformed or given twice, a token is weak, or two people share
            one (the server could not tell who decrypted).
    """
    tokens: dict[str, str] = {}
    for label, text in entries:
        name, colon, token = (part.strip() for part in text.partition(":"))
        if not colon or not name or not token:
            raise InvalidCodecTokens(f"{label} of {source} is not name:token")
        if not _NAME.fullmatch(name):
            raise InvalidCodecTokens(f"{label} of {source}: a name is {NAME_RULE}")
        if name in tokens:
            raise InvalidCodecTokens(f"{source} names {name!r} twice ({label} is the second)")
        strong_token(token, f"{source} for {name!r}")
        holder = next((other for other, known in tokens.items() if known == token), None)
        if holder is not None:
            raise InvalidCodecTokens(
                f"{source} gives {name!r} the same token as {holder!r}: give each person a "
                "token of their own, so the access log can say who decrypted"
            )
        tokens[name] = token
    if not tokens:
        raise InvalidCodecTokens(f"{source} holds no name:token entry")
    return tokens


def named_tokens(*, tokens: str, tokens_file: str, shared: str) -> dict[str, str] | None:
    """The tokens by person from TRANSFER_CODEC_TOKENS or its file; None if neither is set.

    Args:
        tokens: TRANSFER_CODEC_TOKENS (comma-separated ``name:token``).
        tokens_file: TRANSFER_CODEC_TOKENS_FILE.
        shared: TRANSFER_CODEC_TOKEN, only to refuse it beside named tokens.

    Raises:
        InvalidCodecTokens: More than one way of naming tokens is set, the
            file is not owner-only or cannot be read, or an entry is wrong.
    """
    chosen = [
        name
        for name, value in (
            ("TRANSFER_CODEC_TOKEN", shared),
            ("TRANSFER_CODEC_TOKENS", tokens),
            ("TRANSFER_CODEC_TOKENS_FILE", tokens_file),
        )
        if value
    ]
    if len(chosen) > 1:
        raise InvalidCodecTokens(f"{' and '.join(chosen)} are both set: set one of them")
    if tokens:
        entries = [(f"entry {n}", text) for n, text in enumerate(tokens.split(","), 1)]
        return parse_tokens(entries, "TRANSFER_CODEC_TOKENS")
    if not tokens_file:
        return None
    source = f"codec tokens file {tokens_file}"
    try:
        text = read_private_file(Path(tokens_file), "codec tokens file")
    except UnsafeFile as err:
        raise InvalidCodecTokens(str(err)) from None
    except OSError as err:
        raise InvalidCodecTokens(f"cannot read {source}: {err.strerror}") from None
    lines = [
        (f"line {n}", line)
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return parse_tokens(lines, source)
