"""Ledger rules over SQL, shared by every SQL store.

Subclasses supply connections and transactions; this class owns the SQL.
Statements use ``?`` placeholders; a store whose driver wants another style
rewrites them in `_sql`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from ledger.currency import DEFAULT_CURRENCY, validate_currency
from ledger.errors import (
    AccountClosed,
    AccountExists,
    AccountFrozen,
    AccountNotCustomer,
    AccountNotEmpty,
    AccountNotFound,
    AccountStatusConflict,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    StepReversed,
    StepSettled,
    StepVoided,
)
from ledger.models import (
    CLEARING_ACCOUNT,
    CLEARING_OWNER,
    EXTERNAL_ACCOUNT,
    SYSTEM_ACCOUNTS,
    Account,
    AccountKind,
    AccountStatus,
    OperatorActionKind,
    OperatorRecord,
    PostingKind,
    Receipt,
    validate_account_id,
    validate_memo,
    validate_operator,
    validate_owner,
)
from ledger.money import from_minor, parse_amount, to_minor
from ledger.schema import MigrationReport


class Cursor(Protocol):
    """The part of a DB-API cursor the ledger uses."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""

    def fetchone(self) -> Any:
        """The next row, or None."""

    def fetchall(self) -> list[Any]:
        """All remaining rows."""


class Connection(Protocol):
    """The part of a DB-API connection the ledger uses."""

    def execute(self, sql: str, params: Sequence[Any], /) -> Cursor:
        """Run one statement with positional parameters."""


_POSTING_COLUMNS = (
    "key, kind, amount, from_account, to_account, reverses, posted_at, memo, currency"
)
_ACCOUNT_COLUMNS = "id, owner, kind, balance, status, currency"
_OPERATOR_COLUMNS = "key, transfer_id, action, operator, note, recorded_at"


