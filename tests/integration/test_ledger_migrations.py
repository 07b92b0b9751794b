"""Schema versions: who migrates (SQLite itself, PostgreSQL only `migrate`), and from what."""

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import errors as pg_errors

from ledger import (
    SCHEMA_VERSION,
    LedgerSchemaMismatch,
    LedgerStore,
    StepSettled,
    migrate,
    open_store,
)
from ledger.audit import audit
from ledger.postgres import split_schema
from ledger.schema import MIGRATIONS
from ledger.shown import redact_url
from tests.support.ledgers import balances, postgres_schema_url

OldLedger = Callable[[int], str]

_TIME = "2025-01-02T03:04:05.000000+00:00"
_ACCOUNT = "INSERT INTO accounts (id, owner, kind, balance, status, created_at) VALUES "
#: Alice's account and a debit of hers still in clearing, as any version since 1 holds them.
_V1_ROWS = [
    f"{_ACCOUNT}('CLEARING', 'Transfers in flight', 'clearing', 2500, 'open', '{_TIME}')",
    f"{_ACCOUNT}('EXTERNAL', 'Outside world', 'external', -10000, 'open', '{_TIME}')",
    f"{_ACCOUNT}('ACC-001', 'Alice', 'customer', 7500, 'open', '{_TIME}')",
    "INSERT INTO postings (key, kind, amount, from_account, to_account, posted_at) VALUES "
    f"('open/ACC-001', 'opening', 10000, 'EXTERNAL', 'ACC-001', '{_TIME}'), "
    f"('t0/debit', 'debit', 2500, 'ACC-001', 'CLEARING', '{_TIME}')",
]
#: An operator's retry, from version 2 on.
_V2_ROWS = [
    "INSERT INTO operator_log (key, transfer_id, action, operator, note, recorded_at) VALUES "
    f"('t0/operator/u0', 't0', 'retry', 'carol', NULL, '{_TIME}')"
]

MIGRATE_HINT = "run `saga-transfer migrate` (or `python starter.py migrate`) as the schema's owner"


@pytest.fixture(params=["sqlite", "postgres"])
def old_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OldLedger]:
    """Makes a ledger as an earlier build left it at a version, holding Alice and a debit."""
    made: list[str] = []

    def make(version: int) -> str:
        # Rows as a version-3 build wrote them (no currency), then any later steps.
        steps, later = MIGRATIONS[: min(version, 3)], MIGRATIONS[3:version]
        rows = _V1_ROWS + (_V2_ROWS if version >= 2 else [])
        if request.param == "sqlite":
            path = tmp_path / f"v{version}-{len(made)}.db"
            script = "".join(step.script("sqlite", "USD") for step in steps) + ";".join(rows)
            script += ";" + "".join(step.script("sqlite", "USD") for step in later)
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.executescript(f"{script}; PRAGMA user_version = {version};")
            made.append(f"sqlite:///{path}")
            return made[-1]
        url = postgres_schema_url(request.getfixturevalue("postgres_url"))
        with _owner_connection(url, create=True) as conn:
            for step in steps:
                conn.execute(step.script("postgres", "USD"))
            conn.execute("INSERT INTO ledger_schema (version) VALUES (%s)", (version,))
            for row in rows:
                conn.execute(row)
            for step in later:
                conn.execute(step.script("postgres", "USD"))
        made.append(url)
        return url

    yield make
    for url in made:
        if url.startswith("postgresql"):
            _drop_schema(url)


@contextlib.contextmanager
def _owner_connection(url: str, *, create: bool = False) -> Iterator[psycopg.Connection]:
    """An autocommit connection as the test server's superuser, in the URL's schema."""
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if create:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path = "{schema}"')
        yield conn


