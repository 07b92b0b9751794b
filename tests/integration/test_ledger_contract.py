"""The ledger contract: every store must pass these (SQLite today; PostgreSQL next)."""

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ledger import (
    AccountClosed,
    AccountExists,
    AccountFrozen,
    AccountNotCustomer,
    AccountNotEmpty,
    AccountNotFound,
    AccountStatusConflict,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAccountId,
    InvalidAmount,
    InvalidMemo,
    InvalidOwner,
    LedgerStore,
    PostingKind,
    StepVoided,
    open_store,
)
from ledger.postgres import PostgresLedgerStore
from tests.conftest import OPENING, balances, opening_balances, postgres_schema_url

StoreFactory = Callable[[], LedgerStore]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory for stores of one kind, all on the same (fresh) database."""
    if request.param == "postgres":
        url = postgres_schema_url(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    opened: list[LedgerStore] = []

    def make() -> LedgerStore:
        store = open_store(url)
        opened.append(store)
        return store

    yield make
    if isinstance(opened[0] if opened else None, PostgresLedgerStore):
        opened[0].drop_schema()  # type: ignore[attr-defined]
    for store in opened:
        store.close()


@pytest.fixture
def ledger(make_store: StoreFactory) -> LedgerStore:
    store = make_store()
    for account_id, (owner, balance) in OPENING.items():
        store.open_account(account_id, owner, Decimal(balance))
    return store


def test_opening_balances_come_from_external_and_sum_to_zero(ledger: LedgerStore) -> None:
    """Opening deposits are postings from EXTERNAL; the ledger sums to zero."""
    assert opening_balances() == balances(ledger)
    openings = [r for r in ledger.receipts() if r.kind == PostingKind.OPENING]
    assert {"ACC-001", "ACC-002", "ACC-003"} == {r.to_account for r in openings}
    assert {"EXTERNAL"} == {r.from_account for r in openings}


def test_list_accounts_shows_every_kind(ledger: LedgerStore) -> None:
    """The snapshot includes clearing and external, each with its kind."""
    kinds = {a.id: a.kind.value for a in ledger.list_accounts()}
    assert {
        "CLEARING": "clearing",
        "EXTERNAL": "external",
        "ACC-001": "customer",
    }.items() <= kinds.items()


def test_debit_then_credit_moves_money_through_clearing(ledger: LedgerStore) -> None:
    """A debit parks the amount in clearing; the credit takes it out again."""
    ledger.debit("t1/debit", "ACC-001", Decimal("150.00"))
    assert Decimal("150.00") == balances(ledger)["CLEARING"]
    ledger.credit("t1/credit", "ACC-002", Decimal("150.00"))
    expected = opening_balances() | {"ACC-001": Decimal("850.00"), "ACC-002": Decimal("650.00")}
    assert expected == balances(ledger)


def test_reapplying_a_key_returns_the_first_receipt_and_moves_nothing(ledger: LedgerStore) -> None:
    """Idempotency: the same key twice is one posting."""
    first = ledger.debit("t1/debit", "ACC-001", Decimal("100"))
    again = ledger.debit("t1/debit", "ACC-001", Decimal("100"))
    assert (first.key, first.amount, first.posted_at, False) == (
        again.key,
        again.amount,
        again.posted_at,
        first.replayed,
    )
    assert again.replayed
    assert Decimal("900.00") == balances(ledger)["ACC-001"]
    assert 1 == sum(1 for r in ledger.receipts() if r.key == "t1/debit")


def test_reusing_a_key_for_a_different_posting_is_refused(ledger: LedgerStore) -> None:
    """A key names one movement; another amount under it is a caller bug."""
    ledger.debit("t1/debit", "ACC-001", Decimal("100"))
    with pytest.raises(IdempotencyConflict):
        ledger.debit("t1/debit", "ACC-001", Decimal("101"))
    with pytest.raises(IdempotencyConflict):
        ledger.credit("t1/debit", "ACC-001", Decimal("100"))
    assert Decimal("900.00") == balances(ledger)["ACC-001"]


def test_insufficient_funds_says_balance_and_amount_and_moves_nothing(ledger: LedgerStore) -> None:
    """The message is `Insufficient funds: <balance> < <amount>`."""
    with pytest.raises(InsufficientFunds) as info:
        ledger.debit("t1/debit", "ACC-002", Decimal("1000"))
    assert "Insufficient funds: 500.00 < 1000.00" == str(info.value)
    assert (Decimal("500.00"), Decimal("1000.00")) == (info.value.balance, info.value.amount)
    assert opening_balances() == balances(ledger)
    assert ledger.find_receipt("t1/debit") is None


def test_a_customer_can_be_debited_to_exactly_zero(ledger: LedgerStore) -> None:
    """The whole balance may leave; a cent more may not."""
    ledger.debit("t1/debit", "ACC-002", Decimal("500.00"))
    with pytest.raises(InsufficientFunds):
        ledger.debit("t2/debit", "ACC-002", Decimal("0.01"))
    assert Decimal("0.00") == balances(ledger)["ACC-002"]


@pytest.mark.parametrize("operation", ["debit", "credit"])
def test_unknown_account_is_refused(ledger: LedgerStore, operation: str) -> None:
    """Debit or credit of a missing account raises AccountNotFound and moves nothing."""
    ledger.debit("setup/debit", "ACC-001", Decimal("10"))
    before = balances(ledger)
    with pytest.raises(AccountNotFound, match="Account not found: ACC-999"):
        getattr(ledger, operation)("t1/x", "ACC-999", Decimal("10"))
    assert before == balances(ledger)


def test_system_accounts_cannot_be_debited_or_credited_directly(ledger: LedgerStore) -> None:
    """Transfers move money between customer accounts only."""
    with pytest.raises(AccountNotCustomer):
        ledger.debit("t1/debit", "EXTERNAL", Decimal("10"))
    with pytest.raises(AccountNotCustomer):
        ledger.credit("t1/credit", "CLEARING", Decimal("10"))


def test_reversing_a_debit_refunds_it_once(ledger: LedgerStore) -> None:
    """A reversal posts the opposite movement; reversing again is a replay."""
    ledger.debit("t1/debit", "ACC-001", Decimal("200"))
    reversal = ledger.reverse("t1/reverse_debit", original_key="t1/debit")
    again = ledger.reverse("t1/reverse_debit", original_key="t1/debit")
    assert (PostingKind.REVERSAL, "CLEARING", "ACC-001", Decimal("200.00")) == (
        reversal.kind,
        reversal.from_account,
        reversal.to_account,
        reversal.amount,
    )
    assert (True, "t1/debit") == (again.replayed, again.reverses)
    assert opening_balances() == balances(ledger)


def test_a_posting_cannot_be_reversed_under_two_keys(ledger: LedgerStore) -> None:
    """One reversal per posting: a second key is a conflict, not a second refund."""
    ledger.debit("t1/debit", "ACC-001", Decimal("200"))
    ledger.reverse("t1/reverse_debit", original_key="t1/debit")
    with pytest.raises(IdempotencyConflict):
        ledger.reverse("t1/other", original_key="t1/debit")
    assert opening_balances() == balances(ledger)


def test_reversing_a_key_that_never_applied_voids_it(ledger: LedgerStore) -> None:
    """Void then late original: the original is refused, balances intact."""
    void = ledger.reverse("t1/reverse_debit", original_key="t1/debit")
    assert (PostingKind.VOID, Decimal("0.00"), "t1/debit") == (
        void.kind,
        void.amount,
        void.reverses,
    )
    with pytest.raises(StepVoided):
        ledger.debit("t1/debit", "ACC-001", Decimal("100"))
    assert opening_balances() == balances(ledger)
    replay = ledger.reverse("t1/reverse_debit", original_key="t1/debit")
    assert (True, PostingKind.VOID) == (replay.replayed, replay.kind)
    with pytest.raises(IdempotencyConflict):
        ledger.reverse("t1/second_void", original_key="t1/debit")


def test_taking_back_a_spent_credit_is_refused(ledger: LedgerStore) -> None:
    """Reversing a credit the customer already spent cannot take them below zero."""
    ledger.debit("t1/debit", "ACC-001", Decimal("300"))
    ledger.credit("t1/credit", "ACC-002", Decimal("300"))
    ledger.debit("t2/debit", "ACC-002", Decimal("700"))
    with pytest.raises(InsufficientFunds, match=r"100\.00 < 300\.00"):
        ledger.reverse("t1/reverse_credit", original_key="t1/credit")
    assert Decimal("100.00") == balances(ledger)["ACC-002"]


def test_closed_accounts_take_no_postings(ledger: LedgerStore) -> None:
    """Only an empty account closes; then debits, credits and refunds to it are refused."""
    with pytest.raises(AccountNotEmpty):
        ledger.close_account("ACC-003")
    ledger.open_account("ACC-004", "Dave")
    ledger.close_account("ACC-004")
    with pytest.raises(AccountClosed):
        ledger.credit("t1/credit", "ACC-004", Decimal("1"))
    with pytest.raises(AccountClosed):
        ledger.debit("t1/debit", "ACC-004", Decimal("1"))
    assert "closed" == ledger.get_account("ACC-004").status


def test_opening_an_existing_account_is_refused(ledger: LedgerStore) -> None:
    """Account numbers are unique."""
    with pytest.raises(AccountExists):
        ledger.open_account("ACC-001", "Mallory", Decimal("1000000"))
    assert opening_balances() == balances(ledger)


@pytest.mark.parametrize(
    ("account_id", "owner", "balance", "error"),
    [
        ("", "Eve", "0", InvalidAccountId),
        ("ACC 005", "Eve", "0", InvalidAccountId),
        ("ACC-005'; DROP TABLE accounts; --", "Eve", "0", InvalidAccountId),
        ("ACC-005", "", "0", InvalidOwner),
        ("ACC-005", "Eve\x00", "0", InvalidOwner),
        ("ACC-005", "E" * 201, "0", InvalidOwner),
        ("ACC-005", "Eve", "-1", InvalidAmount),
        ("ACC-005", "Eve", "1.234", InvalidAmount),
    ],
)
def test_bad_account_input_is_rejected(
    ledger: LedgerStore, account_id: str, owner: str, balance: str, error: type[Exception]
) -> None:
    """Bad numbers, owners and balances open nothing."""
    with pytest.raises(error):
        ledger.open_account(account_id, owner, Decimal(balance))
    assert 5 == len(ledger.list_accounts())


def test_owner_names_are_stored_verbatim(ledger: LedgerStore) -> None:
    """Quotes and unusual Unicode in a name are data, not SQL."""
    name = 'O\'Brien "Bobby" Ünïcødé 李; DROP TABLE postings; --'
    ledger.open_account("ACC-006", name, Decimal("1"))
    assert name == ledger.get_account("ACC-006").owner
    assert 6 == len(ledger.list_accounts())


def test_two_stores_on_one_database_see_the_same_ledger(make_store: StoreFactory) -> None:
    """A second store (another worker process) sees the first one's postings."""
    first, second = make_store(), make_store()
    first.open_account("ACC-010", "Zoe", Decimal("10"))
    second.debit("t/debit", "ACC-010", Decimal("10"))
    assert Decimal("0.00") == first.get_account("ACC-010").balance


