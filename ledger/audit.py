"""Reconciliation: what a bank operator runs to prove the ledger is whole.

Reads one consistent snapshot of accounts and receipts and checks that the
double entry sums to zero, no customer is negative, every transfer's postings
form a pattern the saga can produce, and clearing holds exactly the money of
the transfers still in flight.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from ledger.models import CLEARING_ACCOUNT, Account, AccountKind, PostingKind, Receipt

#: The steps a transfer's keys end in, and the kind each must have.
_STEP_KINDS = {
    "debit": {PostingKind.DEBIT},
    "credit": {PostingKind.CREDIT},
    "reverse_debit": {PostingKind.REVERSAL, PostingKind.VOID},
    "reverse_credit": {PostingKind.REVERSAL, PostingKind.VOID},
    "settle_manually": {PostingKind.MANUAL},
}


@dataclass
class TransferPostings:
    """What one transfer did to the ledger."""

    transfer_id: str
    steps: dict[str, Receipt] = field(default_factory=dict)

    @property
    def in_clearing(self) -> Decimal:
        """Money this transfer has put into clearing and not yet taken out."""
        held = Decimal("0.00")
        for receipt in self.steps.values():
            if receipt.to_account == CLEARING_ACCOUNT:
                held += receipt.amount
            elif receipt.from_account == CLEARING_ACCOUNT:
                held -= receipt.amount
        return held

    @property
    def outcome(self) -> str:
        """completed, compensated, rejected (nothing moved), or in_flight (money in clearing)."""
        if self.in_clearing != 0:
            return "in_flight"
        applied = {s for s, r in self.steps.items() if r.kind != PostingKind.VOID}
        if applied == {"debit", "credit"}:
            return "completed"
        if not applied:
            return "rejected"
        if "settle_manually" in applied:
            return "resolved"
        return "compensated"


@dataclass
class AuditReport:
    """The findings (empty when the ledger is whole) and what was checked."""

    accounts: int
    postings: int
    transfers: int
    outcomes: dict[str, int]
    clearing: Decimal
    findings: list[str]

    @property
    def ok(self) -> bool:
        """No findings."""
        return not self.findings


def group_by_transfer(receipts: list[Receipt]) -> dict[str, TransferPostings]:
    """Receipts keyed `<transfer id>/<step>`, grouped by transfer (openings left out)."""
    transfers: dict[str, TransferPostings] = {}
    for receipt in receipts:
        if receipt.kind == PostingKind.OPENING:
            continue
        transfer_id, _, step = receipt.key.rpartition("/")
        group = transfers.setdefault(transfer_id, TransferPostings(transfer_id))
        group.steps[step] = receipt
    return transfers


def audit(accounts: list[Account], receipts: list[Receipt]) -> AuditReport:
    """Check the invariants on one snapshot; every violation becomes a finding."""
    findings: list[str] = []
    total = sum((a.balance for a in accounts), Decimal("0.00"))
    if total != 0:
        findings.append(f"ledger does not sum to zero: {total}")
    for account in accounts:
        if account.kind == AccountKind.CUSTOMER and account.balance < 0:
            findings.append(f"customer {account.id} is negative: {account.balance}")
    balances: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for receipt in receipts:
        if receipt.kind != PostingKind.VOID:
            assert receipt.from_account is not None
            assert receipt.to_account is not None
            balances[receipt.from_account] -= receipt.amount
            balances[receipt.to_account] += receipt.amount
    for account in accounts:
        if balances[account.id] != account.balance:
            findings.append(
                f"{account.id} balance {account.balance} differs from its postings "
                f"({balances[account.id]})"
            )

    transfers = group_by_transfer(receipts)
    outcomes: dict[str, int] = defaultdict(int)
    for group in transfers.values():
        findings += _pattern_findings(group)
        outcomes[group.outcome] += 1
    clearing = next((a.balance for a in accounts if a.id == CLEARING_ACCOUNT), Decimal("0.00"))
    in_flight = sum((g.in_clearing for g in transfers.values()), Decimal("0.00"))
    if in_flight != clearing:
        findings.append(
            f"clearing holds {clearing} but transfers in flight account for {in_flight}"
        )
    return AuditReport(
        accounts=len(accounts),
        postings=len(receipts),
        transfers=len(transfers),
        outcomes=dict(outcomes),
        clearing=clearing,
        findings=findings,
    )


def _pattern_findings(group: TransferPostings) -> list[str]:
    """A transfer's postings must be ones the saga produces, in amounts that agree."""
    found: list[str] = []
    name = group.transfer_id
    for step, receipt in group.steps.items():
        if step not in _STEP_KINDS:
            found.append(f"{name}: unknown step {step!r}")
        elif receipt.kind not in _STEP_KINDS[step]:
            found.append(f"{name}: {step} is a {receipt.kind} posting")
    steps = group.steps
    amounts = {r.amount for r in steps.values() if r.kind not in (PostingKind.VOID,)}
    if len(amounts) > 1 and "settle_manually" not in steps:
        found.append(f"{name}: postings disagree on the amount: {sorted(amounts)}")
    if "credit" in steps and "debit" not in steps:
        found.append(f"{name}: credited without a debit")
    for original in ("debit", "credit"):
        reversal = steps.get(f"reverse_{original}")
        if reversal is None:
            continue
        if reversal.kind == PostingKind.REVERSAL and original not in steps:
            found.append(f"{name}: reverse_{original} reverses a posting that is not there")
        if reversal.kind == PostingKind.VOID and original in steps:
            found.append(f"{name}: {original} applied after it was voided")
    if group.in_clearing < 0:
        found.append(f"{name}: took {-group.in_clearing} more out of clearing than it put in")
    return found
