"""Reconciliation: what a bank operator runs to prove the ledger is whole.

Reads one consistent snapshot of accounts and receipts and checks, in each
currency on its own, that the double entry sums to zero, no customer is
negative, every transfer's postings form a pattern the saga can produce (in
one currency), and each currency's clearing holds exactly the money of the
transfers still in flight in it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
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
    def currencies(self) -> set[str]:
        """The currencies of this transfer's postings: one (none if it only voided)."""
        return {r.currency for r in self.steps.values() if r.currency is not None}

    @property
    def currency(self) -> str | None:
        """The transfer's currency, when its postings agree on one."""
        found = self.currencies
        return next(iter(found)) if len(found) == 1 else None

    @property
    def outcome(self) -> str:
        """completed, compensated, rejected (nothing moved), or in_flight (money in clearing)."""
        if self.in_clearing != 0:
            return "in_flight"
        applied = {_base(s) for s, r in self.steps.items() if r.kind != PostingKind.VOID}
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
    #: What each currency's clearing account holds.
    clearing: dict[str, Decimal]
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
    findings = _ledger_findings(accounts, receipts)
    transfers = group_by_transfer(receipts)
    outcomes: dict[str, int] = defaultdict(int)
    kinds = {a.id: a.kind for a in accounts}
    for group in transfers.values():
        findings += _pattern_findings(group, kinds, merged=False)
        outcomes[group.outcome] += 1
    clearing = _clearing(accounts)
    in_flight: dict[str, Decimal] = defaultdict(Decimal)
    for group in transfers.values():
        if group.currency is not None:
            in_flight[group.currency] += group.in_clearing
    for currency in sorted(set(clearing) | set(in_flight)):
        held, owed = clearing.get(currency, Decimal(0)), in_flight.get(currency, Decimal(0))
        if held != owed:
            findings.append(
                f"clearing holds {held} {currency} but transfers in flight account for {owed}"
            )
    return AuditReport(
        accounts=len(accounts),
        postings=len(receipts),
        transfers=len(transfers),
        outcomes=dict(outcomes),
        clearing=clearing,
        findings=findings,
    )


@dataclass
class BankPosition:
    """One bank's settlement position: what its clearing account holds, and why."""

    bank: str
    accounts: int
    postings: int
    #: The currency of this position: a bank has one per currency it holds.
    currency: str
    #: The bank's CLEARING balance: positive, it holds money owed to other
    #: banks; negative, it paid out money other banks owe it.
    clearing: Decimal
    #: Net of its completed cross-bank transfers: sent minus received.
    completed_net: Decimal
    #: What transfers still in flight hold in its clearing.
    in_flight: Decimal


@dataclass
class BanksAuditReport:
    """The audit of every bank's ledger and of the positions between them."""

    positions: list[BankPosition]
    transfers: int
    outcomes: dict[str, int]
    findings: list[str]

    @property
    def ok(self) -> bool:
        """No findings."""
        return not self.findings


def audit_banks(snapshots: Mapping[str, tuple[list[Account], list[Receipt]]]) -> BanksAuditReport:
    """Audit several banks' ledgers together.

    Each ledger must be whole on its own (double entry, no negative customer,
    balances that match its postings). A cross-bank transfer's postings are
    split between two ledgers under the same keys, so the patterns are
    checked on every bank's postings together. Between banks: every bank's
    clearing equals the net of its completed cross-bank transfers plus what
    transfers in flight hold there, and the completed positions of all banks
    sum to zero.
    """
    findings: list[str] = []
    per_bank = {bank: group_by_transfer(receipts) for bank, (_, receipts) in snapshots.items()}
    merged = _merge(per_bank)
    for bank, (accounts, receipts) in snapshots.items():
        findings += [f"{bank}: {f}" for f in _ledger_findings(accounts, receipts)]
    outcomes: dict[str, int] = defaultdict(int)
    kinds = {a.id: a.kind for accounts, _ in snapshots.values() for a in accounts}
    for group in merged.values():
        findings += _pattern_findings(group, kinds, merged=True)
        outcomes[group.outcome] += 1
    positions = []
    for bank, (accounts, receipts) in snapshots.items():
        clearing = _clearing(accounts)
        sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for transfer_id, group in per_bank[bank].items():
            outcome = merged[transfer_id].outcome
            currency = group.currency or merged[transfer_id].currency
            if currency is None:
                continue  # nothing but voids here
            if outcome in ("completed", "in_flight"):
                sums[currency][outcome] += group.in_clearing
            elif group.in_clearing != 0:
                sums[currency]["other"] += group.in_clearing
                findings.append(
                    f"{bank}: {transfer_id} is {outcome} but leaves {group.in_clearing} in clearing"
                )
        for currency in sorted(set(clearing) | set(sums)):
            held, parts = clearing.get(currency, Decimal(0)), sums[currency]
            completed, in_flight = parts["completed"], parts["in_flight"]
            if held != completed + in_flight + parts["other"]:
                findings.append(
                    f"{bank}: clearing holds {held} {currency} but its transfers account for "
                    f"{completed + in_flight + parts['other']}"
                )
            positions.append(
                BankPosition(
                    bank, len(accounts), len(receipts), currency, held, completed, in_flight
                )
            )
    nets: dict[str, Decimal] = defaultdict(Decimal)
    for position in positions:
        nets[position.currency] += position.completed_net
    for currency, net in sorted(nets.items()):
        if net != 0:
            findings.append(
                f"completed cross-bank positions in {currency} do not net to zero: {net}"
            )
    return BanksAuditReport(
        positions=positions, transfers=len(merged), outcomes=dict(outcomes), findings=findings
    )


