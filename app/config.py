"""Settings from the environment: the one place that reads it.

Temporal connection settings (address, namespace, API key, TLS, profiles)
are Temporal's own environment configuration, read by the SDK's
`temporalio.envconfig`; the rest is ours.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TASK_QUEUE = "money-transfer"
DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_UI_PORT = 8233
DATA_DIR = Path(".data")


@dataclass(frozen=True)
class Settings:
    """What the worker and the starter need besides the Temporal connection.

    Attributes:
        ledger_url: ``LEDGER_URL``: which ledger store (default a SQLite file
            under ``.data/``).
        task_queue: ``TEMPORAL_TASK_QUEUE``: where transfers run.
        ui_url: ``TEMPORAL_UI_URL``: the Web UI, for links printed to people.
        data_dir: Where the embedded dev server and default ledger keep state.
    """

    ledger_url: str
    task_queue: str
    ui_url: str
    data_dir: Path = DATA_DIR

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings, falling back to the embedded defaults."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("TRANSFER_DATA_DIR", str(DATA_DIR)))
        return cls(
            ledger_url=env.get("LEDGER_URL") or f"sqlite:///{data_dir / 'ledger.db'}",
            task_queue=env.get("TEMPORAL_TASK_QUEUE") or DEFAULT_TASK_QUEUE,
            ui_url=(env.get("TEMPORAL_UI_URL") or f"http://localhost:{DEFAULT_UI_PORT}").rstrip(
                "/"
            ),
            data_dir=data_dir,
        )

    def workflow_url(self, namespace: str, workflow_id: str) -> str:
        """The Web UI page of one workflow."""
        from urllib.parse import quote

        return (
            f"{self.ui_url}/namespaces/{quote(namespace)}/workflows/{quote(workflow_id, safe='')}"
        )
