"""The audit: a whole ledger passes; each kind of damage is named."""

from decimal import Decimal

import pytest

from ledger import LedgerStore
from ledger.audit import audit


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
    assert Decimal("7.00") == report.clearing


def test_a_balance_that_disagrees_with_its_postings_is_found(ledger: LedgerStore) -> None:
    """Money conjured into a balance shows up twice: the sum and the postings disagree."""
    tamper(ledger, "UPDATE accounts SET balance = balance + 500 WHERE id = ?", "ACC-003")
    findings = audit(*ledger.snapshot()).findings
    assert "ledger does not sum to zero: 5.00" in findings
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
    assert "clearing holds 10.00 but transfers in flight account for 7.00" in findings


def test_a_step_applied_after_its_void_is_found(ledger: LedgerStore) -> None:
    """If a voided key ever applied, the audit says so."""
    tamper(ledger, "UPDATE postings SET key = ? WHERE key = ?", "refused/debit", "flying/debit")
    assert "refused: debit applied after it was voided" in audit(*ledger.snapshot()).findings
