"""Files only their owner may read: the data directory, and the key and token files.

The data directory holds the SQLite ledgers (balances, owners, postings),
the embedded dev server's database (search attributes in plain text) and
the key and token files. Our processes create everything there owner-only
(`owner_only_umask`); a directory left open by an older version is closed
at start (`secure_data_dir`). A key or token file is read only if nobody
but its owner could have read, written or planted it (`read_private_file`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

#: Group and others get nothing: new directories 0700, new files 0600.
OWNER_ONLY_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
#: The project's databases in a data directory, with SQLite's companion files.
DATABASE_PATTERNS = ("ledger*.db", "demo-ledger*.db", "temporal.db")
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


class UnsafeFile(ValueError):
    """A secret file or directory others could read, write or own; the message says the fix."""


@contextlib.contextmanager
def owner_only_umask() -> Iterator[None]:
    """Within it, every file and directory this process creates is its owner's only.

    The umask also reaches what SQLite creates (a ledger's -wal and -shm
    files) and the child processes started meanwhile (the dev server's
    database), which no mode argument of ours would.
    """
    previous = os.umask(OWNER_ONLY_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def secure_data_dir(path: Path) -> str | None:
    """Close an existing data directory that group or others can enter; say what changed.

    Returns:
        One line for stderr when the directory was loose (its old and new
        mode), else None. A missing directory is left alone: it is created
        0700 when first needed.

    Raises:
        UnsafeFile: The directory is loose and not this user's to change, or
            is a shared one such as /tmp (sticky).
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not path.is_dir() or not mode & 0o077:
        return None
    if mode & stat.S_ISVTX:
        # A sticky directory (/tmp) is shared by design: closing it would
        # break everyone else, and anyone may already have planted files in it.
        raise UnsafeFile(
            f"data directory {path} is a shared directory (mode {mode:04o}): set "
            "TRANSFER_DATA_DIR to a directory of its own"
        )
    try:
        path.chmod(PRIVATE_DIR_MODE)
    except PermissionError:
        raise UnsafeFile(
            f"data directory {path} is open to others (mode {mode:04o}) and this user cannot "
            f"change it: as its owner, `chmod 700 {path}`"
        ) from None
    # 0700 on the directory already keeps others from reaching any file in
    # it. The databases are closed too, so they stay private if the
    # directory is ever opened again, or copied somewhere with its modes.
    # Key and token files are not: a loose one may have been planted, and
    # is refused where it is read instead of being made tight and trusted.
    tightened = sum(_tighten(file) for file in _databases(path))
    files = f"; {tightened} database file(s) in it made owner-only too" if tightened else ""
    return f"Data directory {path} was mode {mode:04o}, now {PRIVATE_DIR_MODE:04o}{files}"


def _databases(directory: Path) -> Iterator[Path]:
    for pattern in DATABASE_PATTERNS:
        for database in directory.glob(pattern):
            for suffix in SQLITE_COMPANIONS:
                yield database.with_name(database.name + suffix)


def _tighten(path: Path) -> bool:
    """Make one of our regular files owner-only; whether it was loose."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    # Never through a symlink (chmod follows it), nor another user's file.
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        return False
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return False
    path.chmod(mode & ~0o077)
    return True


def read_private_file(path: Path, what: str) -> str:
    """The text of a secret file, refused unless it is owner-only and this user's.

    An empty file is returned as it is: it holds nothing to leak or trust
    (a missing token is then generated into a fresh file, never through it).

    Args:
        path: The file (a symlink to it is followed: secret mounts are symlinks).
        what: What it is, for the message (``key file``, ``codec token file``).

    Raises:
        UnsafeFile: Another user owns the file, or group or others may read
            or write it; the message names the file and the command that fixes it.
        OSError: The file cannot be read.
    """
    with path.open() as file:
        # The checks look at the file that was opened, not at whatever the path names later.
        info = os.fstat(file.fileno())
        if info.st_size == 0:
            return ""
        me = os.geteuid()
        if info.st_uid != me:
            raise UnsafeFile(
                f"{what} {path} is owned by uid {info.st_uid}, not by this user (uid {me}): "
                f"remove it, or `chown {me} {path}` if it is yours"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise UnsafeFile(
                f"{what} {path} is mode {mode:04o}: group or others may read or change it; "
                f"`chmod 600 {path}` if it is yours"
            )
        return file.read()


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to a new file only its owner can read, then move it over `path`.

    A fresh file (O_EXCL, 0600) replaces whatever was there, so an existing
    file's looser mode, or a symlink planted at `path`, is never written through.
    """
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
