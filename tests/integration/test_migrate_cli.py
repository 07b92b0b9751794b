"""`starter.py migrate`: what it did to each ledger, in text and JSON; every bank's ledger."""

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.cli import starter_main
from ledger import SCHEMA_VERSION, LedgerSchemaMismatch, open_store
from ledger.postgres import split_schema
from ledger.shown import redact_url
from tests.support.ledgers import postgres_schema_url


@pytest.fixture
def ledger_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL URL for a schema nobody has created; dropped (with any bank's) after."""
    url = postgres_schema_url(postgres_url)
    yield url
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in (schema, f"{schema}_north", f"{schema}_south"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The starter's environment: a data directory of its own, no banks."""
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRANSFER_BANKS", raising=False)
    return monkeypatch


def test_migrate_creates_then_finds_the_schema_current(
    cli_env: pytest.MonkeyPatch, ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """First run creates the schema, the second says it is current; workers can open it then."""
    cli_env.setenv("LEDGER_URL", ledger_url)
    with pytest.raises(LedgerSchemaMismatch, match="saga-transfer migrate"):
        open_store(ledger_url)
    assert 0 == starter_main(["migrate"])
    assert 0 == starter_main(["migrate"])
    shown = redact_url(ledger_url)
    assert (
        f"Ledger {shown}: created at version {SCHEMA_VERSION}\n"
        f"Ledger {shown}: already at version {SCHEMA_VERSION}\n"
    ) == capsys.readouterr().out
    open_store(ledger_url).close()


def test_migrate_json_reports_each_ledger(
    cli_env: pytest.MonkeyPatch, ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json`: one document on stdout, the progress lines on stderr."""
    cli_env.setenv("LEDGER_URL", ledger_url)
    assert 0 == starter_main(["migrate", "--json"])
    captured = capsys.readouterr()
    entry = {
        "ledger": redact_url(ledger_url),
        "action": "created",
        "before": None,
        "after": SCHEMA_VERSION,
        "grants": [],
    }
    assert {"ledgers": [entry]} == json.loads(captured.out)
    assert "created at version" in captured.err


def test_migrate_migrates_every_banks_ledger(
    cli_env: pytest.MonkeyPatch, ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With TRANSFER_BANKS each bank's ledger is migrated, its clearing account a bank's."""
    cli_env.setenv("TRANSFER_BANKS", "north,south")
    cli_env.setenv("LEDGER_URL", ledger_url + "_{bank}")
    assert 0 == starter_main(["migrate"])
    lines = capsys.readouterr().out.splitlines()
    assert [
        f"Bank {bank}, ledger {redact_url(ledger_url)}_{bank}: created at version {SCHEMA_VERSION}"
        for bank in ("north", "south")
    ] == lines
    store = open_store(f"{ledger_url}_south")
    try:
        assert "Clearing and settlement" == store.get_account("CLEARING").owner
    finally:
        store.close()


def test_migrate_refuses_a_grant_for_sqlite_before_touching_it(
    cli_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SQLite ledger has no roles: one line, exit 2, no file made."""
    cli_env.setenv("LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    assert 2 == starter_main(["migrate", "--grant", "saga_worker"])
    assert (
        "error: a SQLite ledger has no roles to grant: --grant is for PostgreSQL\n"
        == capsys.readouterr().err
    )
    assert not (tmp_path / "ledger.db").exists()