def group_across_banks(
    snapshots: Mapping[str, tuple[list[Account], list[Receipt]]],
) -> dict[str, TransferPostings]:
    """Every transfer's postings over all banks together (a cross-bank one is in two ledgers).

    A step recorded at two banks under the same key (an operator's settlement
    at each) keeps both receipts: the second is tagged ``<step>@<bank>``.
    """
    return _merge({bank: group_by_transfer(receipts) for bank, (_, receipts) in snapshots.items()})


def _merge(per_bank: Mapping[str, dict[str, TransferPostings]]) -> dict[str, TransferPostings]:
    merged: dict[str, TransferPostings] = {}
    for bank, groups in per_bank.items():
        for transfer_id, group in groups.items():
            into = merged.setdefault(transfer_id, TransferPostings(transfer_id))
            for step, receipt in group.steps.items():
                into.steps[step if step not in into.steps else f"{step}@{bank}"] = receipt
    return merged


def _clearing(accounts: list[Account]) -> dict[str, Decimal]:
    """What each currency's clearing account holds."""
    return {a.currency: a.balance for a in accounts if a.id == CLEARING_ACCOUNT}


def _ledger_findings(accounts: list[Account], receipts: list[Receipt]) -> list[str]:
    """One ledger on its own: double entry per currency, no negative customer, balances.

    Balances must match the postings, and no posting touches an account that
    is not held in the posting's currency.
    """
    findings: list[str] = []
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for account in accounts:
        totals[account.currency] += account.balance
    for currency, total in sorted(totals.items()):
        if total != 0:
            findings.append(f"ledger does not sum to zero in {currency}: {total}")
    kinds = {a.id: a.kind for a in accounts}
    held_in: dict[str, set[str]] = defaultdict(set)
    for account in accounts:
        held_in[account.id].add(account.currency)
    for account in accounts:
        if account.kind == AccountKind.CUSTOMER and account.balance < 0:
            findings.append(f"customer {account.id} is negative: {account.balance}")
    for receipt in receipts:
        if receipt.kind == PostingKind.OPENING and (
            kinds.get(receipt.from_account or "") != AccountKind.EXTERNAL
            or kinds.get(receipt.to_account or "") != AccountKind.CUSTOMER
            or receipt.key != f"open/{receipt.to_account}"
        ):
            findings.append(
                f"opening {receipt.key} moves {receipt.from_account} -> {receipt.to_account}, "
                "not EXTERNAL into its own customer account"
            )
    balances: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
    for receipt in receipts:
        if receipt.kind != PostingKind.VOID:
            assert receipt.from_account is not None
            assert receipt.to_account is not None
            for account_id in (receipt.from_account, receipt.to_account):
                if receipt.currency not in held_in[account_id]:
                    findings.append(
                        f"{receipt.key} posts {receipt.currency} to {account_id}, which is "
                        f"not held in {receipt.currency}"
                    )
            balances[receipt.from_account, receipt.currency] -= receipt.amount
            balances[receipt.to_account, receipt.currency] += receipt.amount
    for account in accounts:
        posted = balances[account.id, account.currency]
        if posted != account.balance:
            findings.append(
                f"{account.id} balance {account.balance} {account.currency} differs from its "
                f"postings ({posted})"
            )
    return findings


