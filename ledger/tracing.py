"""A span for each ledger transaction: a store that traces the store it wraps.

Only OpenTelemetry's API is used here, and only when the composition root
wraps a store (`app.tracing` does so when tracing is on); without that this
module is never imported. Each write is one span named ``ledger <operation>``
with the database system, the operation, the idempotency key and the account
ids it names. The only amount on a span is the posting's own (the transfer
being posted): never a balance, and never an error's message, which can
quote one; a failure is recorded by its type alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from ledger.errors import LedgerError
from ledger.models import Account, OperatorActionKind, OperatorRecord, Receipt
from ledger.store import LedgerStore


def db_system(store: object) -> str:
    """The `db.system` of a store: ``sqlite``, ``postgresql``, else ``other_sql``."""
    system = getattr(store, "DB_SYSTEM", None)
    return system if isinstance(system, str) else "other_sql"


class TracedLedgerStore:
    """`LedgerStore` that records a span around each write of the store it wraps.

    Reads pass straight through: they move nothing and a worker makes none.
    """

    def __init__(self, store: LedgerStore, tracer: Tracer, *, bank: str | None = None) -> None:
        self._store = store
        self._tracer = tracer
        self._common: dict[str, AttributeValue] = {"db.system": db_system(store)}
        if bank is not None:
            self._common["ledger.bank"] = bank

    def __repr__(self) -> str:
        return repr(self._store)

    @contextmanager
    def _span(self, operation: str, **attributes: str | Decimal | None) -> Iterator[Span]:
        named = {f"ledger.{k}": str(v) for k, v in attributes.items() if v is not None}
        with self._tracer.start_as_current_span(
            f"ledger {operation}",
            kind=SpanKind.CLIENT,
            attributes={**self._common, "db.operation": operation, **named},
            # An error's message may quote a balance: the type says enough.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as err:
                span.set_attribute("error.type", type(err).__name__)
                # A refusal (insufficient funds, a frozen account) is an
                # answer, not a fault of the ledger.
                if not isinstance(err, LedgerError) or err.retryable:
                    span.set_status(Status(StatusCode.ERROR, type(err).__name__))
                raise

    def _posting(self, operation: str, post: Callable[[], Receipt], **attributes: str) -> Receipt:
        with self._span(operation, **attributes) as span:
            receipt = post()
            span.set_attributes(_receipt_attributes(receipt))
            return receipt

    def debit(
        self,
        key: str,
        account_id: str,
        amount: Decimal,
        *,
        transfer: str | None = None,
        currency: str | None = None,
        counterpart: str | None = None,
    ) -> Receipt:
        """Trace `LedgerStore.debit`."""
        return self._posting(
            "debit",
            lambda: self._store.debit(
                key,
                account_id,
                amount,
                transfer=transfer,
                currency=currency,
                counterpart=counterpart,
            ),
            key=key,
            account_id=account_id,
        )

    def credit(
        self,
        key: str,
        account_id: str,
        amount: Decimal,
        *,
        transfer: str | None = None,
        currency: str | None = None,
    ) -> Receipt:
        """Trace `LedgerStore.credit`."""
        return self._posting(
            "credit",
            lambda: self._store.credit(
                key, account_id, amount, transfer=transfer, currency=currency
            ),
            key=key,
            account_id=account_id,
        )

    def reverse(self, key: str, *, original_key: str) -> Receipt:
        """Trace `LedgerStore.reverse`."""
        return self._posting(
            "reverse",
            lambda: self._store.reverse(key, original_key=original_key),
            key=key,
            original_key=original_key,
        )

    def settle_manually(
        self, key: str, *, source_keys: Sequence[str], to_account: str, memo: str
    ) -> Receipt | None:
        """Trace `LedgerStore.settle_manually` (the note stays out of the span)."""
        with self._span("settle", key=key, to_account=to_account) as span:
            span.set_attribute("ledger.source_keys", list(source_keys))
            receipt = self._store.settle_manually(
                key, source_keys=source_keys, to_account=to_account, memo=memo
            )
            if receipt is not None:
                span.set_attributes(_receipt_attributes(receipt))
            return receipt

    def record_operator_action(
        self,
        key: str,
        *,
        transfer_id: str,
        action: OperatorActionKind | str,
        operator: str,
        note: str | None,
    ) -> OperatorRecord:
        """Trace `LedgerStore.record_operator_action` (the note stays out of the span)."""
        with self._span("record_operator_action", key=key, action=str(action)) as span:
            record = self._store.record_operator_action(
                key, transfer_id=transfer_id, action=action, operator=operator, note=note
            )
            span.set_attribute("ledger.replayed", record.replayed)
            return record

    def open_account(
        self,
        account_id: str,
        owner: str,
        opening_balance: Decimal = Decimal("0"),
        *,
        currency: str | None = None,
    ) -> Account:
        """Trace `LedgerStore.open_account` (no owner, no balance on the span)."""
        with self._span("open_account", account_id=account_id, currency=currency):
            return self._store.open_account(account_id, owner, opening_balance, currency=currency)

    def close_account(self, account_id: str) -> Account:
        """Trace `LedgerStore.close_account`."""
        return self._account_change("close_account", account_id, self._store.close_account)

    def freeze_account(self, account_id: str) -> Account:
        """Trace `LedgerStore.freeze_account`."""
        return self._account_change("freeze_account", account_id, self._store.freeze_account)

    def unfreeze_account(self, account_id: str) -> Account:
        """Trace `LedgerStore.unfreeze_account`."""
        return self._account_change("unfreeze_account", account_id, self._store.unfreeze_account)

    def _account_change(
        self, operation: str, account_id: str, change: Callable[[str], Account]
    ) -> Account:
        with self._span(operation, account_id=account_id):
            return change(account_id)

    def get_account(self, account_id: str, *, currency: str | None = None) -> Account:
        """`LedgerStore.get_account`, untraced."""
        return self._store.get_account(account_id, currency=currency)

    def list_accounts(self) -> list[Account]:
        """`LedgerStore.list_accounts`, untraced."""
        return self._store.list_accounts()

    def snapshot(self) -> tuple[list[Account], list[Receipt]]:
        """`LedgerStore.snapshot`, untraced."""
        return self._store.snapshot()

    def find_receipt(self, key: str) -> Receipt | None:
        """`LedgerStore.find_receipt`, untraced."""
        return self._store.find_receipt(key)

    def receipts(self) -> list[Receipt]:
        """`LedgerStore.receipts`, untraced."""
        return self._store.receipts()

    def operator_actions(self, transfer_id: str | None = None) -> list[OperatorRecord]:
        """`LedgerStore.operator_actions`, untraced."""
        return self._store.operator_actions(transfer_id)

    def close(self) -> None:
        """Close the wrapped store."""
        self._store.close()


def _receipt_attributes(receipt: Receipt) -> dict[str, AttributeValue]:
    """What a posting did: its kind, accounts and own amount (no memo, no balance)."""
    attributes: dict[str, AttributeValue] = {
        "ledger.kind": receipt.kind.value,
        "ledger.amount": str(receipt.amount),
        "ledger.currency": receipt.currency or "",
        "ledger.replayed": receipt.replayed,
    }
    for name, value in (
        ("ledger.from_account", receipt.from_account),
        ("ledger.to_account", receipt.to_account),
        ("ledger.reverses", receipt.reverses),
    ):
        if value is not None:
            attributes[name] = value
    return attributes
