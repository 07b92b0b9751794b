"""Fixtures for the command-line tests: an environment for CLI and worker processes."""

import os
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.support.cli import ROOT


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for CLI processes: their own ledger, data dir and task queue."""
    return os.environ | {
        "LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "TRANSFER_DATA_DIR": str(tmp_path),
        "TEMPORAL_TASK_QUEUE": f"e2e-{uuid.uuid4()}",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def server_env(cli_env: dict[str, str], dev_env: WorkflowEnvironment) -> dict[str, str]:
    """`cli_env` pointed at the session's dev server."""
    return cli_env | {"TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host}
