"""Payload encryption: AES-256-GCM with named keys, as a Temporal payload codec.

Every payload a client or worker of ours sends to Temporal (workflow and
activity inputs and results, query and update results, memos, summaries and,
with the failure converter below, failure messages and stack traces) is
encrypted before it leaves the process. The server, its database and the
Web UI see only ciphertext; the codec server (`app.codec_server`) decrypts
for people allowed to read it.

An encrypted payload is the original payload, serialized, then sealed:

- ``metadata["encoding"] = b"binary/encrypted"``
- ``metadata["encryption-cipher"] = b"AES-256-GCM"``
- ``metadata["encryption-key-id"] = <the key's id>``
- ``data = nonce (12 random bytes) + ciphertext + tag``

The key id and cipher are bound to the ciphertext as associated data, so
relabelling a payload with another key id makes it fail to decrypt instead
of decrypting under the wrong name.

The keys live in a key ring (`app.keys`, re-exported here): several keys,
newest first. New payloads use the newest; any key in the ring decrypts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from app.keys import (
    DecryptionFailed,
    EncryptionError,
    InvalidKeyRing,
    KeyRing,
    UnknownKey,
    generate_ring,
    read_key_file,
    write_key_file,
)

# Key ids come from a payload's metadata, which may be megabytes: quoted cuts them short.
from ledger.shown import quoted

__all__ = [
    "CIPHER",
    "ENCODING",
    "DecryptionFailed",
    "EncryptionCodec",
    "EncryptionError",
    "InvalidKeyRing",
    "KeyRing",
    "PlainCodec",
    "UnknownKey",
    "encrypted_converter",
    "generate_ring",
    "read_key_file",
    "write_key_file",
]

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
NONCE_BYTES = 12
TAG_BYTES = 16  # AES-GCM's authentication tag, at the end of the ciphertext


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM payload codec over a key ring.

    Payloads that are not marked as encrypted pass through decoding
    unchanged, so histories written before encryption was turned on stay
    readable; nothing is ever encoded in plain text.
    """

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the newest key."""
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt each encrypted payload; pass the others through."""
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """One payload, sealed with the newest key."""
        key_id = self.ring.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), _associated_data(key_id)
        )
        return Payload(
            metadata={
                "encoding": ENCODING,
                "encryption-cipher": CIPHER,
                "encryption-key-id": key_id.encode(),
            },
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """One payload, opened (or returned as is when it is not encrypted)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get("encryption-key-id", b"").decode(errors="replace")
        cipher = payload.metadata.get("encryption-cipher", b"")
        if cipher != CIPHER:
            raise EncryptionError(
                f"payload under key {quoted(key_id)} uses cipher "
                f"{quoted(cipher.decode(errors='replace'))}; "
                f"only {CIPHER.decode()} is supported"
            )
        self.ring.key(key_id)  # raises UnknownKey with the ids held
        data = payload.data
        try:
            if len(data) < NONCE_BYTES + TAG_BYTES:
                raise InvalidTag  # too short to hold a nonce and a tag: not ours, or cut
            plain = self._ciphers[key_id].decrypt(
                data[:NONCE_BYTES], data[NONCE_BYTES:], _associated_data(key_id)
            )
        except InvalidTag:
            raise DecryptionFailed(
                f"payload under key {quoted(key_id)} does not decrypt with the key of that id "
                "held here: the key material differs from the one that encrypted it, or "
                "the payload was altered"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


class PlainCodec(PayloadCodec):
    """The codec of a process with encryption off: plain payloads, and a clear refusal.

    An encrypted payload (from a process with encryption on) fails with an
    error saying so, instead of the converter's "unknown encoding".
    """

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Payloads unchanged."""
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Payloads unchanged; encrypted ones raise EncryptionError."""
        for payload in payloads:
            if payload.metadata.get("encoding") == ENCODING:
                key_id = payload.metadata.get("encryption-key-id", b"").decode(errors="replace")
                raise EncryptionError(
                    f"payload is encrypted (key {quoted(key_id)}) but encryption is off in this "
                    "process (TRANSFER_ENCRYPTION=off): turn it on and give it that key"
                )
        return list(payloads)


def _associated_data(key_id: str) -> bytes:
    return b"saga-transfer/" + CIPHER + b"/" + key_id.encode()


def encrypted_converter(ring: KeyRing | None) -> DataConverter:
    """The project's data converter: pydantic, plus encryption when `ring` is given.

    Without a ring payloads stay plain, and an encrypted one is refused with
    an error that says encryption is off here.

    With a ring, failure messages and stack traces travel inside an encrypted
    payload too (Temporal's encoded failure attributes), so an error message
    that names a balance is not readable in the server either.
    """
    if ring is None:
        return dataclasses.replace(pydantic_data_converter, payload_codec=PlainCodec())
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
