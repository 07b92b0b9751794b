"""Key and token files: refused unless owner-only; key parse errors never show key material."""

import base64
from pathlib import Path

import pytest

from app.config import ConfigError, Settings
from app.encryption import InvalidKeyRing, KeyRing

#: 32 bytes whose base64 has no '+' or '/': unpadded, it is a well-formed key id.
KEY = bytes((j * 13) % 256 for j in range(32))
HEX_KEY = KEY.hex()
UNPADDED_KEY = base64.b64encode(KEY).decode().rstrip("=")
PADDED_KEY = base64.b64encode(KEY).decode()


def windows(secret: str, width: int = 8) -> set[str]:
    """Every `width`-character slice of `secret`: a message may quote none of them."""
    return {secret[i : i + width] for i in range(len(secret) - width + 1)}


def assert_no_key_material(message: str, *secrets: str) -> None:
    """No eight characters in a row of any secret appear in `message`."""
    for secret in secrets:
        leaked = [w for w in windows(secret) if w in message]
        assert [] == leaked, message


# -- parse errors name the entry by position ------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"{HEX_KEY}:k1",  # a hex key written first: the "id" is 64 hex digits
        f"{UNPADDED_KEY}:k1",  # unpadded base64 written first: also a well-formed "id"
        f"{UNPADDED_KEY}:abcd",  # its "key" decodes, to 3 bytes
        f"{HEX_KEY}:{HEX_KEY}",  # hex where both belong
        f"k1:{HEX_KEY}",  # hex is not base64 of 32 bytes
        f"k1:{UNPADDED_KEY}",  # missing padding
        f"{PADDED_KEY}",  # no id at all
        f"{HEX_KEY}",
    ],
    ids=[
        "hex-first",
        "unpadded-first",
        "unpadded-first-3-bytes",
        "hex-both",
        "hex-key",
        "unpadded-key",
        "no-id-base64",
        "no-id-hex",
    ],
)
def test_a_malformed_key_entry_is_named_by_position_never_by_its_text(text: str) -> None:
    """Whichever check an entry fails, the error says `entry N of SOURCE` and quotes none of it."""
    env = {"TRANSFER_ENCRYPTION_KEYS": text, "TRANSFER_DATA_DIR": "unused"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env).key_ring()
    message = str(caught.value)
    assert message.startswith("entry 1 of TRANSFER_ENCRYPTION_KEYS"), message
    assert_no_key_material(message, HEX_KEY, UNPADDED_KEY)


def test_a_malformed_entry_in_a_key_file_is_named_by_position_and_line(tmp_path: Path) -> None:
    """In a key file the error gives the entry and its line, never the entry's text."""
    path = tmp_path / "encryption-keys"
    path.write_text(f"# keys\nk0:{PADDED_KEY}\n\n{HEX_KEY}:k1\n")
    path.chmod(0o600)
    env = {"TRANSFER_DATA_DIR": str(tmp_path), "TRANSFER_ENCRYPTION_KEY_FILE": str(path)}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env).key_ring()
    message = str(caught.value)
    assert message.startswith(f"entry 2 (line 4) of key file {path}: "), message
    assert_no_key_material(message, HEX_KEY, PADDED_KEY)


def test_a_key_id_is_quoted_only_once_its_entry_parsed() -> None:
    """A repeated id is quoted: both its entries parsed as `id:key`, so it is an id, not a key."""
    with pytest.raises(InvalidKeyRing) as caught:
        KeyRing.parse(f"k1:{PADDED_KEY},k2:{PADDED_KEY},k1:{PADDED_KEY}", source="test")
    assert "test: key id 'k1' appears twice (entries 1 and 3)" == str(caught.value)
