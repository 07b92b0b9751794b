"""Key and token files: refused unless owner-only; key parse errors never show key material."""

import base64
import os
from pathlib import Path

import pytest

from app.cli import starter_main
from app.config import ConfigError, Settings
from app.encryption import InvalidKeyRing, KeyRing, generate_ring, read_key_file, write_key_file
from app.private_files import write_private_file

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


#: Another user, for files "planted" by someone else (the tests run as root, who may chown).
STRANGER = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
TOKEN = "token-in-a-file-0123456789abcdef"


@pytest.fixture
def keyless_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir in `tmp_path`, and keys from the key file there (not the suite's variable)."""
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRANSFER_ENCRYPTION_KEYS", raising=False)
    return tmp_path / "encryption-keys"


# -- key and token files: owner-only and this user's, or refused -----------------


@pytest.mark.parametrize("loose", [0o666, 0o644, 0o640, 0o604, 0o620], ids=oct)
def test_a_key_file_others_can_read_or_write_is_refused_with_the_fix(
    loose: int, keyless_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A planted 0666 key file, or one others can read, is never used: exit 2, one line."""
    planted = generate_ring()
    write_key_file(keyless_env, planted)
    keyless_env.chmod(loose)
    assert 2 == starter_main(["keys", "list"])
    out, err = capsys.readouterr()
    assert "" == out
    fix = f"`chmod 600 {keyless_env}` if it is yours"
    assert [
        f"error: key file {keyless_env} is mode {loose:04o}: group or others may read or change "
        f"it; {fix}"
    ] == err.splitlines()
    assert planted.current not in err
    assert 2 == starter_main(["keys", "new"])  # nor rotated, trusting what is in it
    assert planted == KeyRing.parse(keyless_env.read_text(), source="test")


@needs_root
def test_a_key_file_another_user_owns_is_refused_with_the_fix(
    keyless_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Owner-only is not enough: a key file someone else owns (and so planted) is refused."""
    write_key_file(keyless_env, generate_ring())
    os.chown(keyless_env, STRANGER, STRANGER)
    assert 2 == starter_main(["keys", "list"])
    assert [
        f"error: key file {keyless_env} is owned by uid {STRANGER}, not by this user "
        f"(uid {os.geteuid()}): remove it, or `chown {os.geteuid()} {keyless_env}` if it is yours"
    ] == capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("private", [0o600, 0o400], ids=oct)
def test_an_owner_only_key_file_of_this_user_is_used(private: int, keyless_env: Path) -> None:
    """The key files we write (0600), or made read-only (0400), are read as before."""
    ring = generate_ring()
    write_key_file(keyless_env, ring)
    keyless_env.chmod(private)
    assert ring == read_key_file(keyless_env)


@pytest.mark.parametrize("loose", [0o644, 0o666, 0o660], ids=oct)
def test_a_codec_token_file_others_can_read_or_write_is_refused(loose: int, tmp_path: Path) -> None:
    """A readable token lets anyone decrypt through the codec server; a writable one is planted."""
    path = tmp_path / "codec-token"
    write_private_file(path, TOKEN + "\n")
    path.chmod(loose)
    settings = Settings.from_env({"TRANSFER_DATA_DIR": str(tmp_path)})
    message = f"codec token file {path} is mode {loose:04o}: group or others may read or change it"
    for create in (False, True):  # never replaced either: the fix is the owner's to make
        with pytest.raises(ConfigError) as caught:
            settings.codec_token_value(create=create)
        assert str(caught.value).startswith(message)
        assert f"`chmod 600 {path}`" in str(caught.value)
        assert TOKEN not in str(caught.value)


@needs_root
def test_a_codec_token_file_another_user_owns_is_refused(tmp_path: Path) -> None:
    """A token someone else wrote would let them in: refused, naming chown."""
    path = tmp_path / "codec-token"
    write_private_file(path, TOKEN + "\n")
    os.chown(path, STRANGER, STRANGER)
    settings = Settings.from_env({"TRANSFER_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match=f"owned by uid {STRANGER}.*`chown {os.geteuid()} "):
        settings.codec_token_value()


def test_an_owner_only_codec_token_file_is_used(tmp_path: Path) -> None:
    """The token file `--new-token` writes (0600) is read as before."""
    write_private_file(tmp_path / "codec-token", TOKEN + "\n")
    assert TOKEN == Settings.from_env({"TRANSFER_DATA_DIR": str(tmp_path)}).codec_token_value()


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