def test_concurrent_debits_never_overdraw_or_lose_an_update(ledger: LedgerStore) -> None:
    """Many threads debiting one account: exactly the affordable ones succeed."""
    threads, per_thread, amount = 8, 25, Decimal("7.00")  # 200 tries of 7.00 from 1000.00
    results: list[str] = []
    lock = threading.Lock()

    def hammer(n: int) -> None:
        for i in range(per_thread):
            try:
                ledger.debit(f"c{n}-{i}/debit", "ACC-001", amount)
                outcome = "ok"
            except InsufficientFunds:
                outcome = "refused"
            with lock:
                results.append(outcome)

    workers = [threading.Thread(target=hammer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    succeeded = results.count("ok")
    assert 142 == succeeded  # floor(1000 / 7)
    after = balances(ledger)
    assert Decimal("1000.00") - succeeded * amount == after["ACC-001"]
    assert succeeded * amount == after["CLEARING"]


def test_frozen_accounts_take_no_postings_until_unfrozen(ledger: LedgerStore) -> None:
    """Freeze refuses debits, credits and refunds; unfreeze lets the same refund through."""
    ledger.debit("t1/debit", "ACC-001", Decimal("100"))
    ledger.freeze_account("ACC-001")
    assert "frozen" == ledger.get_account("ACC-001").status
    with pytest.raises(AccountFrozen):
        ledger.debit("t2/debit", "ACC-001", Decimal("1"))
    with pytest.raises(AccountFrozen):
        ledger.credit("t3/credit", "ACC-001", Decimal("1"))
    with pytest.raises(AccountFrozen, match="Account is frozen: ACC-001"):
        ledger.reverse("t1/reverse_debit", original_key="t1/debit")
    assert Decimal("100.00") == balances(ledger)["CLEARING"]
    with pytest.raises(AccountStatusConflict):
        ledger.freeze_account("ACC-001")
    ledger.unfreeze_account("ACC-001")
    ledger.reverse("t1/reverse_debit", original_key="t1/debit")
    assert opening_balances() == balances(ledger)


def test_manual_settlement_moves_what_a_transfer_left_in_clearing(ledger: LedgerStore) -> None:
    """An operator's settlement moves exactly the stuck amount, once, with the note."""
    ledger.debit("t1/debit", "ACC-001", Decimal("80"))
    ledger.debit("t2/debit", "ACC-002", Decimal("5"))  # another transfer's money in flight
    keys = ["t1/debit", "t1/credit", "t1/reverse_debit", "t1/reverse_credit"]
    note = "Refunded by cheque #1234 after the account was frozen"
    first = ledger.settle_manually("t1/settle", source_keys=keys, to_account="EXTERNAL", memo=note)
    again = ledger.settle_manually("t1/settle", source_keys=keys, to_account="EXTERNAL", memo=note)
    assert first is not None
    assert again is not None
    assert (PostingKind.MANUAL, "CLEARING", "EXTERNAL", Decimal("80.00"), note) == (
        first.kind,
        first.from_account,
        first.to_account,
        first.amount,
        first.memo,
    )
    assert again.replayed
    after = balances(ledger)
    assert (Decimal("5.00"), Decimal("920.00")) == (after["CLEARING"], after["ACC-001"])
    with pytest.raises(IdempotencyConflict):
        ledger.settle_manually("t1/settle", source_keys=keys, to_account="ACC-003", memo=note)
    with pytest.raises(InvalidMemo):
        ledger.settle_manually("t3/settle", source_keys=keys, to_account="EXTERNAL", memo=" ")


def test_manual_settlement_of_nothing_moves_nothing(ledger: LedgerStore) -> None:
    """A transfer whose debit and credit both applied holds nothing in clearing."""
    ledger.debit("t1/debit", "ACC-001", Decimal("80"))
    ledger.credit("t1/credit", "ACC-002", Decimal("80"))
    keys = ["t1/debit", "t1/credit"]
    assert (
        ledger.settle_manually("t1/settle", source_keys=keys, to_account="ACC-001", memo="ok")
        is None
    )
    assert Decimal("0.00") == balances(ledger)["CLEARING"]
