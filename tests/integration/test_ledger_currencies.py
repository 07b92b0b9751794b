"""Currencies in the ledger, on both stores: opening, posting, sums and audit per currency.

Mixing is refused by the ledger (defence in depth, not only the starter) and
by the tables themselves; a version-3 ledger with transfers in it upgrades in
place, audits clean, and its transfer in flight still settles.
"""

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from ledger import (
    AccountExists,
    CurrencyMismatch,
    InvalidAmount,
    LedgerStore,
    UnknownCurrency,
    migrate,
    open_store,
)
from ledger.audit import audit
from ledger.postgres import split_schema
from ledger.schema import MIGRATIONS
from tests.support.ledgers import balances, open_accounts, postgres_schema_url


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh ledger's URL (not created yet), SQLite then PostgreSQL; dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    url = postgres_schema_url(request.getfixturevalue("postgres_url"))
    yield url
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[LedgerStore]:
    """Alice, Bob, Charlie in USD; Dora and Emil in EUR; Fumi in JPY; Hamad in BHD."""
    store = open_accounts(open_store(ledger_url, migrate=True))
    store.open_account("EUR-001", "Dora", Decimal("300.00"), currency="EUR")
    store.open_account("EUR-002", "Emil", Decimal("20"), currency="eur")
    store.open_account("JPY-001", "Fumi", Decimal("50000"), currency="JPY")
    store.open_account("BHD-001", "Hamad", Decimal("12.345"), currency="BHD")
    yield store
    store.close()


