"""Payload encryption keys: the key ring and key files (no Temporal, no cipher code).

Keys live in a key ring: several named 256-bit keys, newest first. New
payloads use the newest; any key in the ring decrypts, so histories written
before a rotation stay readable as long as their key stays in the ring.
`app.encryption` seals payloads with them. Kept apart from it so that the
commands that only read settings (and every `--help`) start without loading
the Temporal SDK.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from app.private_files import UnsafeFile, read_private_file, write_private_file

# Key ids come from a payload's metadata, which may be megabytes: quoted cuts them short.
from ledger.shown import quoted

KEY_BYTES = 32
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class EncryptionError(Exception):
    """A payload cannot be encrypted or decrypted; the message names the key id."""


class UnknownKey(EncryptionError):
    """The payload was encrypted with a key this process does not hold."""


class DecryptionFailed(EncryptionError):
    """The key of that id does not open the payload: wrong key material, or altered data."""


class InvalidKeyRing(ValueError):
    """A key ring's text is malformed (the message says where, never the key)."""


@dataclasses.dataclass(frozen=True)
class KeyRing:
    """Named 256-bit keys, newest first: the first encrypts, any decrypts."""

    keys: tuple[tuple[str, bytes], ...] = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        # The ids only: a ring's repr reaches tracebacks, test output and logs.
        return f"KeyRing(ids={list(self.ids)!r})"

    def __post_init__(self) -> None:
        if not self.keys:
            raise InvalidKeyRing("a key ring needs at least one key")
        seen: set[str] = set()
        for key_id, key in self.keys:
            if not KEY_ID_PATTERN.match(key_id):
                raise InvalidKeyRing(
                    f"key id {key_id!r}: use 1-64 letters, digits, '.', '_' or '-'"
                )
            if key_id in seen:
                raise InvalidKeyRing(f"key id {key_id!r} appears twice")
            if len(key) != KEY_BYTES:
                raise InvalidKeyRing(
                    f"key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
            seen.add(key_id)

    @property
    def current(self) -> str:
        """The id of the key new payloads are encrypted with."""
        return self.keys[0][0]

    @property
    def ids(self) -> list[str]:
        """Every key id, newest first."""
        return [key_id for key_id, _ in self.keys]

    def key(self, key_id: str) -> bytes:
        """The key of that id (raises UnknownKey naming it and the ids held)."""
        for candidate, key in self.keys:
            if candidate == key_id:
                return key
        raise UnknownKey(
            f"payload was encrypted with key {quoted(key_id)}, which this process does not hold "
            f"(it holds {', '.join(self.ids)}): add that key to TRANSFER_ENCRYPTION_KEYS "
            "or the key file"
        )

    @classmethod
    def parse(cls, text: str, *, source: str) -> KeyRing:
        """Read ``id:base64`` entries, newest first, separated by commas or new lines.

        Blank lines and lines starting with ``#`` are ignored. `source` names
        where the text came from, for error messages.

        Raises:
            InvalidKeyRing: An entry is malformed. The message names the entry
                by its position, never by its text: an entry written the wrong
                way round (``<key>:id``) has key material where the id should
                be, and a key in hex or unpadded base64 even looks like an id.
                A key id is quoted only once its entry parsed in full.
        """
        entries: list[tuple[str, bytes]] = []
        multiline = len(text.strip().splitlines()) > 1
        number = 0
        for line_number, line in enumerate(text.splitlines(), start=1):
            if line.lstrip().startswith("#"):
                continue
            for part in line.split(","):
                entry = part.strip()
                if not entry:
                    continue
                number += 1
                where = f"entry {number} (line {line_number})" if multiline else f"entry {number}"
                entries.append(_parse_entry(entry, f"{where} of {source}"))
        if not entries:
            raise InvalidKeyRing(f"{source} holds no key")
        seen: dict[str, int] = {}
        for number, (key_id, _) in enumerate(entries, start=1):
            if key_id in seen:
                raise InvalidKeyRing(
                    f"{source}: key id {key_id!r} appears twice (entries {seen[key_id]} "
                    f"and {number})"
                )
            seen[key_id] = number
        return cls(tuple(entries))

    def with_new_key(self, key_id: str | None = None) -> KeyRing:
        """A copy of the ring with a freshly generated key in front (it encrypts from now on)."""
        return KeyRing(
            ((key_id or new_key_id(self.ids), secrets.token_bytes(KEY_BYTES)), *self.keys)
        )

    def env_value(self) -> str:
        """The ring as a TRANSFER_ENCRYPTION_KEYS value, newest first."""
        return ",".join(f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in self.keys)

    def text(self) -> str:
        """The ring as a key file's text, newest first."""
        lines = [
            "# saga-transfer encryption keys, newest first: the first encrypts, all decrypt.",
            "# Keep every key that still has histories to read. Never commit this file.",
        ]
        lines += [f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in self.keys]
        return "\n".join(lines) + "\n"


def _parse_entry(entry: str, where: str) -> tuple[str, bytes]:
    """One ``id:base64`` entry; errors say `where` it is and never quote it."""
    key_id, sep, encoded = entry.partition(":")
    key_id = key_id.strip()
    if not sep or not KEY_ID_PATTERN.match(key_id):
        raise InvalidKeyRing(
            f"{where} is not `id:base64-key` (an id of letters, digits, '.', '_' or '-', "
            "then ':' and the key)"
        )
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise InvalidKeyRing(
            f"{where}: the part after ':' is not valid base64 (padded, as `keys new --print` "
            "writes it)"
        ) from None
    if len(key) != KEY_BYTES:
        raise InvalidKeyRing(
            f"{where}: the key after ':' is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
        )
    return key_id, key


def new_key_id(taken: Iterable[str] = ()) -> str:
    """A fresh key id: ``key-<UTC date>-<random>``."""
    taken = set(taken)
    while True:
        key_id = f"key-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
        if key_id not in taken:
            return key_id


def generate_ring() -> KeyRing:
    """A ring of one new key."""
    return KeyRing(((new_key_id(), secrets.token_bytes(KEY_BYTES)),))


def read_key_file(path: Path) -> KeyRing:
    """The key ring in a key file, refused unless the file is owner-only and this user's.

    A key file others can write could put their key first, to encrypt every
    new payload; one others can read has leaked. Either is refused, with the fix.
    """
    try:
        text = read_private_file(path, "key file")
    except UnsafeFile as err:
        raise InvalidKeyRing(str(err)) from None
    except OSError as err:
        raise InvalidKeyRing(f"cannot read key file {path}: {err.strerror}") from None
    return KeyRing.parse(text, source=f"key file {path}")


def write_key_file(path: Path, ring: KeyRing) -> None:
    """Write a key file readable by its owner only (created 0600, replaced atomically)."""
    write_private_file(path, ring.text())
