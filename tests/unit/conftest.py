"""Fixtures of the unit tests that run a command line in this process."""

from pathlib import Path

import pytest

from tests.support.cli import NOWHERE
from tests.support.ledgers import seeded_ledger


@pytest.fixture
def ledger_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A seeded ledger of its own, and a Temporal address where nothing answers."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    seeded_ledger(url).close()
    monkeypatch.setenv("LEDGER_URL", url)
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TEMPORAL_ADDRESS", NOWHERE)
