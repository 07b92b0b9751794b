"""Which bank holds an account, and where that bank's steps run.

Each bank owns its accounts in a ledger database of its own, and its ledger
steps run only on its task queue, ``bank-<name>`` (see `bank_task_queue`),
served by that bank's worker. The bank is told from the account number alone, the way an IBAN
carries its bank code: the text before the first ``-``, in any case, names
the bank (``NORTH-001`` is at ``north``). No directory lookup is needed, so
the workflow routes deterministically and a starter needs no database.

Pure functions: the workflow imports this module.
"""

from __future__ import annotations

import re

#: A bank's name: short, lower case, usable in a task queue and a file name.
BANK_NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{0,15}")


class UnknownBank(ValueError):
    """The account number names no bank this deployment serves."""


class InvalidBankName(ValueError):
    """A bank name that is not 1-16 lower-case letters and digits."""


def validate_bank_name(name: object) -> str:
    """Return the bank name if it is well formed, else raise InvalidBankName."""
    if not isinstance(name, str) or not BANK_NAME_PATTERN.fullmatch(name):
        shown = name[:40] if isinstance(name, str) else type(name).__name__
        raise InvalidBankName(
            f"Invalid bank name {shown!r}: use 1-16 lower-case letters and digits, "
            "starting with a letter"
        )
    return name


def bank_code(account_id: str) -> str:
    """The bank code inside an account number: `NORTH-001` -> `north`."""
    code, dash, _ = account_id.partition("-")
    return code.lower() if dash else ""


def bank_of(account_id: str, banks: tuple[str, ...] | list[str]) -> str:
    """The bank of `account_id` among `banks`.

    Raises:
        UnknownBank: The account number names none of them.
    """
    code = bank_code(account_id)
    if code not in banks:
        expected = " or ".join(f"{b.upper()}-..." for b in banks)
        raise UnknownBank(
            f"Account {account_id} names no bank served here: account numbers start with "
            f"their bank's code ({expected})"
        )
    return code


#: The transfer workflows' task queue, unless TEMPORAL_TASK_QUEUE says otherwise.
DEFAULT_TASK_QUEUE = "money-transfer"


def bank_task_queue(bank: str, workflow_task_queue: str = DEFAULT_TASK_QUEUE) -> str:
    """The task queue of a bank's ledger steps: `bank-<name>`.

    A deployment on another workflow task queue (the demo, the tests, a
    second environment on one cluster) gets bank queues of its own,
    `<workflow task queue>.bank-<name>`, so it can never hand a step to
    another deployment's bank worker and ledger.
    """
    queue = f"bank-{bank}"
    return queue if workflow_task_queue == DEFAULT_TASK_QUEUE else f"{workflow_task_queue}.{queue}"
