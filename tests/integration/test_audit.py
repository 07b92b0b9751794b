"""The audit: a whole ledger passes; each kind of damage is named."""

from decimal import Decimal
from pathlib import Path

import pytest

from ledger import LedgerStore, open_store
from ledger.audit import audit, audit_banks


@pytest.fixture
def ledger(any_store: LedgerStore) -> LedgerStore:
    """Both stores, with one transfer of every outcome the saga produces."""
    store = any_store
    store.debit("done/debit", "ACC-001", Decimal("100"))
    store.credit("done/credit", "ACC-002", Decimal("100"))
    store.debit("undone/debit", "ACC-002", Decimal("50"))
    store.reverse("undone/reverse_credit", original_key="undone/credit")
    store.reverse("undone/reverse_debit", original_key="undone/debit")
    store.reverse("refused/reverse_debit", original_key="refused/debit")
    store.debit("flying/debit", "ACC-003", Decimal("7"))
    return store


def tamper(store: LedgerStore, statement: str, *params: object) -> None:
    """Change the database behind the ledger's back, as a bug or an intruder would."""
    with store._transaction() as conn:  # type: ignore[attr-defined]
        store._exec(conn, statement, *params)  # type: ignore[attr-defined]


def test_a_whole_ledger_has_no_findings(ledger: LedgerStore) -> None:
    """Every outcome is recognised and clearing holds exactly the transfer in flight."""
    report = audit(*ledger.snapshot())
    assert [] == report.findings
    assert {"completed": 1, "compensated": 1, "rejected": 1, "in_flight": 1} == report.outcomes
    assert {"USD": Decimal("7.00")} == report.clearing


def test_a_balance_that_disagrees_with_its_postings_is_found(ledger: LedgerStore) -> None:
    """Money conjured into a balance shows up twice: the sum and the postings disagree."""
    tamper(ledger, "UPDATE accounts SET balance = balance + 500 WHERE id = ?", "ACC-003")
    findings = audit(*ledger.snapshot()).findings
    assert "ledger does not sum to zero in USD: 5.00" in findings
    assert any(f.startswith("ACC-003 balance") for f in findings)


def test_a_credit_without_a_debit_is_found(ledger: LedgerStore) -> None:
    """A credit with no debit behind it is an invalid pattern that overdraws clearing."""
    tamper(ledger, "UPDATE postings SET key = ? WHERE key = ?", "orphan/credit", "done/credit")
    findings = audit(*ledger.snapshot()).findings
    assert "orphan: credited without a debit" in findings
    assert "orphan: took 100.00 more out of clearing than it put in" in findings


def test_clearing_money_no_transfer_accounts_for_is_found(ledger: LedgerStore) -> None:
    """Clearing must equal what the transfers in flight put there."""
    # Balances are stored in cents: 300 is 3.00.
    tamper(ledger, "UPDATE accounts SET balance = balance + 300 WHERE id = ?", "CLEARING")
    tamper(ledger, "UPDATE accounts SET balance = balance - 300 WHERE id = ?", "EXTERNAL")
    findings = audit(*ledger.snapshot()).findings
    assert "clearing holds 10.00 USD but transfers in flight account for 7.00" in findings


def test_a_step_applied_after_its_void_is_found(ledger: LedgerStore) -> None:
    """If a voided key ever applied, the audit says so."""
    tamper(ledger, "UPDATE postings SET key = ? WHERE key = ?", "refused/debit", "flying/debit")
    assert "refused: debit applied after it was voided" in audit(*ledger.snapshot()).findings


# -- what each posting may move, and which patterns the saga never produces --------


def test_a_refund_paid_to_someone_else_is_found(ledger: LedgerStore) -> None:
    """A reversal must move the money back to where it came from, not to another customer."""
    tamper(
        ledger,
        "UPDATE postings SET to_account = ? WHERE key = ?",
        "ACC-003",
        "undone/reverse_debit",
    )
    tamper(ledger, "UPDATE accounts SET balance = balance - 5000 WHERE id = ?", "ACC-002")
    tamper(ledger, "UPDATE accounts SET balance = balance + 5000 WHERE id = ?", "ACC-003")
    findings = audit(*ledger.snapshot()).findings
    assert "undone: reverse_debit moves CLEARING -> ACC-003, not back to ACC-002" in findings


