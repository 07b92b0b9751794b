"""Banks: which bank an account number names, bank settings, routed requests."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.config import ConfigError, Settings
from workflows.banks import UnknownBank, bank_code, bank_of, bank_task_queue
from workflows.contract import TransferRequest


@pytest.mark.parametrize(
    ("account_id", "code"),
    [("NORTH-001", "north"), ("south-42", "south"), ("ACC", ""), ("N-1-2", "n")],
)
def test_the_bank_code_is_the_account_numbers_first_part(account_id: str, code: str) -> None:
    """Like an IBAN's bank code: the text before the first dash, in any case."""
    assert code == bank_code(account_id)


def test_an_account_of_no_served_bank_is_refused_with_the_expected_form() -> None:
    """ACC-001 names no bank: the message says what numbers look like here."""
    assert "north" == bank_of("NORTH-7", ("north", "south"))
    with pytest.raises(UnknownBank, match=r"ACC-001 names no bank.*NORTH-\.\.\. or SOUTH-\.\.\."):
        bank_of("ACC-001", ("north", "south"))
    assert "bank-north" == bank_task_queue("north")
    assert "demo-7.bank-north" == bank_task_queue("north", "demo-7")


def test_single_bank_is_the_default() -> None:
    """No TRANSFER_BANKS: one ledger, every command as before."""
    settings = Settings.from_env({})
    assert (False, ()) == (settings.multi_bank, settings.banks)
    with pytest.raises(ConfigError, match="No banks are configured"):
        settings.require_bank("north")


def test_each_bank_gets_its_own_ledger() -> None:
    """Defaults under the data dir; a shared LEDGER_URL needs {bank}; per-bank overrides win."""
    settings = Settings.from_env({"TRANSFER_BANKS": "north, south", "TRANSFER_DATA_DIR": "d"})
    assert ("north", "south") == settings.banks
    assert "sqlite:///d/ledger-north.db" == settings.bank_ledger_url("north")
    shared = Settings.from_env(
        {
            "TRANSFER_BANKS": "north,south",
            "LEDGER_URL": "postgresql://h/db?schema=bank_{bank}",
            "LEDGER_URL_SOUTH": "sqlite:///south.db",
        }
    )
    assert "postgresql://h/db?schema=bank_north" == shared.bank_ledger_url("north")
    assert "sqlite:///south.db" == shared.bank_ledger_url("south")
    with pytest.raises(ConfigError, match=r"put \{bank\} in LEDGER_URL"):
        Settings.from_env({"TRANSFER_BANKS": "north", "LEDGER_URL": "sqlite:///one.db"})
    with pytest.raises(ConfigError, match="Invalid bank name 'North!'"):
        Settings.from_env({"TRANSFER_BANKS": "North!"})
    with pytest.raises(ConfigError, match="twice"):
        Settings.from_env({"TRANSFER_BANKS": "north,north"})
    with pytest.raises(ConfigError, match="Unknown bank 'east'"):
        settings.require_bank("east")


def test_a_routed_request_must_name_the_banks_its_accounts_name() -> None:
    """Both banks or neither, and each must be the one in the account number."""
    base = {"source_account": "NORTH-1", "destination_account": "SOUTH-1", "amount": "5"}
    routed = TransferRequest.model_validate(
        base | {"source_bank": "north", "destination_bank": "south"}
    )
    assert (True, True) == (routed.routed, routed.cross_bank)
    assert not TransferRequest.model_validate(base).routed
    with pytest.raises(ValidationError, match="give both or neither"):
        TransferRequest.model_validate(base | {"source_bank": "north"})
    with pytest.raises(ValidationError, match="Account SOUTH-1 is not at bank north"):
        TransferRequest.model_validate(base | {"source_bank": "north", "destination_bank": "north"})
    same = TransferRequest(
        source_account="NORTH-1",
        destination_account="NORTH-2",
        amount=Decimal(1),
        source_bank="north",
        destination_bank="north",
    )
    assert (True, False) == (same.routed, same.cross_bank)
