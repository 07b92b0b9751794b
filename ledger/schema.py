"""The ledger's schema versions: one list of steps, each in both stores' SQL.

Adding a version is one entry at the end of `MIGRATIONS`: what it does, its
SQLite and its PostgreSQL statements, and what the runtime role needs on any
table it adds. `SCHEMA_VERSION` follows, both stores run the new step when
migrating, and every process older than it refuses the upgraded ledger.

Who migrates: a SQLite ledger is a file of the process that opens it, so
opening one migrates it; a PostgreSQL ledger is migrated only by
`saga-transfer migrate`, as the schema's owner, and workers and commands
only check its version (docs/ledger.md, *Migrations*).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.currency import validate_currency
from ledger.errors import LedgerSchemaMismatch


@dataclass(frozen=True)
class Migration:
    """One schema version: what takes a ledger from the version before it to this one.

    Attributes:
        version: The version a ledger is at once this step ran.
        what: What it adds, for people.
        sqlite: Its SQLite statements.
        postgres: Its PostgreSQL statements.
        grants: What the runtime role needs on the tables it adds, as
            ``PRIVILEGES ON TABLES`` (the tail of a PostgreSQL ``GRANT``).
    """

    version: int
    what: str
    sqlite: str
    postgres: str
    grants: tuple[str, ...] = ()

    def script(self, store: str, currency: str) -> str:
        """The statements of this step for `store` (``sqlite`` or ``postgres``).

        `currency` (a validated ISO 4217 code) stands where a step writes
        the currency of what a ledger held before (`DEFAULT_CURRENCY_MARK`).
        """
        sql = self.sqlite if store == "sqlite" else self.postgres
        return sql.replace(DEFAULT_CURRENCY_MARK, f"'{validate_currency(currency)}'")


#: Where a migration writes the currency of the accounts and postings a
#: ledger had before it knew currencies (`LEDGER_CURRENCY` when upgrading).
DEFAULT_CURRENCY_MARK = ":default_currency"


_SQLITE_V1 = """
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

#: PostgreSQL keeps the version in a table of its own (SQLite in its user_version).
_POSTGRES_V1 = """
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

_SQLITE_V2 = """
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

_POSTGRES_V2 = """
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

_SETTLED = """
CREATE TABLE IF NOT EXISTS settled (
    key             TEXT PRIMARY KEY,
    settlement_key  TEXT NOT NULL,
    settled_at      {time} NOT NULL
);
"""

#: Version 4 (SQLite): accounts keyed by (id, currency), so the system accounts
#: exist once per currency, and postings carry their currency with foreign
#: keys on (account, currency): a posting between two currencies cannot be
#: stored at all. SQLite changes a primary key only by rebuilding the table.
_SQLITE_V4 = """
CREATE TABLE accounts_v4 (
    id          TEXT NOT NULL,
    currency    TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    owner       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('customer', 'clearing', 'external')),
    balance     INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'frozen', 'closed')),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (id, currency),
    CHECK (kind <> 'customer' OR balance >= 0)
);
INSERT INTO accounts_v4 (id, currency, owner, kind, balance, status, created_at)
    SELECT id, :default_currency, owner, kind, balance, status, created_at FROM accounts;
CREATE TABLE postings_v4 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    key           TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('opening', 'debit', 'credit', 'reversal', 'manual')),
    amount        INTEGER NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL,
    from_account  TEXT NOT NULL,
    to_account    TEXT NOT NULL,
    reverses      TEXT UNIQUE,
    posted_at     TEXT NOT NULL,
    memo          TEXT,
    CHECK (from_account <> to_account),
    FOREIGN KEY (from_account, currency) REFERENCES accounts_v4 (id, currency),
    FOREIGN KEY (to_account, currency) REFERENCES accounts_v4 (id, currency)
);
INSERT INTO postings_v4
    (id, key, kind, amount, currency, from_account, to_account, reverses, posted_at, memo)
    SELECT id, key, kind, amount, :default_currency, from_account, to_account, reverses,
        posted_at, memo
    FROM postings;
DROP TABLE postings;
DROP TABLE accounts;
ALTER TABLE accounts_v4 RENAME TO accounts;
ALTER TABLE postings_v4 RENAME TO postings;
CREATE UNIQUE INDEX accounts_customer_id ON accounts (id) WHERE kind = 'customer';
"""

#: Version 4 (PostgreSQL): the same, by altering the tables in place.
_POSTGRES_V4 = """
ALTER TABLE accounts ADD COLUMN currency TEXT NOT NULL DEFAULT :default_currency
    CHECK (currency ~ '^[A-Z]{3}$');