class SqlLedgerStore(abc.ABC):
    """Double-entry ledger rules, written once for every SQL database."""

    #: Owner label of the clearing account when this store creates it.
    _clearing_owner = CLEARING_OWNER
    #: The currency of an account opened without one.
    default_currency = DEFAULT_CURRENCY

    #: What opening this store did to its schema; None when it only checked the version.
    migration: MigrationReport | None = None

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Connection]:
        """A connection inside one write transaction: commit on exit, roll back on error."""

    def _sql(self, statement: str) -> str:
        """Rewrite a statement for the driver's placeholder style."""
        return statement

    def _exec(self, conn: Connection, statement: str, *params: Any) -> Cursor:
        return conn.execute(self._sql(statement), params)

    def _read_transaction(self) -> AbstractContextManager[Connection]:
        """A transaction for reads that must see one state of the ledger throughout."""
        return self._transaction()

    @abc.abstractmethod
    def _lock_keys(self, conn: Connection, *keys: str) -> None:
        """Hold `keys` until the transaction ends, against every other call on them.

        A step and the compensation that voids it check for each other's row
        and then write; unless the two calls run one after the other, each can
        miss the other (a late debit waiting on a busy account while its void
        commits, then committing too).
        """

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).isoformat(timespec="microseconds")

    # -- accounts -------------------------------------------------------------

    def _ensure_system_accounts(self, conn: Connection, currency: str | None = None) -> None:
        """CLEARING and EXTERNAL in `currency` (the default one), if the ledger has none yet.

        A currency's clearing account takes the label the ledger's first one
        has (a bank's ledger among several names it after settlement).
        """
        currency = currency or self.default_currency
        labelled = self._exec(
            conn, "SELECT owner FROM accounts WHERE id = ? ORDER BY created_at", CLEARING_ACCOUNT
        ).fetchone()
        for account_id, owner, kind in (
            (
                CLEARING_ACCOUNT,
                self._clearing_owner if labelled is None else labelled[0],
                AccountKind.CLEARING,
            ),
            (EXTERNAL_ACCOUNT, "Outside world", AccountKind.EXTERNAL),
        ):
            # Not a read then an insert: two first openings in one currency at once.
            self._exec(
                conn,
                "INSERT INTO accounts (id, currency, owner, kind, balance, status, created_at)"
                " VALUES (?, ?, ?, ?, 0, 'open', ?) ON CONFLICT DO NOTHING",
                account_id,
                currency,
                owner,
                kind.value,
                self._now(),
            )

    def _account_row(
        self,
        conn: Connection,
        account_id: str,
        *,
        lock: bool = False,
        currency: str | None = None,
    ) -> Any:
        """The row of `account_id` (a system account's: in `currency`, else the default one).

        A customer's id is unique whatever its currency; `currency` then
        only narrows the match.
        """
        if currency is None and account_id in SYSTEM_ACCOUNTS:
            currency = self.default_currency
        where = "id = ?" if currency is None else "id = ? AND currency = ?"
        params = (account_id,) if currency is None else (account_id, currency)
        return self._exec(
            conn,
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE {where}"
            + (self._lock_clause if lock else ""),
            *params,
        ).fetchone()

    #: Appended to a SELECT that reads a row about to be changed.
    _lock_clause = ""

    @staticmethod
    def _account(row: Any) -> Account:
        return Account(
            id=row[0],
            owner=row[1],
            kind=AccountKind(row[2]),
            balance=from_minor(int(row[3]), row[5]),
            status=AccountStatus(row[4]),
            currency=row[5],
        )

    def open_account(
        self,
        account_id: str,
        owner: str,
        opening_balance: Decimal = Decimal("0"),
        *,
        currency: str | None = None,
    ) -> Account:
        """Open a customer account in `currency` (the store's default if None), for good.

        A positive opening balance comes from that currency's EXTERNAL.
        """
        account_id = validate_account_id(account_id)
        owner = validate_owner(owner)
        currency = validate_currency(currency or self.default_currency)
        amount = parse_amount(opening_balance, allow_zero=True, currency=currency)
        if account_id in SYSTEM_ACCOUNTS:
            raise AccountExists(account_id)
        with self._transaction() as conn:
            self._ensure_system_accounts(conn, currency)
            # Not a read then an insert: two openings of one id at once would
            # both pass the read, and the loser's unique violation would look
            # like a database fault. The id is unique over every currency.
            inserted = self._exec(
                conn,
                "INSERT INTO accounts (id, currency, owner, kind, balance, status, created_at)"
                " VALUES (?, ?, ?, 'customer', 0, 'open', ?) ON CONFLICT DO NOTHING RETURNING id",
                account_id,
                currency,
                owner,
                self._now(),
            ).fetchone()
            if inserted is None:
                raise AccountExists(account_id)
            if amount > 0:
                self._post(
                    conn,
                    key=f"open/{account_id}",
                    kind=PostingKind.OPENING,
                    from_account=EXTERNAL_ACCOUNT,
                    to_account=account_id,
                    amount=amount,
                    currency=currency,
                )
            return self._account(self._account_row(conn, account_id, currency=currency))

    def close_account(self, account_id: str) -> Account:
        """Close a customer account whose balance is zero."""
        with self._transaction() as conn:
            # Locked, so no posting can land between this read and the update.
            account = self._require_customer(conn, account_id, lock=True)
            if account.balance != 0:
                raise AccountNotEmpty(account_id, account.balance)
            self._exec(conn, "UPDATE accounts SET status = 'closed' WHERE id = ?", account_id)
            return self._account(self._account_row(conn, account_id))

    def freeze_account(self, account_id: str) -> Account:
        """Freeze an open customer account: it takes no postings until unfrozen."""
        return self._set_status(account_id, AccountStatus.OPEN, AccountStatus.FROZEN)

    def unfreeze_account(self, account_id: str) -> Account:
        """Let a frozen account take postings again."""
        return self._set_status(account_id, AccountStatus.FROZEN, AccountStatus.OPEN)

    def _set_status(self, account_id: str, expected: AccountStatus, new: AccountStatus) -> Account:
        with self._transaction() as conn:
            account = self._customer(conn, account_id, lock=True)
            if account.status is not expected:
                raise AccountStatusConflict(account_id, account.status.value, expected.value)
            self._exec(conn, "UPDATE accounts SET status = ? WHERE id = ?", new.value, account_id)
            return self._account(self._account_row(conn, account_id))

    def settle_manually(
        self, key: str, *, source_keys: Sequence[str], to_account: str, memo: str
    ) -> Receipt | None:
        """Move what the postings `source_keys` left in clearing to `to_account`, with a note.

        For an operator settling a stuck transfer by hand. `to_account` is a
        customer account, or EXTERNAL when the money left the ledger by hand
        (a cheque, a wire from another system). The amount is computed here,
        in the same transaction, from the ledger itself.

        The settlement takes over `source_keys`: from then on none of them
        applies, reverses or replays as done (`StepSettled`), so a late
        refund or a second run of the transfer cannot move the money again.

        Returns:
            The posting, or None when those postings left nothing in clearing.
        """
        memo = validate_memo(memo)
        with self._transaction() as conn:
            self._lock_keys(conn, *sorted(set(source_keys)))
            existing = self._receipt_by_key(conn, key)
            if existing is not None:
                settled_with = (
                    existing.from_account
                    if existing.to_account == CLEARING_ACCOUNT
                    else existing.to_account
                )
                if (existing.kind, settled_with) != (PostingKind.MANUAL, to_account):
                    raise IdempotencyConflict(key, f"first {existing.kind} with {settled_with}")
            self._take_over(conn, key, source_keys)
            if existing is not None:
                return _replayed(existing)
            held = Decimal("0")
            currencies = set()
            for source_key in source_keys:
                receipt = self._receipt_by_key(conn, source_key)
                if receipt is None or receipt.kind == PostingKind.VOID:
                    continue
                currencies.add(receipt.currency)
                if receipt.to_account == CLEARING_ACCOUNT:
                    held += receipt.amount
                elif receipt.from_account == CLEARING_ACCOUNT:
                    held -= receipt.amount
            if held == 0:
                return None
            # A transfer's postings are all in one currency (each step
            # refuses another): settle in it.
            (currency,) = currencies
            if held < 0 and to_account != EXTERNAL_ACCOUNT:
                raise IdempotencyConflict(
                    key,
                    f"these postings took {-held:.2f} out of clearing: only EXTERNAL can "
                    "make that good, never a customer",
                )
            if to_account != EXTERNAL_ACCOUNT:
                target = self._require_customer(conn, to_account, lock=True)
                if target.currency != currency:
                    raise CurrencyMismatch.asked(to_account, target.currency, str(currency))
            # Money the postings left in clearing goes out; money they paid out
            # of clearing (a credit at a destination bank that stays paid)
            # comes back in from outside, settled between the banks by hand.
            return self._post(
                conn,
                key=key,
                kind=PostingKind.MANUAL,
                from_account=CLEARING_ACCOUNT if held > 0 else EXTERNAL_ACCOUNT,
                to_account=to_account if held > 0 else CLEARING_ACCOUNT,
                amount=abs(held),
                currency=str(currency),
                memo=memo,
            )

    def get_account(self, account_id: str, *, currency: str | None = None) -> Account:
        """One account, or AccountNotFound (a system account: in `currency`, else the default)."""
        with self._transaction() as conn:
            row = self._account_row(
                conn, account_id, currency=None if currency is None else validate_currency(currency)
            )
        if row is None:
            raise AccountNotFound(account_id)
        return self._account(row)

    def list_accounts(self) -> list[Account]:
        """Every account, read in one transaction so the balances sum to zero."""
        with self._transaction() as conn:
            rows = self._exec(
                conn, f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY kind, id, currency"
            ).fetchall()
        return [self._account(row) for row in rows]

    # -- postings -------------------------------------------------------------

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
        """Customer -> its currency's clearing, refused if the balance is short.

        `currency`: the currency the caller means, refused (`CurrencyMismatch`)
        if the account's differs. `counterpart`: the account the money is for;
        if this ledger holds it in another currency, refused the same way,
        before anything is posted.
        """
        return self._transfer_step(
            key,
            PostingKind.DEBIT,
            account_id,
            CLEARING_ACCOUNT,
            amount,
            transfer,
            currency=currency,
            counterpart=counterpart,
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
        """Clearing -> customer, out of the clearing of `currency` (the debit's).

        Refused (`CurrencyMismatch`) if the account is in another currency;
        without `currency`, the account's own applies.
        """
        return self._transfer_step(
            key, PostingKind.CREDIT, CLEARING_ACCOUNT, account_id, amount, transfer, currency
        )

    def _transfer_step(
        self,
        key: str,
        kind: PostingKind,
        from_account: str,
        to_account: str,
        amount: Decimal,
        transfer: str | None,
        currency: str | None = None,
        counterpart: str | None = None,
    ) -> Receipt:
        """One side of a transfer: a customer account against clearing, idempotent by key."""
        amount = parse_amount(amount)
        if transfer is not None:
            transfer = validate_memo(transfer)
        if currency is not None:
            currency = validate_currency(currency)
        customer = to_account if from_account == CLEARING_ACCOUNT else from_account
        with self._transaction() as conn:
            self._lock_keys(conn, key)
            replay = self._replay(conn, key, kind, from_account, to_account, amount, transfer)
            if replay is not None:
                return replay
            account = self._require_customer(conn, customer, lock=True)
            if currency is not None and currency != account.currency:
                raise CurrencyMismatch.asked(customer, account.currency, currency)
            if counterpart is not None and counterpart != customer:
                other = self._account_row(conn, counterpart)
                if other is not None and other[5] != account.currency:
                    raise CurrencyMismatch.between(
                        customer, account.currency, counterpart, other[5]
                    )
            return self._post(
                conn,
                key=key,
                kind=kind,
                from_account=from_account,
                to_account=to_account,
                amount=parse_amount(amount, currency=account.currency),
                currency=account.currency,
                memo=transfer,
            )

    def reverse(self, key: str, *, original_key: str) -> Receipt:
        """Post the opposite of `original_key`; if it never applied, void it instead.

        Either way the call is idempotent by `key`, and afterwards
        `original_key` can never apply.
        """
        with self._transaction() as conn:
            self._lock_keys(conn, original_key)
            existing = self._receipt_by_key(conn, key)
            if existing is not None:
                if existing.reverses != original_key:
                    raise IdempotencyConflict(key, f"it reverses {existing.reverses}")
                return _replayed(existing)
            for taken in (original_key, key):
                settlement = self._settled_by(conn, taken)
                if settlement is not None:
                    raise StepSettled(taken, settlement)
            other = self._exec(
                conn,
                "SELECT key FROM postings WHERE reverses = ?"
                " UNION ALL SELECT reversal_key FROM voids WHERE key = ?",
                original_key,
                original_key,
            ).fetchone()
            if other is not None:
                raise IdempotencyConflict(key, f"{original_key} was already reversed by {other[0]}")
            original = self._receipt_by_key(conn, original_key)
            if original is None:
                self._exec(
                    conn,
                    "INSERT INTO voids (key, reversal_key, posted_at) VALUES (?, ?, ?)",
                    original_key,
                    key,
                    self._now(),
                )
                return self._void_receipt(conn, key)  # type: ignore[return-value]
            if original.kind in (PostingKind.VOID, PostingKind.REVERSAL):
                raise IdempotencyConflict(key, f"{original_key} is a {original.kind}")
            assert original.from_account is not None
            assert original.to_account is not None
            # The refund goes back where the money came from; a frozen or
            # closed account cannot take it, and a customer who spent a
            # credit cannot return it. Customer rows are locked before
            # CLEARING, the order a debit or credit takes them in, so a
            # refund and a posting on the same account never deadlock.
            accounts = (original.from_account, original.to_account)
            for account_id in sorted(accounts, key=lambda a: a == CLEARING_ACCOUNT):
                row = self._account_row(conn, account_id, lock=True, currency=original.currency)
                if row is not None:
                    _require_open(account_id, AccountStatus(row[4]))
            return self._post(
                conn,
                key=key,
                kind=PostingKind.REVERSAL,
                from_account=original.to_account,
                to_account=original.from_account,
                amount=original.amount,
                currency=str(original.currency),
                reverses=original_key,
            )

    def snapshot(self) -> tuple[list[Account], list[Receipt]]:
        """Every account and every receipt, read in one transaction (for audits)."""
        with self._read_transaction() as conn:
            rows = self._exec(
                conn, f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY kind, id, currency"
            ).fetchall()
            accounts = [self._account(row) for row in rows]
            receipts = self._receipts(conn)
        return accounts, receipts

    def find_receipt(self, key: str) -> Receipt | None:
        """The receipt of a key (posting or void), or None."""
        with self._read_transaction() as conn:
            return self._receipt_by_key(conn, key)

    def receipts(self) -> list[Receipt]:
        """Every posting and void, oldest first."""
        with self._read_transaction() as conn:
            return self._receipts(conn)

    def _receipts(self, conn: Connection) -> list[Receipt]:
        postings = self._exec(
            conn, f"SELECT {_POSTING_COLUMNS} FROM postings ORDER BY id"
        ).fetchall()
        voids = self._exec(
            conn, "SELECT reversal_key FROM voids ORDER BY posted_at, key"
        ).fetchall()
        found = [self._receipt(row) for row in postings] + [
            r for (k,) in voids if (r := self._void_receipt(conn, k)) is not None
        ]
        return sorted(found, key=lambda r: r.posted_at)  # stable: postings keep their id order

    # -- operator log -----------------------------------------------------------

    def record_operator_action(
        self,
        key: str,
        *,
        transfer_id: str,
        action: OperatorActionKind | str,
        operator: str,
        note: str | None,
    ) -> OperatorRecord:
        """Append who acted on a transfer, how and why to the operator log.

        Idempotent by `key`: the same entry again returns the first record
        (marked `replayed`); anything else under that key is an
        `IdempotencyConflict`. A retry's note is optional, a resolution's is
        required. Entries are never changed or removed (the table refuses it).
        """
        kind = OperatorActionKind(action)
        operator = validate_operator(operator)
        if note is not None or kind is OperatorActionKind.RESOLVE:
            note = validate_memo(note)
        if not key or not transfer_id:
            raise ValueError("An operator record needs a key and a transfer id")
        with self._transaction() as conn:
            existing = self._operator_record_by_key(conn, key)
            if existing is not None:
                wanted = (transfer_id, kind, operator, note)
                found = (existing.transfer_id, existing.action, existing.operator, existing.note)
                if wanted != found:
                    raise IdempotencyConflict(
                        key,
                        f"first a {existing.action} of {existing.transfer_id}"
                        f" by {existing.operator}",
                    )
                return replace(existing, replayed=True)
            recorded_at = self._now()
            self._exec(
                conn,
                f"INSERT INTO operator_log ({_OPERATOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                key,
                transfer_id,
                kind.value,
                operator,
                note,
                recorded_at,
            )
        return OperatorRecord(
            key=key,
            transfer_id=transfer_id,
            action=kind,
            operator=operator,
            note=note,
            recorded_at=datetime.fromisoformat(recorded_at),
        )

    def operator_actions(self, transfer_id: str | None = None) -> list[OperatorRecord]:
        """The operator log, oldest first: every entry, or one transfer's."""
        select = f"SELECT {_OPERATOR_COLUMNS} FROM operator_log"
        with self._transaction() as conn:
            if transfer_id is None:
                rows = self._exec(conn, f"{select} ORDER BY id").fetchall()
            else:
                rows = self._exec(
                    conn, f"{select} WHERE transfer_id = ? ORDER BY id", transfer_id
                ).fetchall()
        return [_operator_record(row) for row in rows]

    def _operator_record_by_key(self, conn: Connection, key: str) -> OperatorRecord | None:
        row = self._exec(
            conn, f"SELECT {_OPERATOR_COLUMNS} FROM operator_log WHERE key = ?", key
        ).fetchone()
        return None if row is None else _operator_record(row)

    # -- internals --------------------------------------------------------------

    def _customer(self, conn: Connection, account_id: str, *, lock: bool = False) -> Account:
        """A customer account, whatever its status; AccountNotFound or AccountNotCustomer."""
        row = self._account_row(conn, account_id, lock=lock)
        if row is None:
            raise AccountNotFound(account_id)
        account = self._account(row)
        if account.kind is not AccountKind.CUSTOMER:
            raise AccountNotCustomer(account_id, account.kind.value)
        return account

    def _require_customer(
        self, conn: Connection, account_id: str, *, lock: bool = False
    ) -> Account:
        """A customer account that takes postings (open, neither frozen nor closed)."""
        account = self._customer(conn, account_id, lock=lock)
        _require_open(account.id, account.status)
        return account

    def _settled_by(self, conn: Connection, key: str) -> str | None:
        """The settlement that took `key` over, if one did."""
        row = self._exec(conn, "SELECT settlement_key FROM settled WHERE key = ?", key).fetchone()
        return None if row is None else str(row[0])

    def _take_over(self, conn: Connection, settlement_key: str, source_keys: Sequence[str]) -> None:
        """Mark `source_keys` as settled by `settlement_key` (StepSettled if another did)."""
        for source_key in dict.fromkeys(source_keys):
            other = self._settled_by(conn, source_key)
            if other is None:
                self._exec(
                    conn,
                    "INSERT INTO settled (key, settlement_key, settled_at) VALUES (?, ?, ?)",
                    source_key,
                    settlement_key,
                    self._now(),
                )
            elif other != settlement_key:
                raise StepSettled(source_key, other)

    def _replay(
        self,
        conn: Connection,
        key: str,
        kind: PostingKind,
        from_account: str,
        to_account: str,
        amount: Decimal,
        transfer: str | None = None,
    ) -> Receipt | None:
        """The first receipt if `key` already applied; StepVoided, StepReversed or StepSettled.

        A key first applied for another transfer (its memo names another
        transfer) is an IdempotencyConflict even when the movement matches.
        Postings without a memo (older ledgers, callers that name no
        transfer) are compared by their movement alone.
        """
        settlement = self._settled_by(conn, key)
        if settlement is not None:
            raise StepSettled(key, settlement)
        existing = self._receipt_by_key(conn, key)
        if existing is None:
            if self._exec(conn, "SELECT 1 FROM voids WHERE key = ?", key).fetchone():
                raise StepVoided(key)
            return None
        reversal = self._exec(conn, "SELECT key FROM postings WHERE reverses = ?", key).fetchone()
        if reversal is not None:
            raise StepReversed(key, reversal[0])
        wanted = (kind, from_account, to_account, amount)
        found = (existing.kind, existing.from_account, existing.to_account, existing.amount)
        other_transfer = None not in (transfer, existing.memo) and transfer != existing.memo
        if wanted != found or other_transfer:
            raise IdempotencyConflict(
                key,
                f"first {existing.kind} {existing.amount} {existing.from_account}"
                f" -> {existing.to_account}" + (f" for {existing.memo}" if other_transfer else ""),
            )
        return _replayed(existing)

    def _post(
        self,
        conn: Connection,
        *,
        key: str,
        kind: PostingKind,
        from_account: str,
        to_account: str,
        amount: Decimal,
        currency: str,
        reverses: str | None = None,
        memo: str | None = None,
    ) -> Receipt:
        """Move money between two accounts of `currency`, in the caller's transaction.

        Both accounts must be in `currency`: the ledger never posts between
        two currencies (and the postings table's keys refuse it too).
        """
        units = to_minor(amount, currency)
        # The balance check and the update are one statement: no other
        # transaction can slip between reading a balance and lowering it.
        taken = self._exec(
            conn,
            "UPDATE accounts SET balance = balance - ?"
            " WHERE id = ? AND currency = ? AND (kind <> 'customer' OR balance >= ?)",
            units,
            from_account,
            currency,
            units,
        )
        if taken.rowcount != 1:
            row = self._in_currency(conn, from_account, currency)
            raise InsufficientFunds(from_account, from_minor(int(row[3]), currency), amount)
        given = self._exec(
            conn,
            "UPDATE accounts SET balance = balance + ? WHERE id = ? AND currency = ?",
            units,
            to_account,
            currency,
        )
        if given.rowcount != 1:
            self._in_currency(conn, to_account, currency)
            raise AccountNotFound(to_account)  # pragma: no cover - _in_currency raised
        posted_at = self._now()
        self._exec(
            conn,
            f"INSERT INTO postings ({_POSTING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            key,
            kind.value,
            units,
            from_account,
            to_account,
            reverses,
            posted_at,
            memo,
            currency,
        )
        return Receipt(
            key=key,
            kind=kind,
            amount=amount,
            from_account=from_account,
            to_account=to_account,
            reverses=reverses,
            posted_at=datetime.fromisoformat(posted_at),
            memo=memo,
            currency=currency,
        )

    def _in_currency(self, conn: Connection, account_id: str, currency: str) -> Any:
        """`account_id` in `currency`; else AccountNotFound, or CurrencyMismatch if elsewhere."""
        row = self._account_row(conn, account_id, currency=currency)
        if row is not None:
            return row
        other = self._account_row(conn, account_id)
        if other is None or other[5] == currency:
            raise AccountNotFound(account_id)
        raise CurrencyMismatch.asked(account_id, other[5], currency)

    def _receipt_by_key(self, conn: Connection, key: str) -> Receipt | None:
        row = self._exec(
            conn, f"SELECT {_POSTING_COLUMNS} FROM postings WHERE key = ?", key
        ).fetchone()
        if row is not None:
            return self._receipt(row)
        return self._void_receipt(conn, key)

    def _void_receipt(self, conn: Connection, reversal_key: str) -> Receipt | None:
        row = self._exec(
            conn, "SELECT key, posted_at FROM voids WHERE reversal_key = ?", reversal_key
        ).fetchone()
        if row is None:
            return None
        return Receipt(
            key=reversal_key,
            kind=PostingKind.VOID,
            amount=Decimal("0.00"),
            from_account=None,
            to_account=None,
            reverses=row[0],
            posted_at=_parse_time(row[1]),
        )

    @staticmethod
    def _receipt(row: Any) -> Receipt:
        return Receipt(
            key=row[0],
            kind=PostingKind(row[1]),
            amount=from_minor(int(row[2]), row[8]),
            from_account=row[3],
            to_account=row[4],
            reverses=row[5],
            posted_at=_parse_time(row[6]),
            memo=row[7],
            currency=row[8],
        )


def _require_open(account_id: str, status: AccountStatus) -> None:
    if status is AccountStatus.CLOSED:
        raise AccountClosed(account_id)
    if status is AccountStatus.FROZEN:
        raise AccountFrozen(account_id)


def _parse_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _operator_record(row: Any) -> OperatorRecord:
    return OperatorRecord(
        key=row[0],
        transfer_id=row[1],
        action=OperatorActionKind(row[2]),
        operator=row[3],
        note=row[4],
        recorded_at=_parse_time(row[5]),
    )


def _replayed(receipt: Receipt) -> Receipt:
    return replace(receipt, replayed=True)