def _shape_findings(
    name: str, step: str, receipt: Receipt, kinds: Mapping[str, AccountKind], *, merged: bool
) -> list[str]:
    """Whether a posting moves money between the accounts its step must use."""

    def kind(account: str | None) -> AccountKind | None:
        return kinds.get(account) if account is not None else None

    customer = AccountKind.CUSTOMER
    source, target = kind(receipt.from_account), kind(receipt.to_account)
    where = f"{receipt.from_account} -> {receipt.to_account}"
    if receipt.kind == PostingKind.DEBIT and (source, target) != (customer, AccountKind.CLEARING):
        return [f"{name}: {step} moves {where}, not a customer into clearing"]
    if receipt.kind == PostingKind.CREDIT and (source, target) != (AccountKind.CLEARING, customer):
        return [f"{name}: {step} moves {where}, not clearing to a customer"]
    if receipt.kind == PostingKind.REVERSAL:
        original = step.removeprefix("reverse_")
        if receipt.reverses != f"{name}/{original}":
            return [f"{name}: {step} reverses {receipt.reverses}, not {name}/{original}"]
        # A refund goes clearing -> customer; taking back a credit, customer -> clearing.
        back = (
            (AccountKind.CLEARING, customer)
            if original == "debit"
            else (customer, AccountKind.CLEARING)
        )
        if (source, target) != back:
            return [f"{name}: {step} moves {where}, not back the way {original} came"]
    if receipt.kind == PostingKind.MANUAL:
        other = target if source == AccountKind.CLEARING else source
        if AccountKind.CLEARING not in (source, target) or other not in (
            customer,
            AccountKind.EXTERNAL,
        ):
            return [f"{name}: {step} moves {where}, not out of clearing"]
        if target == AccountKind.CLEARING and not merged:
            # Only a destination bank's settlement refills clearing, and one
            # ledger alone has no destination bank.
            return [f"{name}: {step} moves {where}: one ledger never settles into clearing"]
    return []


def _base(step: str) -> str:
    """A step's name without the bank a merged view tagged it with."""
    return step.partition("@")[0]


def _pattern_findings(
    group: TransferPostings, kinds: Mapping[str, AccountKind], *, merged: bool
) -> list[str]:
    """A transfer's postings must be ones the saga produces, in amounts that agree.

    `kinds` names each account's kind; `merged` says the postings come from
    several banks' ledgers, where only an operator's settlement may appear at
    two banks (tagged ``settle_manually@<bank>``).
    """
    found: list[str] = []
    name = group.transfer_id
    for step, receipt in group.steps.items():
        base = _base(step) if merged else step
        if base not in _STEP_KINDS:
            found.append(f"{name}: unknown step {step!r}")
        elif receipt.kind not in _STEP_KINDS[base]:
            found.append(f"{name}: {step} is a {receipt.kind} posting")
        elif step != base and base != "settle_manually":
            found.append(f"{name}: {base} posted at two banks")
        else:
            found += _shape_findings(name, base, receipt, kinds, merged=merged)
    steps = group.steps
    # Every posting of a transfer moves its amount, a settlement included:
    # it moves what one debit or credit left in (or took out of) clearing.
    amounts = {r.amount for r in steps.values() if r.kind not in (PostingKind.VOID,)}
    if len(amounts) > 1:
        found.append(f"{name}: postings disagree on the amount: {sorted(amounts)}")
    if len(group.currencies) > 1:
        found.append(f"{name}: postings mix currencies: {sorted(group.currencies)}")
    refund, credit, take_back = (
        steps.get("reverse_debit"),
        steps.get("credit"),
        steps.get("reverse_credit"),
    )
    if (
        refund is not None
        and refund.kind == PostingKind.REVERSAL
        and credit is not None
        and (take_back is None or take_back.kind != PostingKind.REVERSAL)
    ):
        # Compensations stop at the first failure: the debit is refunded only
        # after the credit was taken back.
        found.append(f"{name}: the debit was refunded while the credit stands")
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
        posted = steps.get(original)
        if (
            reversal.kind == PostingKind.REVERSAL
            and posted is not None
            and (reversal.from_account, reversal.to_account)
            != (posted.to_account, posted.from_account)
        ):
            found.append(
                f"{name}: reverse_{original} moves {reversal.from_account} -> "
                f"{reversal.to_account}, not back to {posted.from_account}"
            )
    if group.in_clearing < 0:
        found.append(f"{name}: took {-group.in_clearing} more out of clearing than it put in")
    return found
