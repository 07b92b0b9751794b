"""The command lines: `starter.py` (`saga-transfer`) and `worker.py` (`saga-transfer-worker`).

One module per command group, each declaring its commands' parsers next to
their handlers; `main` assembles them; `output` is the one place that
chooses text or JSON and maps failures to exit codes.
"""

from app.cli.main import starter_main
from app.cli.output import (
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    exit_process,
)
from app.cli.worker import worker_main

__all__ = [
    "EXIT_NOT_COMPLETED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "exit_process",
    "starter_main",
    "worker_main",
]
