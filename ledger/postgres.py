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

from ledger.currency import DEFAULT_CURRENCY, validate_currency
from ledger.errors import LedgerSchemaMismatch, LedgerUnavailable
from ledger.models import CLEARING_OWNER, validate_owner
from ledger.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    MigrationReport,
    require_current,
    require_known,
    steps_after,
)
from ledger.shown import quoted, redact_url
from ledger.sql import Connection, SqlLedgerStore

#: Held while migrating, so several migrations at once take turns.
MIGRATION_LOCK = 7411

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


def runtime_grants(role: str, schema: str) -> list[str]:
    """The GRANT statements that give `role` runtime access to the ledger in `schema`."""
    validate_name(role, "role")
    validate_name(schema, "schema")
    return [f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'] + [
        f'GRANT {privileges} TO "{role}"' for step in MIGRATIONS for privileges in step.grants
    ]


def validate_name(name: str, what: str) -> str:
    """`name` if it is a plain PostgreSQL identifier (a schema's or a role's), else ValueError."""
    if not _SCHEMA_NAME.fullmatch(name):
        raise ValueError(f"Invalid {what} name {quoted(name)}: use lowercase letters, digits, _")
    return name


def split_schema(url: str) -> tuple[str, str | None]:
    """Take our own `schema` query parameter off a PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresLedgerStore(SqlLedgerStore):
    """A ledger in PostgreSQL, shared safely by any number of workers on any hosts.

    Opening one never changes its schema: it checks the version (one query)
    and refuses a ledger that is missing, older or newer, naming `migrate`.
    Only `migrate=True` (``saga-transfer migrate``, run as the schema's
    owner) creates or upgrades it, so the workers' role needs no DDL rights.

    Args:
        url: ``postgresql://user@host:port/db``; ``?schema=NAME`` keeps the
            ledger in its own schema (created by the migration if missing).
        min_size: Connections the pool keeps open.
        max_size: Connections the pool may open; match the worker's activity
            threads.
        clearing_owner: Owner label of the clearing account if the migration
            creates it (an existing ledger keeps its label).
        migrate: Create or upgrade the schema (and its system accounts).
        currency: The currency of accounts opened without one, and of what
            the ledger held before it knew currencies (when upgrading it).
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
        migrate: bool = False,
        currency: str = DEFAULT_CURRENCY,
    ) -> None:
        self._clearing_owner = validate_owner(clearing_owner)
        self.default_currency = validate_currency(currency)
        conninfo, schema = split_schema(url)
        if schema is not None:
            validate_name(schema, "schema")
        self.schema = schema
        #: What messages and the repr show: never a password, wherever the URL carries it.
        self._display = redact_url(conninfo)
        self._shown = redact_url(url)
        kwargs = {"options": f"-c search_path={schema}"} if schema else {}
        self._pool = ConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=kwargs, open=False
        )
        try:
            self._pool.open(wait=True, timeout=10)
        except PoolTimeout as err:
            raise LedgerUnavailable(f"Cannot connect to PostgreSQL at {self}: {err}") from err
        try:
            if migrate:
                try:
                    self.migration = self._migrate()
                except pg_errors.InsufficientPrivilege as err:
                    raise LedgerSchemaMismatch(
                        f"this role may not migrate the ledger at {self._shown} ({err}): run "
                        "`migrate` as the schema's owner"
                    ) from None
            else:
                require_current(self._version(), self._shown)
        except (PoolTimeout, psycopg.OperationalError) as err:
            self._pool.close()
            raise LedgerUnavailable(f"Cannot prepare the ledger at {self}: {err}") from err
        except BaseException:
            self._pool.close()
            raise

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema else ""
        return f"PostgresLedgerStore({self._display!r}{schema})"

    def _version(self) -> int | None:
        """The schema's version, in one query; None when it has none (or no schema)."""
        try:
            with self._pool.connection(timeout=10) as conn:
                row = conn.execute("SELECT max(version) FROM ledger_schema").fetchone()
        except pg_errors.UndefinedTable:
            self._require_schema_usage()
            return None
        except pg_errors.InsufficientPrivilege as err:
            raise LedgerSchemaMismatch(
                f"this role may not read the ledger at {self._shown} ({err}): grant it the "
                "runtime privileges, `saga-transfer migrate --grant ROLE` as the schema's owner"
            ) from None
        return None if row is None or row[0] is None else int(row[0])

    def _require_schema_usage(self) -> None:
        """Refuse a schema that exists but this role may not use (its tables look missing)."""
        if self.schema is None:
            return
        with self._pool.connection(timeout=10) as conn:
            denied = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s"
                " AND NOT has_schema_privilege(oid, 'USAGE')",
                (self.schema,),
            ).fetchone()
        if denied:
            raise LedgerSchemaMismatch(
                f"this role may not use schema {self.schema} of the ledger at {self._shown}: "
                "grant it the runtime privileges, `saga-transfer migrate --grant ROLE` as the "
                "schema's owner"
            )

    def _migrate(self) -> MigrationReport:
        """Create or upgrade the schema in one transaction: all of it or none."""
        with self._pool.connection(timeout=10) as conn, conn.transaction():
            # One migrator at a time when several start together.
            conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            if self.schema:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            found = conn.execute("SELECT to_regclass('ledger_schema') IS NOT NULL").fetchone()
            row = None
            if found == (True,):
                row = conn.execute("SELECT version FROM ledger_schema").fetchone()
            before = None if row is None else int(row[0])
            if before is not None:
                require_known(before, self._shown)
            for step in steps_after(before or 0):
                conn.execute(step.script("postgres", self.default_currency))
            if row is None:
                conn.execute("INSERT INTO ledger_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            else:
                conn.execute("UPDATE ledger_schema SET version = %s", (SCHEMA_VERSION,))
            self._ensure_system_accounts(conn)
        return MigrationReport(self._shown, before, SCHEMA_VERSION)

    def grant_runtime(self, role: str) -> list[str]:
        """Grant `role` what a worker and the operator commands need, nothing more; the statements.

        USAGE on the schema, and per table only the privileges the ledger's
        statements use: the operator log and the postings are never updated
        or deleted, and no DDL is granted, so the role can neither change
        the log nor disable its trigger (only the owner can).
        """
        statements = runtime_grants(role, self.schema or self._current_schema())
        try:
            with self._pool.connection(timeout=10) as conn, conn.transaction():
                for statement in statements:
                    conn.execute(statement)
        except pg_errors.UndefinedObject as err:
            raise ValueError(f"{err}: create it first (CREATE ROLE {role} LOGIN ...)") from None
        return statements

    def _current_schema(self) -> str:
        with self._pool.connection(timeout=10) as conn:
            row = conn.execute("SELECT current_schema()").fetchone()
        if row is None or row[0] is None:
            raise ValueError(f"the ledger at {self._shown} has no schema to grant access to")
        return str(row[0])

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
