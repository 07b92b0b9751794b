"""Payload encryption: round trips, key rotation, clear errors, the settings that choose keys."""

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from app.config import ConfigError, Settings
from app.encryption import (
    ENCODING,
    DecryptionFailed,
    EncryptionCodec,
    EncryptionError,
    InvalidKeyRing,
    KeyRing,
    UnknownKey,
    encrypted_converter,
    generate_ring,
    read_key_file,
    write_key_file,
)
from tests.keys import TEST_CONVERTER, TEST_KEY_ID, TEST_RING
from workflows.contract import TransferRequest

REQUEST = TransferRequest(
    source_account="ACC-001", destination_account="ACC-002", amount="150.00", deadline_seconds=60
)


async def test_a_request_is_unreadable_on_the_wire_and_round_trips() -> None:
    [payload] = await TEST_CONVERTER.encode([REQUEST])
    assert ENCODING == payload.metadata["encoding"]
    assert TEST_KEY_ID.encode() == payload.metadata["encryption-key-id"]
    for secret in (b"ACC-001", b"ACC-002", b"150", b"json"):
        assert secret not in payload.SerializeToString()
    [decoded] = await TEST_CONVERTER.decode([payload], [TransferRequest])
    assert REQUEST == decoded


async def test_the_same_value_encrypts_differently_each_time() -> None:
    first, second = await TEST_CONVERTER.encode([REQUEST, REQUEST])
    assert first.data != second.data


async def test_failure_messages_travel_encrypted() -> None:
    """An insufficient-funds message naming a balance is not readable in the server."""
    failure = Failure()
    error = ApplicationError("balance 12.34 is below 150.00", type="InsufficientFunds")
    await TEST_CONVERTER.encode_failure(error, failure)
    assert "12.34" not in failure.message
    assert b"12.34" not in failure.SerializeToString()
    assert "InsufficientFunds" == failure.application_failure_info.type  # types stay plain
    decoded = await TEST_CONVERTER.decode_failure(failure)
    assert "balance 12.34 is below 150.00" == str(decoded.message)


async def test_old_keys_still_decrypt_after_rotation_and_new_payloads_use_the_newest() -> None:
    [old] = await TEST_CONVERTER.encode([REQUEST])
    rotated = encrypted_converter(TEST_RING.with_new_key("key-2"))
    [new] = await rotated.encode([REQUEST])
    assert b"key-2" == new.metadata["encryption-key-id"]
    assert [REQUEST, REQUEST] == await rotated.decode([old, new], [TransferRequest] * 2)
    with pytest.raises(UnknownKey, match=r"'key-2'.*holds test-key-1"):
        await TEST_CONVERTER.decode([new], [TransferRequest])


async def test_a_wrong_key_of_the_same_id_is_a_clear_error_never_garbage() -> None:
    [payload] = await TEST_CONVERTER.encode([REQUEST])
    impostor = EncryptionCodec(KeyRing(((TEST_KEY_ID, bytes(32)),)))
    with pytest.raises(DecryptionFailed, match="'test-key-1'"):
        await impostor.decode([payload])


async def test_relabelling_or_altering_a_payload_fails_to_decrypt() -> None:
    codec = EncryptionCodec(TEST_RING.with_new_key("key-2"))
    [payload] = await codec.encode([Payload(data=b"secret")])
    relabelled = Payload()
    relabelled.CopyFrom(payload)
    relabelled.metadata["encryption-key-id"] = TEST_KEY_ID.encode()
    with pytest.raises(DecryptionFailed):
        await codec.decode([relabelled])
    altered = Payload()
    altered.CopyFrom(payload)
    altered.data = payload.data[:-1] + bytes([payload.data[-1] ^ 1])
    with pytest.raises(DecryptionFailed):
        await codec.decode([altered])
    other_cipher = Payload()
    other_cipher.CopyFrom(payload)
    other_cipher.metadata["encryption-cipher"] = b"ROT13"
    with pytest.raises(EncryptionError, match="ROT13"):
        await codec.decode([other_cipher])