def _drop_schema(url: str) -> None:
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _version(url: str) -> int | None:
    """The version the ledger records, read from outside; None if it has no schema."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
    with _owner_connection(url) as conn:
        if conn.execute("SELECT to_regclass('ledger_schema')").fetchone() == (None,):
            return None
        row = conn.execute("SELECT version FROM ledger_schema").fetchone()
        return None if row is None else int(row[0])


def _set_version(url: str, version: int) -> None:
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute(f"PRAGMA user_version = {version}")
        return
    with _owner_connection(url) as conn:
        conn.execute("UPDATE ledger_schema SET version = %s", (version,))


def _shown(url: str) -> str:
    return url.removeprefix("sqlite:///") if url.startswith("sqlite") else redact_url(url)


def test_schema_versions_run_from_1_without_gaps() -> None:
    """Adding a version is appending a step: the list is 1..N and N is the code's version."""
    assert list(range(1, SCHEMA_VERSION + 1)) == [step.version for step in MIGRATIONS]


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_each_older_version_is_migrated_in_place_and_keeps_its_data(
    old_ledger: OldLedger, version: int
) -> None:
    """`migrate` takes a ledger from any earlier version to this one; nothing in it changes."""
    url = old_ledger(version)
    report, grants = migrate(url)
    assert (version, SCHEMA_VERSION, []) == (report.before, report.after, grants)
    assert f"upgraded {version} -> {SCHEMA_VERSION}" == report.describe()
    assert SCHEMA_VERSION == _version(url)
    store = open_store(url, migrate=False)
    try:
        assert {"ACC-001": Decimal("75.00"), "CLEARING": Decimal("25.00")}.items() <= balances(
            store
        ).items()
        assert ["open/ACC-001", "t0/debit"] == [r.key for r in store.receipts()]
        kept = ["t0/operator/u0"] if version >= 2 else []
        assert kept == [r.key for r in store.operator_actions()]
        store.reverse("t0/reverse_debit", original_key="t0/debit")
        store.record_operator_action(
            "t0/operator/u1", transfer_id="t0", action="retry", operator="alice", note=None
        )
        assert Decimal("100.00") == store.get_account("ACC-001").balance
        keys = ["t0/debit", "t0/reverse_debit"]
        assert None is store.settle_manually(
            "t0/settle", source_keys=keys, to_account="EXTERNAL", memo="checked"
        )
        with pytest.raises(StepSettled):
            store.debit("t0/debit", "ACC-001", Decimal("25"))
        assert [] == audit(*store.snapshot()).findings
    finally:
        store.close()
    again, _ = migrate(url)
    assert f"already at version {SCHEMA_VERSION}" == again.describe()


def test_an_older_ledger_opened_without_migrating_is_refused_and_left_as_it_was(
    old_ledger: OldLedger,
) -> None:
    """One line naming `migrate`; the version and the tables stay as they were."""
    url = old_ledger(SCHEMA_VERSION - 1)
    with pytest.raises(LedgerSchemaMismatch) as refused:
        open_store(url, migrate=False)
    assert (
        f"ledger schema at {_shown(url)} is version {SCHEMA_VERSION - 1}, this code needs "
        f"{SCHEMA_VERSION}: {MIGRATE_HINT}"
    ) == str(refused.value)
    assert SCHEMA_VERSION - 1 == _version(url)


def test_a_postgres_ledger_is_never_migrated_by_opening_it(postgres_url: str) -> None:
    """A new schema is refused (and not created) until `migrate` creates it; then it opens."""
    url = postgres_schema_url(postgres_url)
    try:
        with pytest.raises(LedgerSchemaMismatch) as refused:
            open_store(url)
        assert (
            f"ledger at {_shown(url)} has no schema yet, this code needs version "
            f"{SCHEMA_VERSION}: {MIGRATE_HINT}"
        ) == str(refused.value)
        with _owner_connection(url) as conn:
            schema = split_schema(url)[1]
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            assert None is found.fetchone(), "opening created the schema"
        report, _ = migrate(url, clearing_owner="Clearing and settlement")
        assert f"created at version {SCHEMA_VERSION}" == report.describe()
        store = open_store(url)
        try:
            owners = {a.id: a.owner for a in store.list_accounts()}
            assert {"CLEARING": "Clearing and settlement", "EXTERNAL": "Outside world"} == owners
            assert None is store.migration
        finally:
            store.close()
    finally:
        _drop_schema(url)


def test_a_sqlite_ledger_migrates_itself_when_opened(tmp_path: Path) -> None:
    """The embedded default needs no `migrate`; asked not to migrate, a missing file is refused."""
    path = tmp_path / "ledger.db"
    with pytest.raises(LedgerSchemaMismatch, match="has no schema yet"):
        open_store(str(path), migrate=False)
    assert not path.exists()
    store = open_store(str(path))
    assert store.migration is not None  # type: ignore[attr-defined]
    assert f"created at version {SCHEMA_VERSION}" == store.migration.describe()  # type: ignore[attr-defined]
    store.close()
    store = open_store(f"sqlite:///{path}")
    assert f"already at version {SCHEMA_VERSION}" == store.migration.describe()  # type: ignore[attr-defined]
    store.close()


def test_a_ledger_newer_than_this_code_is_refused_by_opening_and_migrating(
    old_ledger: OldLedger,
) -> None:
    """An older build meeting an upgraded ledger says so and changes nothing."""
    url = old_ledger(SCHEMA_VERSION)
    _set_version(url, SCHEMA_VERSION + 1)
    expected = (
        f"ledger schema at {_shown(url)} is version {SCHEMA_VERSION + 1}, newer than this "
        f"code's {SCHEMA_VERSION}: this build is older than the ledger (an upgrade under way?); "
        f"run a build that knows version {SCHEMA_VERSION + 1}"
    )
    for attempt in (lambda: open_store(url, migrate=False), lambda: migrate(url)):
        with pytest.raises(LedgerSchemaMismatch) as refused:
            attempt()
        assert expected == str(refused.value)
    assert SCHEMA_VERSION + 1 == _version(url)


