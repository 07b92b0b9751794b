"""The embedded SQLite store: WAL, a busy timeout, foreign keys, one connection per thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.currency import DEFAULT_CURRENCY, validate_currency
from ledger.errors import LedgerUnavailable
from ledger.models import CLEARING_OWNER, validate_owner
from ledger.schema import (
    SCHEMA_VERSION,
    MigrationReport,
    require_current,
    require_known,
    steps_after,
)
from ledger.sql import Connection, SqlLedgerStore

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

    def __init__(
        self,
        path: Path,
        *,
        clearing_owner: str = CLEARING_OWNER,
        migrate: bool = True,
        currency: str = DEFAULT_CURRENCY,
    ) -> None:
        self.path = path
        self._clearing_owner = validate_owner(clearing_owner)
        self.default_currency = validate_currency(currency)
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        if not migrate and not path.exists():
            # Refused before connecting: a connection would create an empty file.
            require_current(None, str(path))
        try:
            if migrate:
                path.parent.mkdir(parents=True, exist_ok=True)
                with self._connect() as conn:
                    conn.execute("PRAGMA journal_mode = WAL")
                with self._transaction() as tx:
                    self.migration = self._migrate(tx)
            else:
                with self._connect() as conn:
                    require_current(_version(conn), str(path))
        except BaseException:
            self.close()
            raise

    def _migrate(self, conn: Connection) -> MigrationReport:
        """Bring the schema to `SCHEMA_VERSION` in the caller's (write-locked) transaction.

        The version is read under the lock, so of two processes upgrading
        one file at once the second finds the work done.
        """
        has_tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'accounts'", ()
        ).fetchone()[0]
        before = _version(conn) if has_tables else None
        if before is not None:
            require_known(before, str(self.path))
        for step in steps_after(before or 0):
            for statement in _statements(step.script("sqlite", self.default_currency)):
                conn.execute(statement, ())
        # In the transaction: the tables and the version that names them, or neither.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}", ())
        self._ensure_system_accounts(conn)
        return MigrationReport(str(self.path), before, SCHEMA_VERSION)

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


def _version(conn: sqlite3.Connection | Connection) -> int:
    return int(conn.execute("PRAGMA user_version", ()).fetchone()[0])


def _statements(script: str) -> Iterator[str]:
    """A script's statements one by one (a trigger's body stays whole).

    `executescript` would commit the transaction the migration runs in first.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement.strip()
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {statement.strip()[:60]!r}")