async def test_plain_payloads_from_before_encryption_still_decode() -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"hello"')
    assert [plain] == await EncryptionCodec(TEST_RING).decode([plain])


@given(st.binary(max_size=2048), st.dictionaries(st.text(max_size=8), st.binary(max_size=16)))
def test_any_payload_round_trips(data: bytes, metadata: dict[str, bytes]) -> None:
    import asyncio

    codec = EncryptionCodec(TEST_RING)
    payload = Payload(metadata=metadata, data=data)
    [sealed] = asyncio.run(codec.encode([payload]))
    assert [payload] == asyncio.run(codec.decode([sealed]))


# -- key rings -------------------------------------------------------------------


def test_key_rings_parse_newest_first_and_refuse_malformed_keys() -> None:
    key = base64.b64encode(bytes(32)).decode()
    ring = KeyRing.parse(f"# comment\nnew:{key}\n\nold:{key}", source="test")
    assert ["new", "old"] == ring.ids
    assert "new" == ring.current
    assert ring == KeyRing.parse(f"new:{key},old:{key}", source="test")
    for text, message in [
        ("", "holds no key"),
        ("nokey", "not `id:base64-key`"),
        ("k:!!!", "not valid base64"),
        (f"k:{base64.b64encode(bytes(16)).decode()}", "16 bytes; AES-256 needs 32"),
        (f"k:{key},k:{key}", "appears twice"),
        (f"bad id:{key}", "entry 1 of test is not `id:base64-key`"),
        (f"new:{key},{key}:swapped", "entry 2 of test is not `id:base64-key`"),  # material first
    ]:
        with pytest.raises(InvalidKeyRing, match=message) as caught:
            KeyRing.parse(text, source="test")
        assert key not in str(caught.value)


def test_a_key_ring_shows_its_ids_never_its_keys() -> None:
    """A ring's repr (tracebacks, test output, logs) names the ids only."""
    ring = generate_ring().with_new_key("key-2")
    shown = repr(ring)
    assert f"KeyRing(ids={ring.ids!r})" == shown
    for _, key in ring.keys:
        assert repr(key) not in shown
        assert base64.b64encode(key).decode() not in shown


async def test_a_payload_too_short_to_be_sealed_is_a_decryption_failure() -> None:
    """Fewer bytes than a nonce and a tag: DecryptionFailed naming the key, not a crash."""
    stub = Payload(
        metadata={
            "encoding": ENCODING,
            "encryption-cipher": b"AES-256-GCM",
            "encryption-key-id": TEST_KEY_ID.encode(),
        },
        data=b"short",
    )
    with pytest.raises(DecryptionFailed, match="'test-key-1'"):
        await EncryptionCodec(TEST_RING).decode([stub])


def test_key_files_are_owner_only_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    ring = generate_ring().with_new_key()
    write_key_file(path, ring)
    assert 0o600 == stat.S_IMODE(os.stat(path).st_mode)
    assert ring == read_key_file(path)
    assert ring == KeyRing.parse(ring.env_value(), source="env")


def test_a_codec_token_file_is_made_owner_only_even_over_a_loose_empty_one(
    tmp_path: Path,
) -> None:
    """An empty, world-readable token file left behind is replaced, never written through."""
    loose = tmp_path / "codec-token"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    settings = Settings.from_env({"TRANSFER_DATA_DIR": str(tmp_path)})
    token = settings.codec_token_value(create=True)
    assert 0o600 == stat.S_IMODE(os.stat(loose).st_mode)
    assert token == loose.read_text().strip()
    assert len(token) >= 32


