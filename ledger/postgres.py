"""The production store: PostgreSQL through psycopg 3 and a connection pool.

The ledger rules are the same SQL as SQLite's (`ledger/sql.py`); this class
supplies pooled connections, row locks (``SELECT ... FOR UPDATE``) and the
mapping of PostgreSQL's transient errors to the retryable `LedgerUnavailable`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from ledger.errors import LedgerSchemaMismatch, LedgerUnavailable
from ledger.models import CLEARING_OWNER, validate_owner
from ledger.shown import quoted, redact_url
from ledger.sql import Connection, SqlLedgerStore

#: Bumped whenever the schema changes; stored in the ledger_schema table.
SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('customer', 'clearing', 'external')),
    balance     BIGINT NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'frozen', 'closed')),
    created_at  TIMESTAMPTZ NOT NULL,
    CHECK (kind <> 'customer' OR balance >= 0)
);
CREATE TABLE IF NOT EXISTS postings (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('opening', 'debit', 'credit', 'reversal', 'manual')),
    amount        BIGINT NOT NULL CHECK (amount > 0),
    from_account  TEXT NOT NULL REFERENCES accounts (id),
    to_account    TEXT NOT NULL REFERENCES accounts (id),
    reverses      TEXT UNIQUE,
    posted_at     TIMESTAMPTZ NOT NULL,
    memo          TEXT,
    CHECK (from_account <> to_account)
);
CREATE TABLE IF NOT EXISTS voids (
    key           TEXT PRIMARY KEY,
    reversal_key  TEXT NOT NULL UNIQUE,
    posted_at     TIMESTAMPTZ NOT NULL
);
"""

#: Version 2: the operator log, append-only (the trigger refuses any change).
OPERATOR_LOG = """
CREATE TABLE IF NOT EXISTS operator_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    transfer_id  TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('retry', 'resolve')),
    operator     TEXT NOT NULL,
    note         TEXT,
    recorded_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS operator_log_by_transfer ON operator_log (transfer_id, id);
CREATE OR REPLACE FUNCTION operator_log_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'operator_log is append-only';
END
$$;
DROP TRIGGER IF EXISTS operator_log_append_only ON operator_log;
CREATE TRIGGER operator_log_append_only BEFORE UPDATE OR DELETE ON operator_log
    FOR EACH ROW EXECUTE FUNCTION operator_log_append_only();
DROP TRIGGER IF EXISTS operator_log_no_truncate ON operator_log;
CREATE TRIGGER operator_log_no_truncate BEFORE TRUNCATE ON operator_log
    FOR EACH STATEMENT EXECUTE FUNCTION operator_log_append_only();
"""

#: Version 3: the keys an operator's settlement took over (they move no money again).
SETTLED = """
CREATE TABLE IF NOT EXISTS settled (
    key             TEXT PRIMARY KEY,
    settlement_key  TEXT NOT NULL,
    settled_at      TIMESTAMPTZ NOT NULL
);
"""

#: What takes a ledger from the version before each key to that version.
MIGRATIONS = {2: OPERATOR_LOG, 3: SETTLED}