def _execute(url: str, statement: str, *params: object) -> None:
    """Run one statement on the ledger's database from outside the store."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(statement.replace("%s", "?"), params)
            conn.commit()
        return
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        conn.execute(statement, params)


def test_accounts_open_in_their_currency_with_system_accounts_per_currency(
    ledger: LedgerStore,
) -> None:
    """Each currency gets its own CLEARING and EXTERNAL; every currency sums to zero alone."""
    accounts = ledger.list_accounts()
    system = sorted((a.id, a.currency) for a in accounts if a.kind != "customer")
    assert [
        (account_id, currency)
        for account_id in ("CLEARING", "EXTERNAL")
        for currency in ("BHD", "EUR", "JPY", "USD")
    ] == system
    shown = {a.id: (a.currency, str(a.balance)) for a in accounts if a.kind == "customer"}
    assert ("EUR", "20.00") == shown["EUR-002"]
    assert ("JPY", "50000") == shown["JPY-001"]
    assert ("BHD", "12.345") == shown["BHD-001"]
    assert ("USD", "1000.00") == shown["ACC-001"]
    assert Decimal("-320.00") == ledger.get_account("EXTERNAL", currency="EUR").balance
    assert Decimal("-2250.00") == ledger.get_account("EXTERNAL").balance  # the default: USD
    balances(ledger)  # sums to zero per currency


def test_an_unknown_currency_or_an_id_taken_in_another_currency_is_refused(
    ledger: LedgerStore,
) -> None:
    """Unknown codes in one line; one id is one account whatever its currency."""
    with pytest.raises(UnknownCurrency, match=r"^Unknown currency 'XYZ'\: use an ISO 4217 code"):
        ledger.open_account("X-1", "Xavier", Decimal("1"), currency="XYZ")
    with pytest.raises(AccountExists):
        ledger.open_account("ACC-001", "Alice again", currency="EUR")
    for system in ("CLEARING", "EXTERNAL"):
        with pytest.raises(AccountExists):
            ledger.open_account(system, "Mallory", currency="GBP")
    with pytest.raises(InvalidAmount, match=r"\(JPY has none\)"):
        ledger.open_account("JPY-009", "Ichiro", Decimal("10.5"), currency="JPY")
    assert {"X-1", "JPY-009"}.isdisjoint(a.id for a in ledger.list_accounts())
    assert "GBP" not in {a.currency for a in ledger.list_accounts()}


def test_postings_move_money_through_their_own_currencys_clearing(ledger: LedgerStore) -> None:
    """A EUR transfer and a BHD one: receipts carry the currency; USD clearing never moves."""
    debit = ledger.debit("t-eur/debit", "EUR-001", Decimal("120.5"), currency="EUR")
    assert Decimal("120.50") == ledger.get_account("CLEARING", currency="EUR").balance
    credit = ledger.credit("t-eur/credit", "EUR-002", Decimal("120.50"), currency="EUR")
    ledger.debit("t-bhd/debit", "BHD-001", Decimal("2.005"), counterpart="ACC-404")
    ledger.reverse("t-bhd/reverse_debit", original_key="t-bhd/debit")
    assert ("EUR", "EUR", "120.50") == (debit.currency, credit.currency, str(credit.amount))
    got = balances(ledger)
    assert (Decimal("179.50"), Decimal("140.50")) == (got["EUR-001"], got["EUR-002"])
    assert Decimal("12.345") == got["BHD-001"]
    assert Decimal("0") == got["CLEARING EUR"] == got["CLEARING BHD"] == got["CLEARING"]
    receipts = {r.key: r for r in ledger.receipts()}
    assert ("BHD", Decimal("2.005")) == (
        receipts["t-bhd/reverse_debit"].currency,
        receipts["t-bhd/reverse_debit"].amount,
    )
    report = audit(*ledger.snapshot())
    assert [] == report.findings
    assert {"USD": 0, "EUR": 0, "JPY": 0, "BHD": 0} == report.clearing


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s: s.debit("t/debit", "EUR-001", Decimal("5"), currency="USD"),
            "the transfer is in USD, EUR-001 is in EUR",
        ),
        (
            lambda s: s.debit("t/debit", "EUR-001", Decimal("5"), counterpart="ACC-002"),
            "EUR-001 is in EUR, ACC-002 in USD",
        ),
        (
            lambda s: s.credit("t/credit", "JPY-001", Decimal("5"), currency="USD"),
            "the transfer is in USD, JPY-001 is in JPY",
        ),
        (
            lambda s: s.debit("t/debit", "JPY-001", Decimal("15.5")),
            "Amount has decimal places (JPY has none): 15.5",
        ),
        (
            lambda s: s.debit("t/debit", "ACC-001", Decimal("12.345")),
            "more than two decimal places (USD has two)",
        ),
    ],
    ids=["debit-asked", "debit-counterpart", "credit-asked", "jpy-places", "usd-places"],
)
def test_the_ledger_refuses_to_mix_currencies_before_posting_anything(
    ledger: LedgerStore, call: object, message: str
) -> None:
    """Defence in depth: the ledger itself refuses, with both currencies; nothing moves."""
    before = balances(ledger)
    with pytest.raises((CurrencyMismatch, InvalidAmount)) as refused:
        call(ledger)  # type: ignore[operator]
    assert message in str(refused.value)
    assert before == balances(ledger)
    assert [] == [r for r in ledger.receipts() if r.key.startswith("t/")]


def test_the_tables_refuse_a_posting_between_two_currencies(
    ledger: LedgerStore, ledger_url: str
) -> None:
    """Even SQL written by hand cannot post USD into a EUR account: the keys refuse it."""
    statement = (
        "INSERT INTO postings (key, kind, amount, currency, from_account, to_account, posted_at)"
        " VALUES (%s, 'manual', 100, 'USD', 'ACC-001', 'EUR-001', '2025-01-01T00:00:00+00:00')"
    )
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.ForeignKeyViolation)):
        _execute(ledger_url, statement, "hand/1")
    assert None is ledger.find_receipt("hand/1")


def test_a_settlement_stays_in_the_transfers_currency(ledger: LedgerStore) -> None:
    """EUR left in clearing goes to EUR's EXTERNAL, or a EUR customer; never a USD one."""
    ledger.debit("t-set/debit", "EUR-001", Decimal("10.00"))
    with pytest.raises(CurrencyMismatch, match="ACC-002 is in USD"):
        ledger.settle_manually(
            "t-set/settle_manually", source_keys=["t-set/debit"], to_account="ACC-002", memo="x"
        )
    receipt = ledger.settle_manually(
        "t-set/settle_manually", source_keys=["t-set/debit"], to_account="EXTERNAL", memo="cheque"
    )
    assert receipt is not None
    assert ("EUR", "CLEARING", "EXTERNAL") == (
        receipt.currency,
        receipt.from_account,
        receipt.to_account,
    )
    assert Decimal("-310.00") == ledger.get_account("EXTERNAL", currency="EUR").balance
    assert [] == audit(*ledger.snapshot()).findings