def test_a_debit_that_took_no_customer_money_is_found(ledger: LedgerStore) -> None:
    """A 'debit' out of EXTERNAL pays the payee with money nobody was charged."""
    tamper(ledger, "UPDATE postings SET from_account = ? WHERE key = ?", "EXTERNAL", "done/debit")
    tamper(ledger, "UPDATE accounts SET balance = balance + 10000 WHERE id = ?", "ACC-001")
    tamper(ledger, "UPDATE accounts SET balance = balance - 10000 WHERE id = ?", "EXTERNAL")
    findings = audit(*ledger.snapshot()).findings
    assert "done: debit moves EXTERNAL -> CLEARING, not a customer into clearing" in findings


def test_a_step_posted_twice_under_a_tagged_key_is_found(ledger: LedgerStore) -> None:
    """In one ledger a step's key is exact: `done/debit@again` is no step of the saga."""
    ledger.debit("done/debit@again", "ACC-001", Decimal("100"))
    assert "done: unknown step 'debit@again'" in audit(*ledger.snapshot()).findings


def test_a_settlement_cannot_hide_a_refund_paid_while_the_credit_stands(
    ledger: LedgerStore,
) -> None:
    """Refund and credit both paid, clearing refilled from outside: still two findings."""
    ledger.reverse("done/reverse_debit", original_key="done/debit")
    ledger.settle_manually(
        "done/settle_manually",
        source_keys=["done/debit", "done/credit", "done/reverse_debit", "done/reverse_credit"],
        to_account="EXTERNAL",
        memo="hide it",
    )
    findings = audit(*ledger.snapshot()).findings
    assert "done: the debit was refunded while the credit stands" in findings
    assert (
        "done: settle_manually moves EXTERNAL -> CLEARING: one ledger never settles into clearing"
        in findings
    )


def test_amounts_are_checked_even_after_a_settlement(ledger: LedgerStore) -> None:
    """A short credit whose difference was settled away still disagrees on the amount."""
    ledger.debit("short/debit", "ACC-001", Decimal("100"))
    ledger.credit("short/credit", "ACC-002", Decimal("60"))
    ledger.settle_manually(
        "short/settle_manually",
        source_keys=["short/debit", "short/credit"],
        to_account="EXTERNAL",
        memo="where did 40 go",
    )
    findings = audit(*ledger.snapshot()).findings
    assert any(f.startswith("short: postings disagree on the amount") for f in findings)


def test_an_opening_under_another_accounts_key_is_found(ledger: LedgerStore) -> None:
    """An opening is EXTERNAL into the customer its key names, once."""
    tamper(ledger, "UPDATE postings SET key = ? WHERE key = ?", "open/ACC-999", "open/ACC-001")
    findings = audit(*ledger.snapshot()).findings
    assert (
        "opening open/ACC-999 moves EXTERNAL -> ACC-001, not EXTERNAL into its own customer account"
        in findings
    )


def test_a_step_posted_at_two_banks_is_found(tmp_path: Path) -> None:
    """Across banks only an operator's settlement may appear at both; a debit never."""
    stores = {bank: open_store(f"sqlite:///{tmp_path / f'{bank}.db'}") for bank in ("n", "s")}
    stores["n"].open_account("N-1", "Ann", Decimal("100"))
    stores["s"].open_account("S-1", "Sue", Decimal("100"))
    stores["n"].debit("t/debit", "N-1", Decimal("10"))
    stores["s"].debit("t/debit", "S-1", Decimal("10"))
    report = audit_banks({bank: store.snapshot() for bank, store in stores.items()})
    assert "t: debit posted at two banks" in report.findings
    for store in stores.values():
        store.close()
