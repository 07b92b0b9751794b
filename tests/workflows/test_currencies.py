"""Transfers in currencies: one currency completes; across currencies nothing is ever posted."""

from decimal import Decimal

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from ledger import LedgerStore
from ledger.audit import audit
from tests.support.ledgers import balances
from tests.support.transfers import new_id, postings_of, request, run
from tests.support.workers import transfer_worker
from workflows.contract import TransferStatus


def open_euro_and_yen(store: LedgerStore) -> None:
    """Dora and Emil hold euros, Fumi yen, next to Alice, Bob and Charlie's dollars."""
    store.open_account("EUR-001", "Dora", Decimal("300.00"), currency="EUR")
    store.open_account("EUR-002", "Emil", Decimal("20.00"), currency="EUR")
    store.open_account("JPY-001", "Fumi", Decimal("50000"), currency="JPY")


@pytest.mark.parametrize("named", [True, False], ids=["currency-named", "currency-unnamed"])
async def test_a_euro_transfer_completes_in_euros(
    client: Client, any_store: LedgerStore, named: bool
) -> None:
    """Dora -> Emil 120.50 EUR: posted in EUR through the EUR clearing; dollars untouched."""
    store = any_store
    open_euro_and_yen(store)
    before = balances(store)
    extra = {"currency": "EUR"} if named else {}
    async with transfer_worker(client, store) as tq:
        result, state = await run(client, tq, request("EUR-001", "EUR-002", "120.50", **extra))
    assert TransferStatus.COMPLETED == state.status
    assert ("EUR", "EUR") == (result.debit.currency, result.credit.currency)
    assert "EUR" == state.currency
    moved = {"EUR-001": Decimal("179.50"), "EUR-002": Decimal("140.50")}
    assert before | moved == balances(store)
    assert Decimal("0.00") == store.get_account("CLEARING", currency="EUR").balance
    assert [] == audit(*store.snapshot()).findings


async def test_a_yen_transfer_moves_whole_yen(client: Client, store: LedgerStore) -> None:
    """JPY has no minor unit: 1500 yen move as 1500, shown without decimals."""
    open_euro_and_yen(store)
    store.open_account("JPY-002", "Goro", currency="JPY")
    async with transfer_worker(client, store) as tq:
        result, _ = await run(client, tq, request("JPY-001", "JPY-002", "1500", currency="JPY"))
    assert (Decimal("1500"), "1500") == (result.amount, str(result.debit.amount))
    assert Decimal("48500") == store.get_account("JPY-001").balance


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "Currency mismatch: EUR-001 is in EUR, ACC-002 in USD"),
        ({"currency": "EUR"}, "Currency mismatch: EUR-001 is in EUR, ACC-002 in USD"),
        ({"currency": "USD"}, "Currency mismatch: the transfer is in USD, EUR-001 is in EUR"),
    ],
    ids=["hand-written", "euros-named", "dollars-named"],
)
async def test_euros_to_dollars_is_refused_with_nothing_posted(
    client: Client, any_store: LedgerStore, extra: dict[str, str], message: str
) -> None:
    """EUR -> USD: the debit refuses it (CurrencyMismatch) before posting; balances unchanged."""
    store = any_store
    open_euro_and_yen(store)
    before = balances(store)
    transfer_id = new_id()
    async with transfer_worker(client, store) as tq:
        failure, state = await run(
            client, tq, request("EUR-001", "ACC-002", "50.00", **extra), transfer_id
        )
    assert isinstance(failure, WorkflowFailureError)
    assert isinstance(failure.cause, ApplicationError)
    assert "CurrencyMismatch" == failure.cause.type
    assert failure.cause.message.startswith(message)
    assert TransferStatus.COMPENSATED == state.status
    debit = state.step("debit")
    assert debit.error is not None
    assert ("failed", "CurrencyMismatch") == (debit.status, debit.error.type)
    # Nothing posted: the refused debit's key is voided, no money moved anywhere.
    assert [("reverse_debit", "void")] == postings_of(store, transfer_id)
    assert before == balances(store)
    assert [] == audit(*store.snapshot()).findings