def test_the_audit_finds_a_transfer_that_mixes_currencies(ledger: LedgerStore) -> None:
    """A transfer whose postings are in two currencies is a finding, whatever the balances."""
    ledger.debit("t-mix/debit", "ACC-001", Decimal("10.00"))
    ledger.credit("t-mix/credit", "EUR-002", Decimal("10.00"))  # no currency asked: EUR's own
    accounts, receipts = ledger.snapshot()
    assert [
        "t-mix: postings mix currencies: ['EUR', 'USD']",
        "clearing holds -10.00 EUR but transfers in flight account for 0",
        "clearing holds 10.00 USD but transfers in flight account for 0",
    ] == audit(accounts, receipts).findings
    relabelled = [replace(r, currency="USD") if r.key == "t-mix/credit" else r for r in receipts]
    assert any("which is not held in USD" in f for f in audit(accounts, relabelled).findings)


#: A version-3 ledger as the build before currencies left it: Alice and Bob,
#: a completed transfer, a compensated one, a voided one, and one in flight.
_TIME = "2025-01-02T03:04:05.000000+00:00"
_V3_ROWS = [
    "INSERT INTO accounts (id, owner, kind, balance, status, created_at) VALUES "
    f"('CLEARING', 'Transfers in flight', 'clearing', 2500, 'open', '{_TIME}'), "
    f"('EXTERNAL', 'Outside world', 'external', -15000, 'open', '{_TIME}'), "
    f"('ACC-001', 'Alice', 'customer', 6500, 'open', '{_TIME}'), "
    f"('ACC-002', 'Bob', 'customer', 6000, 'open', '{_TIME}')",
    "INSERT INTO postings (key, kind, amount, from_account, to_account, reverses, posted_at,"
    " memo) VALUES "
    f"('open/ACC-001', 'opening', 10000, 'EXTERNAL', 'ACC-001', NULL, '{_TIME}', NULL), "
    f"('open/ACC-002', 'opening', 5000, 'EXTERNAL', 'ACC-002', NULL, '{_TIME}', NULL), "
    f"('t1/debit', 'debit', 1000, 'ACC-001', 'CLEARING', NULL, '{_TIME}', 'm1'), "
    f"('t1/credit', 'credit', 1000, 'CLEARING', 'ACC-002', NULL, '{_TIME}', 'm1'), "
    f"('t2/debit', 'debit', 700, 'ACC-001', 'CLEARING', NULL, '{_TIME}', 'm2'), "
    f"('t2/reverse_debit', 'reversal', 700, 'CLEARING', 'ACC-001', 't2/debit', '{_TIME}', NULL),"
    f" ('t3/debit', 'debit', 2500, 'ACC-001', 'CLEARING', NULL, '{_TIME}', "
    "'ACC-001 -> ACC-002 25.00')",
    f"INSERT INTO voids (key, reversal_key, posted_at) VALUES "
    f"('t4/debit', 't4/reverse_debit', '{_TIME}')",
]


def test_a_version_3_ledger_with_transfers_upgrades_audits_clean_and_settles_in_flight(
    ledger_url: str,
) -> None:
    """Accounts and postings take the upgrade's currency; t3 (in flight) still completes."""
    if ledger_url.startswith("sqlite"):
        path = ledger_url.removeprefix("sqlite:///")
        script = "".join(step.script("sqlite", "USD") for step in MIGRATIONS[:3])
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.executescript(f"{script};{';'.join(_V3_ROWS)}; PRAGMA user_version = 3;")
    else:
        conninfo, schema = split_schema(ledger_url)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'SET search_path = "{schema}"')
            for step in MIGRATIONS[:3]:
                conn.execute(step.script("postgres", "USD"))
            conn.execute("INSERT INTO ledger_schema (version) VALUES (3)")
            for row in _V3_ROWS:
                conn.execute(row)
    report, _ = migrate(ledger_url, currency="GBP")
    assert "upgraded 3 -> 4" == report.describe()
    store = open_store(ledger_url, currency="GBP")
    try:
        assert {"GBP"} == {a.currency for a in store.list_accounts()}
        assert {"GBP"} == {r.currency for r in store.receipts() if r.kind != "void"}
        before = audit(*store.snapshot())
        assert [] == before.findings
        assert {"completed": 1, "compensated": 1, "rejected": 1, "in_flight": 1} == before.outcomes
        # The transfer in flight: its request names no currency, the account's applies.
        credit = store.credit(
            "t3/credit", "ACC-002", Decimal("25.00"), transfer="ACC-001 -> ACC-002 25.00"
        )
        assert ("GBP", Decimal("85.00")) == (
            credit.currency,
            store.get_account("ACC-002").balance,
        )
        store.open_account("USD-001", "Uma", Decimal("5.00"), currency="USD")
        after = audit(*store.snapshot())
        assert [] == after.findings
        assert {"GBP": 0, "USD": 0} == after.clearing
    finally:
        store.close()
