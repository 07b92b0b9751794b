"""The data directory: owner-only from every entry, closed when found open, never the cwd's."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import starter_main
from app.config import PROJECT_ROOT, ConfigError, Settings
from app.encryption import generate_ring, write_key_file
from tests.keys import TEST_KEYS
from tests.support.cli import ROOT, script_args

BIN = Path(sys.executable).parent


def mode(path: Path) -> int:
    """The permission bits of `path` (not following a symlink)."""
    return stat.S_IMODE(path.lstat().st_mode)


def open_to_others(directory: Path) -> dict[str, str]:
    """Every file in `directory` that group or others may use, with its mode."""
    return {
        p.name: f"{mode(p):04o}"
        for p in directory.iterdir()
        if not p.is_symlink() and mode(p) & 0o077
    }


# Each entry point opens a ledger in a data directory that does not exist
# yet. The worker needs no Temporal for that: with `--bank` it opens its
# bank's ledger before it connects, then fails to reach the bogus address.
ENTRIES = {
    "starter.py": script_args("starter.py", "accounts", "open", "NORTH-1", "--owner", "A"),
    "saga-transfer": [str(BIN / "saga-transfer"), "accounts", "open", "NORTH-1", "--owner", "A"],
    "worker.py": script_args("worker.py", "--bank", "north"),
    "saga-transfer-worker": [str(BIN / "saga-transfer-worker"), "--bank", "north"],
}


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_point_creates_the_data_dir_and_its_files_owner_only(
    entry: str, tmp_path: Path
) -> None:
    """Under a permissive umask (022) a fresh data dir is still 0700 and its ledger files 0600."""
    data = tmp_path / "fresh" / "data"
    env = os.environ | {
        "TRANSFER_DATA_DIR": str(data),
        "TRANSFER_BANKS": "north,south",
        "TEMPORAL_ADDRESS": "127.0.0.1:9",  # nothing answers: the worker stops after its ledger
    }
    done = subprocess.run(
        ENTRIES[entry], env=env, cwd=tmp_path, umask=0o022, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert (data / "ledger-north.db").exists(), done.stderr
    assert 0o700 == mode(data)
    assert {} == open_to_others(data)
    assert {"ledger-north.db", "ledger-north.db-wal", "ledger-north.db-shm"} <= {
        p.name for p in data.iterdir()
    }


def test_a_loose_data_dir_is_closed_once_and_its_databases_made_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 0755 data dir left by an older version: 0700, its databases 0600, one line on stderr."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    ours = ["ledger.db", "ledger.db-wal", "ledger-north.db-shm", "demo-ledger.db", "temporal.db"]
    ours.append("ledger-north.db")
    for name in [*ours, "notes.txt"]:
        (data / name).write_text("x")
        (data / name).chmod(0o644)
    (data / "ledger-link.db").symlink_to(tmp_path / "elsewhere.db")
    (tmp_path / "elsewhere.db").write_text("x")
    (tmp_path / "elsewhere.db").chmod(0o644)
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(data))
    monkeypatch.setenv("TRANSFER_ENCRYPTION_KEYS", TEST_KEYS)

    assert 0 == starter_main(["keys", "list"])
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"Data directory {data} was mode 0755, now 0700"), line
    assert 0o700 == mode(data)
    assert {"notes.txt": "0644"} == open_to_others(data)  # not ours: left alone
    assert 0o644 == mode(tmp_path / "elsewhere.db")  # a symlink is never followed
    assert all(0o600 == mode(data / name) for name in ours)

    assert 0 == starter_main(["keys", "list"])
    assert "" == capsys.readouterr().err  # said once: now it is closed


def test_a_loose_data_dir_does_not_make_a_loose_key_file_trusted(tmp_path: Path) -> None:
    """Closing the directory leaves a loose key file loose, for the key file check to refuse."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    write_key_file(data / "encryption-keys", generate_ring())
    (data / "encryption-keys").chmod(0o666)
    settings = Settings.from_env({"TRANSFER_DATA_DIR": str(data)})
    assert settings.secure_data_dir() is not None
    assert 0o666 == mode(data / "encryption-keys")
    with pytest.raises(ConfigError, match="chmod 600"):
        settings.key_ring()


def test_a_shared_sticky_directory_is_refused_never_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """TRANSFER_DATA_DIR=/tmp-like (1777): exit 2 asking for a directory of its own, mode kept."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(shared))
    assert 2 == starter_main(["keys", "list"])
    assert [
        f"error: data directory {shared} is a shared directory (mode 1777): set "
        "TRANSFER_DATA_DIR to a directory of its own"
    ] == capsys.readouterr().err.splitlines()
    assert 0o1777 == mode(shared)


def test_the_default_data_dir_is_the_checkouts_whatever_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without TRANSFER_DATA_DIR, state lives in the checkout's .data, an absolute path."""
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert ROOT == PROJECT_ROOT
    assert ROOT / ".data" == settings.data_dir
    assert ROOT / ".data" / "encryption-keys" == settings.key_file
    assert f"sqlite:///{ROOT / '.data' / 'ledger.db'}" == settings.ledger_url
    assert f"sqlite:///{ROOT / '.data' / 'ledger-north.db'}" == Settings.from_env(
        {"TRANSFER_BANKS": "north"}
    ).bank_ledger_url("north")


def test_a_key_file_planted_in_the_current_directory_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `.data/encryption-keys` where a command happens to run does not choose the key."""
    planted = generate_ring()
    write_key_file(tmp_path / ".data" / "encryption-keys", planted)
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert tmp_path / ".data" / "encryption-keys" != settings.key_file.resolve()
    try:
        ring = settings.key_ring()
    except ConfigError:
        return  # the checkout holds no key file: nothing was read
    assert ring is not None
    assert planted.current not in ring.ids


def test_a_data_dir_path_with_url_characters_makes_a_working_ledger_url(tmp_path: Path) -> None:
    """A '#' or '?' in the data directory's path stays in the ledger's file name."""
    data = tmp_path / "a#b?c%d"
    store = Settings.from_env({"TRANSFER_DATA_DIR": str(data)}).open_ledger()
    assert (data / "ledger.db").exists()
    store.close()
