"""The benchmark's accounts and the transfer each workload asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bench.measure import pair
from ledger import LedgerStore
from workflows.contract import TransferRequest

AMOUNT = Decimal("1.00")


@dataclass
class Accounts:
    """One run's accounts: rich ones with room for any run, and empty ones."""

    run_id: str
    rich: list[str] = field(default_factory=list)
    poor: list[str] = field(default_factory=list)

    def open(self, store: LedgerStore) -> None:
        """Open them: some empty ones for the insufficient-funds path."""
        self.rich = [f"B{self.run_id}-{i:03d}" for i in range(64)]
        self.poor = [f"P{self.run_id}-{i:03d}" for i in range(8)]
        for account in self.rich:
            store.open_account(account, "Bench", Decimal("1000000.00"))
        for account in self.poor:
            store.open_account(account, "Bench", Decimal("0.00"))

    def request(self, workload: str, index: int) -> TransferRequest:
        """The `index`-th transfer of a workload."""
        if workload == "insufficient":
            source, destination = self.poor[index % len(self.poor)], self.rich[index % 64]
        elif workload == "refused":
            source, destination = self.rich[index % 64], f"N{self.run_id}-nobody"
        else:
            source, destination = pair(self.rich, index)
        return TransferRequest(
            source_account=source, destination_account=destination, amount=AMOUNT
        )