def test_a_short_codec_token_is_refused(tmp_path: Path) -> None:
    """A guessable token (a codec server has no rate limit) is a configuration error."""
    settings = Settings.from_env(
        {"TRANSFER_DATA_DIR": str(tmp_path), "TRANSFER_CODEC_TOKEN": "letmein"}
    )
    with pytest.raises(ConfigError, match="TRANSFER_CODEC_TOKEN is 7 characters"):
        settings.codec_token_value()
    (tmp_path / "codec-token").write_text("short\n")
    (tmp_path / "codec-token").chmod(0o600)  # owner-only, or it is refused for that first
    with pytest.raises(ConfigError, match="codec-token is 5 characters"):
        Settings.from_env({"TRANSFER_DATA_DIR": str(tmp_path)}).codec_token_value()


def test_settings_generate_a_local_key_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_env({"TRANSFER_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="TRANSFER_ENCRYPTION=off"):
        settings.key_ring()
    ring = settings.key_ring(create=True)
    assert ring is not None
    assert (tmp_path / "encryption-keys").exists()
    assert ring.current in capsys.readouterr().out
    assert ring == settings.key_ring()  # read back, not regenerated
    assert ring == settings.key_ring(create=True)


def test_settings_prefer_keys_from_the_environment_and_can_turn_encryption_off(
    tmp_path: Path,
) -> None:
    env = {"TRANSFER_DATA_DIR": str(tmp_path), "TRANSFER_ENCRYPTION_KEYS": TEST_RING.env_value()}
    assert TEST_RING == Settings.from_env(env).key_ring(create=True)
    assert not (tmp_path / "encryption-keys").exists()
    assert Settings.from_env(env | {"TRANSFER_ENCRYPTION": "off"}).key_ring() is None
    with pytest.raises(ConfigError, match="TRANSFER_ENCRYPTION must be on or off"):
        Settings.from_env(env | {"TRANSFER_ENCRYPTION": "maybe"})
    broken = env | {"TRANSFER_ENCRYPTION_KEYS": "k:short"}
    with pytest.raises(ConfigError, match="TRANSFER_ENCRYPTION_KEYS"):
        Settings.from_env(broken).key_ring()
    assert "TRANSFER_ENCRYPTION_KEYS" not in repr(Settings.from_env(env))
    assert TEST_RING.env_value() not in repr(Settings.from_env(env))


def test_keys_commands_rotate_the_key_file_without_printing_key_material(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keys new` puts a new key first (older ones stay); `keys list` shows ids only."""
    from app.cli import starter_main

    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRANSFER_ENCRYPTION_KEYS")
    assert 2 == starter_main(["keys", "list"])
    assert "no key is configured" in capsys.readouterr().err
    assert 0 == starter_main(["keys", "new"])
    assert 0 == starter_main(["keys", "new"])
    ring = read_key_file(tmp_path / "encryption-keys")
    assert 2 == len(ring.ids)
    capsys.readouterr()
    assert 0 == starter_main(["keys", "list"])
    out = capsys.readouterr().out
    assert f"{ring.ids[0]}  (encrypts new payloads)" in out
    assert ring.ids[1] in out
    assert all(base64.b64encode(key).decode() not in out for _, key in ring.keys)
    # With keys from the environment there is no file to write: print an entry instead.
    monkeypatch.setenv("TRANSFER_ENCRYPTION_KEYS", TEST_RING.env_value())
    assert 2 == starter_main(["keys", "new"])
    assert "--print" in capsys.readouterr().err
    assert 0 == starter_main(["keys", "new", "--print"])
    printed = KeyRing.parse(capsys.readouterr().out, source="stdout")
    assert 1 == len(printed.ids)


async def test_a_process_with_encryption_off_refuses_encrypted_payloads_clearly() -> None:
    plain = encrypted_converter(None)
    [payload] = await plain.encode([REQUEST])
    assert b"json/plain" == payload.metadata["encoding"]
    assert [REQUEST] == await plain.decode([payload], [TransferRequest])
    [sealed] = await TEST_CONVERTER.encode([REQUEST])
    with pytest.raises(EncryptionError, match=r"key 'test-key-1'.*TRANSFER_ENCRYPTION=off"):
        await plain.decode([sealed], [TransferRequest])