ALTER TABLE accounts ALTER COLUMN currency DROP DEFAULT;
ALTER TABLE postings ADD COLUMN currency TEXT NOT NULL DEFAULT :default_currency;
ALTER TABLE postings ALTER COLUMN currency DROP DEFAULT;
ALTER TABLE postings DROP CONSTRAINT postings_from_account_fkey,
    DROP CONSTRAINT postings_to_account_fkey;
ALTER TABLE accounts DROP CONSTRAINT accounts_pkey, ADD PRIMARY KEY (id, currency);
CREATE UNIQUE INDEX accounts_customer_id ON accounts (id) WHERE kind = 'customer';
ALTER TABLE postings
    ADD FOREIGN KEY (from_account, currency) REFERENCES accounts (id, currency),
    ADD FOREIGN KEY (to_account, currency) REFERENCES accounts (id, currency);
"""

#: Every schema version, oldest first; a ledger at version N has run the first N.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "accounts, postings and voids",
        _SQLITE_V1,
        _POSTGRES_V1,
        grants=(
            "SELECT ON ledger_schema",
            # UPDATE: balances and statuses change; postings and voids never do.
            "SELECT, INSERT, UPDATE ON accounts",
            "SELECT, INSERT ON postings, voids",
        ),
    ),
    Migration(
        2,
        "the operator log, append-only",
        _SQLITE_V2,
        _POSTGRES_V2,
        grants=("SELECT, INSERT ON operator_log",),
    ),
    Migration(
        3,
        "the keys an operator's settlement took over",
        _SETTLED.format(time="TEXT"),
        _SETTLED.format(time="TIMESTAMPTZ"),
        grants=("SELECT, INSERT ON settled",),
    ),
    Migration(
        4,
        "a currency on every account and posting; system accounts per currency",
        _SQLITE_V4,
        _POSTGRES_V4,
    ),
)

#: The version this code reads and writes: the last step's.
SCHEMA_VERSION = MIGRATIONS[-1].version

#: What the refusals tell a person to run.
MIGRATE_COMMAND = (
    "run `saga-transfer migrate` (or `python starter.py migrate`) as the schema's owner"
)


def steps_after(version: int) -> tuple[Migration, ...]:
    """The steps that take a ledger at `version` (0: none yet) to `SCHEMA_VERSION`."""
    return tuple(step for step in MIGRATIONS if step.version > version)


@dataclass(frozen=True)
class MigrationReport:
    """What `migrate` did to one ledger.

    Attributes:
        ledger: The ledger, as it may be shown (no password).
        before: Its version before; None if it had no schema.
        after: Its version now.
    """

    ledger: str
    before: int | None
    after: int

    @property
    def action(self) -> str:
        """``created``, ``upgraded`` or ``current``."""
        if self.before is None:
            return "created"
        return "current" if self.before == self.after else "upgraded"

    def describe(self) -> str:
        """``created at version 3``, ``upgraded 2 -> 3`` or ``already at version 3``."""
        if self.before is None:
            return f"created at version {self.after}"
        if self.before == self.after:
            return f"already at version {self.after}"
        return f"upgraded {self.before} -> {self.after}"


def require_current(found: int | None, ledger: str) -> None:
    """Refuse a ledger whose schema is missing, older or newer than `SCHEMA_VERSION`.

    Args:
        found: The ledger's version; None if it has no schema.
        ledger: The ledger as it may be shown (no password).

    Raises:
        LedgerSchemaMismatch: One line saying what to run.
    """
    if found == SCHEMA_VERSION:
        return
    if found is None:
        raise LedgerSchemaMismatch(
            f"ledger at {ledger} has no schema yet, this code needs version "
            f"{SCHEMA_VERSION}: {MIGRATE_COMMAND}"
        )
    require_known(found, ledger)
    raise LedgerSchemaMismatch(
        f"ledger schema at {ledger} is version {found}, this code needs {SCHEMA_VERSION}: "
        f"{MIGRATE_COMMAND}"
    )


def require_known(found: int, ledger: str) -> None:
    """Refuse a version this code cannot migrate: newer than it knows, or below 1.

    Raises:
        LedgerSchemaMismatch: One line; a newer schema means this build is
            the older one (a rolling upgrade not finished): run the newer build.
    """
    if found > SCHEMA_VERSION:
        raise LedgerSchemaMismatch(
            f"ledger schema at {ledger} is version {found}, newer than this code's "
            f"{SCHEMA_VERSION}: this build is older than the ledger (an upgrade under way?); "
            f"run a build that knows version {found}"
        )
    if found < 1:
        raise LedgerSchemaMismatch(
            f"ledger at {ledger} has schema version {found}, which no build wrote: "
            "it is not a ledger of ours, or was changed by hand"
        )