def test_migrations_starting_together_on_a_new_schema_take_turns(postgres_url: str) -> None:
    """Eight `migrate` runs at once on one new schema: one creates it, seven find it current."""
    url = postgres_schema_url(postgres_url)
    actions: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        try:
            actions.append(migrate(url)[0].action)
        except BaseException as err:  # what the test checks
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert [] == errors
        assert ["created"] + ["current"] * 7 == sorted(actions)
    finally:
        _drop_schema(url)


# -- the runtime role ---------------------------------------------------------------------


@pytest.fixture
def runtime_role(postgres_url: str) -> Iterator[str]:
    """A login role that owns nothing: what the workers and operator commands connect as."""
    role = f"rt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    yield role
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))


#: What the runtime role must never do: change or empty the operator log, or any DDL.
FORBIDDEN = [
    "UPDATE operator_log SET note = 'changed'",
    "DELETE FROM operator_log",
    "TRUNCATE operator_log",
    "UPDATE postings SET amount = 1",
    "DELETE FROM postings",
    "ALTER TABLE operator_log DISABLE TRIGGER operator_log_append_only",
    "ALTER TABLE operator_log DISABLE TRIGGER ALL",
    "DROP TRIGGER operator_log_append_only ON operator_log",
    "DROP TABLE operator_log",
    "ALTER TABLE accounts ADD COLUMN extra INTEGER",
    "CREATE TABLE intruder (id INTEGER)",
    "UPDATE ledger_schema SET version = 1",
]


def test_the_runtime_role_runs_transfers_but_cannot_change_the_log_or_the_schema(
    postgres_url: str, runtime_role: str
) -> None:
    """Granted by `migrate --grant`, the role moves money and records operators; no more."""
    url = postgres_schema_url(postgres_url)
    runtime_url = _as_role(url, runtime_role)
    try:
        migrate(url)
        with pytest.raises(LedgerSchemaMismatch, match=r"may not use schema .* --grant ROLE"):
            open_store(runtime_url)  # not granted yet
        _, grants = migrate(url, grant_to=runtime_role)
        assert f'GRANT USAGE ON SCHEMA "{split_schema(url)[1]}" TO "{runtime_role}"' == grants[0]
        store = open_store(runtime_url)
        try:
            _run_a_transfer_and_an_operator_record(store)
        finally:
            store.close()
        conninfo, schema = split_schema(runtime_url)
        with psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}") as conn:
            assert (runtime_role,) == conn.execute("SELECT current_user").fetchone()
            for statement in FORBIDDEN:
                with pytest.raises(pg_errors.InsufficientPrivilege):
                    conn.execute(statement)
        with pytest.raises(LedgerSchemaMismatch, match="as the schema's owner"):
            migrate(runtime_url)
        assert SCHEMA_VERSION == _version(url)
        with _owner_connection(url) as conn:
            log = conn.execute("SELECT key, note FROM operator_log ORDER BY id").fetchall()
        assert [("t1/operator/u1", "refunded by cheque")] == log
    finally:
        _drop_schema(url)


def _run_a_transfer_and_an_operator_record(store: LedgerStore) -> None:
    """Every kind of ledger call a worker and the operator commands make."""
    store.open_account("ACC-001", "Alice", Decimal("100"))
    store.open_account("ACC-002", "Bob")
    store.debit("t0/debit", "ACC-001", Decimal("30"), transfer="t0")
    store.credit("t0/credit", "ACC-002", Decimal("30"), transfer="t0")
    store.debit("t1/debit", "ACC-001", Decimal("20"), transfer="t1")
    store.reverse("t1/reverse_credit", original_key="t1/credit")  # a void
    store.freeze_account("ACC-001")
    store.unfreeze_account("ACC-001")
    store.record_operator_action(
        "t1/operator/u1",
        transfer_id="t1",
        action="resolve",
        operator="carol",
        note="refunded by cheque",
    )
    store.settle_manually(
        "t1/settle_manually",
        source_keys=["t1/debit"],
        to_account="EXTERNAL",
        memo="refunded by cheque",
    )
    assert ["t1/operator/u1"] == [r.key for r in store.operator_actions("t1")]
    assert [] == audit(*store.snapshot()).findings
    assert {"ACC-001": Decimal("50.00"), "ACC-002": Decimal("30.00")}.items() <= balances(
        store
    ).items()
