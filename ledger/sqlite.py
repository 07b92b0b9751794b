"""The embedded SQLite store: WAL, a busy timeout, foreign keys, one connection per thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.errors import LedgerSchemaMismatch, LedgerUnavailable
from ledger.models import CLEARING_OWNER, validate_owner
from ledger.sql import Connection, SqlLedgerStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('customer', 'clearing', 'external')),
    balance     INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'frozen', 'closed')),
    created_at  TEXT NOT NULL,
    CHECK (kind <> 'customer' OR balance >= 0)
);
CREATE TABLE IF NOT EXISTS postings (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    key           TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('opening', 'debit', 'credit', 'reversal', 'manual')),
    amount        INTEGER NOT NULL CHECK (amount > 0),
    from_account  TEXT NOT NULL REFERENCES accounts (id),
    to_account    TEXT NOT NULL REFERENCES accounts (id),
    reverses      TEXT UNIQUE,
    posted_at     TEXT NOT NULL,
    memo          TEXT,
    CHECK (from_account <> to_account)
);
CREATE TABLE IF NOT EXISTS voids (
    key           TEXT PRIMARY KEY,
    reversal_key  TEXT NOT NULL UNIQUE,
    posted_at     TEXT NOT NULL
);
"""

#: Version 2: the operator log, append-only (the triggers refuse any change).
OPERATOR_LOG = """
CREATE TABLE IF NOT EXISTS operator_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL UNIQUE,
    transfer_id  TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('retry', 'resolve')),
    operator     TEXT NOT NULL,
    note         TEXT,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operator_log_by_transfer ON operator_log (transfer_id, id);
CREATE TRIGGER IF NOT EXISTS operator_log_no_update BEFORE UPDATE ON operator_log
BEGIN
    SELECT RAISE(ABORT, 'operator_log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS operator_log_no_delete BEFORE DELETE ON operator_log
BEGIN
    SELECT RAISE(ABORT, 'operator_log is append-only');
END;
"""

#: Version 3: the keys an operator's settlement took over (they move no money again).
SETTLED = """
CREATE TABLE IF NOT EXISTS settled (
    key             TEXT PRIMARY KEY,
    settlement_key  TEXT NOT NULL,
    settled_at      TEXT NOT NULL
);
"""

#: Bumped whenever the schema changes; stored in SQLite's user_version.
SCHEMA_VERSION = 3

#: What takes a ledger from the version before each key to that version.
#: Idempotent, so two processes upgrading one file at once do no harm.
MIGRATIONS = {2: OPERATOR_LOG, 3: SETTLED}

#: How long a writer waits for another writer's lock before giving up (ms).
BUSY_TIMEOUT_MS = 10_000


class SqliteLedgerStore(SqlLedgerStore):
    """A ledger in one SQLite file, safe for many threads and processes.

    Each thread keeps its own connection, so threads never share one (and
    a ledger call does not pay for opening a connection and setting its
    pragmas, which measured a quarter of a step's CPU); writes take the
    database lock up front (``BEGIN IMMEDIATE``) so a read-check-write can
    never be interleaved with another writer.
    """

    #: OpenTelemetry's name for the database system (`ledger.tracing`).
    DB_SYSTEM = "sqlite"

    def __init__(self, path: Path, *, clearing_owner: str = CLEARING_OWNER) -> None:
        self.path = path
        self._clearing_owner = validate_owner(clearing_owner)
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            has_tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'accounts'"
            ).fetchone()[0]
            if not has_tables:
                script = SCHEMA + "".join(MIGRATIONS.values())
            elif 1 <= version <= SCHEMA_VERSION:
                script = "".join(MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1))
            else:
                raise LedgerSchemaMismatch(
                    f"Ledger {path} has schema version {version}, this build reads 1 to "
                    f"{SCHEMA_VERSION}: move the file aside, or run a newer build"
                )
            # One transaction: the tables and the version that names them, or neither.
            conn.executescript(
                f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        with self._transaction() as tx:
            self._ensure_system_accounts(tx)

    def __repr__(self) -> str:
        return f"SqliteLedgerStore({str(self.path)!r})"

    def _new_connection(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                # Used by one thread only; `close` may run on another.
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            # FULL: a committed posting survives a power cut, not only a crash.
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as err:
            raise LedgerUnavailable(f"Cannot open ledger {self.path}: {err}") from err
        return conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        """Drop a connection that failed: the thread's next call opens a fresh one."""
        self._local.conn = None
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
        conn.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise LedgerUnavailable(f"Ledger {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new_connection()
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        try:
            yield conn
        except sqlite3.Error:
            self._forget(conn)
            raise

    def _lock_keys(self, conn: Connection, *keys: str) -> None:
        # Nothing to do: every write transaction here begins IMMEDIATE, so
        # writers already take turns on the whole file.
        pass

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self._connect() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise LedgerUnavailable(f"Ledger is busy: {err}") from err
            try:
                yield conn
            except sqlite3.OperationalError as err:
                conn.execute("ROLLBACK")
                raise LedgerUnavailable(f"Ledger error: {err}") from err
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.OperationalError as err:
                    # Not committed: safe to retry the whole call.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise LedgerUnavailable(f"Ledger commit failed: {err}") from err

    def close(self) -> None:
        """Close every thread's connection; later calls raise LedgerUnavailable."""
        self._closed = True
        with self._lock:
            connections, self._open = self._open, []
        for conn in connections:
            conn.close()
