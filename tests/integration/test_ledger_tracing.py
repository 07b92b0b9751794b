"""Ledger spans, on SQLite and PostgreSQL: one per write, naming what it moved and nothing else."""

from collections.abc import Iterator
from decimal import Decimal

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ledger import InsufficientFunds, LedgerStore, LedgerUnavailable
from ledger.postgres import PostgresLedgerStore
from ledger.tracing import TracedLedgerStore


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Finished spans, in memory."""
    spans = InMemorySpanExporter()
    yield spans
    spans.shutdown()


def traced(store: LedgerStore, exporter: InMemorySpanExporter) -> TracedLedgerStore:
    """`store`, tracing to `exporter`, as north's bank worker."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracedLedgerStore(store, provider.get_tracer("test"), bank="north")


def attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def test_each_write_is_a_span_with_the_database_the_operation_and_its_accounts(
    any_store: LedgerStore, exporter: InMemorySpanExporter
) -> None:
    """Debit, credit, reverse, settle, freeze, the operator log: a span each, reads none."""
    ledger = traced(any_store, exporter)
    ledger.debit("t1/debit", "ACC-001", Decimal("80"), transfer="ACC-001 -> ACC-002 80.00")
    ledger.credit("t1/credit", "ACC-002", Decimal("80"))
    ledger.reverse("t1/reverse_credit", original_key="t1/credit")
    ledger.settle_manually(
        "t1/settle", source_keys=["t1/debit"], to_account="EXTERNAL", memo="cheque 1234"
    )
    ledger.record_operator_action(
        "t1/operator/u1", transfer_id="t1", action="resolve", operator="ops", note="cheque 1234"
    )
    ledger.freeze_account("ACC-003")
    ledger.list_accounts()
    ledger.receipts()
    system = "postgresql" if isinstance(any_store, PostgresLedgerStore) else "sqlite"
    spans = exporter.get_finished_spans()
    assert [
        "ledger debit",
        "ledger credit",
        "ledger reverse",
        "ledger settle",
        "ledger record_operator_action",
        "ledger freeze_account",
    ] == [s.name for s in spans]
    assert {(system, "north")} == {
        (attributes(s)["db.system"], attributes(s)["ledger.bank"]) for s in spans
    }
    debit, credit, reverse, settle, operator, freeze = map(attributes, spans)
    assert {
        "db.operation": "debit",
        "ledger.key": "t1/debit",
        "ledger.account_id": "ACC-001",
        "ledger.from_account": "ACC-001",
        "ledger.to_account": "CLEARING",
        "ledger.amount": "80.00",
        "ledger.replayed": False,
    }.items() <= debit.items()
    assert ("credit", "ACC-002") == (credit["db.operation"], credit["ledger.account_id"])
    assert ("t1/credit", "reversal", "80.00") == (
        reverse["ledger.original_key"],
        reverse["ledger.kind"],
        reverse["ledger.amount"],
    )
    assert ("settle", ("t1/debit",), "EXTERNAL") == (
        settle["db.operation"],
        settle["ledger.source_keys"],
        settle["ledger.to_account"],
    )
    assert ("resolve", False) == (operator["ledger.action"], operator["ledger.replayed"])
    assert "ACC-003" == freeze["ledger.account_id"]
    shown = " ".join(str(v) for span in (debit, settle, operator) for v in span.values())
    assert "cheque" not in shown  # notes and memos stay in the ledger
    assert "->" not in shown


def test_a_refusal_is_named_by_its_type_without_the_balance_its_message_quotes(
    any_store: LedgerStore, exporter: InMemorySpanExporter
) -> None:
    """Insufficient funds: error.type on the span, status not an error, Alice's 1000.00 nowhere."""
    ledger = traced(any_store, exporter)
    with pytest.raises(InsufficientFunds, match=r"1000\.00"):
        ledger.debit("t1/debit", "ACC-001", Decimal("5000"))
    [span] = exporter.get_finished_spans()
    assert ("InsufficientFunds", StatusCode.UNSET, ()) == (
        attributes(span)["error.type"],
        span.status.status_code,
        tuple(span.events),
    )
    assert "1000.00" not in span.to_json()


class _Unreachable:
    """A store whose database is down."""

    DB_SYSTEM = "postgresql"

    def debit(self, *args: object, **kwargs: object) -> None:
        raise LedgerUnavailable("Cannot connect to PostgreSQL at db.example:5432")


def test_a_ledger_that_cannot_be_reached_is_an_error_span(
    exporter: InMemorySpanExporter,
) -> None:
    """LedgerUnavailable (retried by Temporal) marks the span as an error, by type."""
    ledger = traced(_Unreachable(), exporter)  # type: ignore[arg-type]
    with pytest.raises(LedgerUnavailable):
        ledger.debit("t1/debit", "ACC-001", Decimal("5"))
    [span] = exporter.get_finished_spans()
    assert (StatusCode.ERROR, "LedgerUnavailable", "postgresql") == (
        span.status.status_code,
        span.status.description,
        attributes(span)["db.system"],
    )
