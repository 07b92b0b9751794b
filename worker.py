"""Run the transfer worker: `python worker.py [--dev]`. See app/ for the code."""

import sys

from app.cli import worker_main

if __name__ == "__main__":
    sys.exit(worker_main())