#: Errors after which the same call may well succeed: a lost connection, a
#: deadlock or serialization failure, or two attempts of one key racing (the
#: loser's retry then finds the winner's receipt).
_TRANSIENT = (
    psycopg.OperationalError,
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.UniqueViolation,
    pg_errors.LockNotAvailable,
)

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def split_schema(url: str) -> tuple[str, str | None]:
    """Take our own `schema` query parameter off a PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresLedgerStore(SqlLedgerStore):
    """A ledger in PostgreSQL, shared safely by any number of workers on any hosts.

    Args:
        url: ``postgresql://user@host:port/db``; ``?schema=NAME`` keeps the
            ledger in its own schema (created if missing).
        min_size: Connections the pool keeps open.
        max_size: Connections the pool may open; match the worker's activity
            threads.
        clearing_owner: Owner label of the clearing account if this store
            creates it (an existing ledger keeps its label).
    """

    _lock_clause = " FOR UPDATE"
    #: OpenTelemetry's name for the database system (`ledger.tracing`).
    DB_SYSTEM = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 16,
        clearing_owner: str = CLEARING_OWNER,
    ) -> None:
        self._clearing_owner = validate_owner(clearing_owner)
        conninfo, schema = split_schema(url)
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(
                f"Invalid schema name {quoted(schema)}: use lowercase letters, digits, _"
            )
        self.schema = schema
        #: What messages and the repr show: never a password, wherever the URL carries it.
        self._display = redact_url(conninfo)
        kwargs = {"options": f"-c search_path={schema}"} if schema else {}
        if schema:
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
                    # Two workers creating one schema at once: the loser of
                    # an unlocked CREATE SCHEMA IF NOT EXISTS gets a unique
                    # violation, so they take turns as the migration does.
                    conn.execute("SELECT pg_advisory_xact_lock(7411)")
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            except psycopg.OperationalError as err:
                raise LedgerUnavailable(f"Cannot connect to PostgreSQL at {self}: {err}") from err
        self._pool = ConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=kwargs, open=False
        )
        try:
            self._pool.open(wait=True, timeout=10)
        except PoolTimeout as err:
            raise LedgerUnavailable(f"Cannot connect to PostgreSQL at {self}: {err}") from err
        try:
            self._migrate()
        except (PoolTimeout, psycopg.OperationalError) as err:
            self._pool.close()
            raise LedgerUnavailable(f"Cannot prepare the ledger at {self}: {err}") from err

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema else ""
        return f"PostgresLedgerStore({self._display!r}{schema})"

    def _migrate(self) -> None:
        with self._pool.connection(timeout=10) as conn, conn.transaction():
            # One migrator at a time when several workers start together.
            conn.execute("SELECT pg_advisory_xact_lock(7411)")
            conn.execute(SCHEMA)
            row = conn.execute("SELECT version FROM ledger_schema").fetchone()
            if row is None:
                for migration in MIGRATIONS.values():
                    conn.execute(migration)
                conn.execute("INSERT INTO ledger_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            elif 1 <= row[0] < SCHEMA_VERSION:
                # Upgrade in place, in this transaction: all of it or none.
                for version in range(row[0] + 1, SCHEMA_VERSION + 1):
                    conn.execute(MIGRATIONS[version])
                conn.execute("UPDATE ledger_schema SET version = %s", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise LedgerSchemaMismatch(
                    f"Ledger schema version {row[0]}, this build reads 1 to {SCHEMA_VERSION}"
                )
            self._ensure_system_accounts(conn)

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self._pool.connection(timeout=10) as conn, conn.transaction():
                yield conn
        except PoolTimeout as err:
            raise LedgerUnavailable(f"No PostgreSQL connection available: {err}") from err
        except _TRANSIENT as err:
            raise LedgerUnavailable(f"Ledger error: {type(err).__name__}: {err}") from err

    @contextmanager
    def _read_transaction(self) -> Iterator[Connection]:
        # One snapshot for every statement of the read (an audit reads
        # accounts, postings and voids separately; at Read Committed a
        # transfer committing in between shows up in one and not the other).
        with self._transaction() as conn:
            self._exec(conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    def _lock_keys(self, conn: Connection, *keys: str) -> None:
        # Transaction-scoped advisory locks, named by a 64-bit hash of the key
        # (and schema: ledgers in two schemas of one database never wait on
        # each other). Read Committed alone would let a late step and its void
        # both commit; a hash collision only makes two calls take turns.
        for key in keys:
            self._exec(
                conn,
                "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
                f"{self.schema or ''}/{key}",
            )

    def drop_schema(self) -> None:
        """Remove this store's schema and everything in it (for tests)."""
        if self.schema is None:
            raise ValueError("refusing to drop: this store has no schema of its own")
        with self._pool.connection() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()
