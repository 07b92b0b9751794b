"""Run the transfer worker: `python worker.py [--dev]`. See app/ for the code."""

from app.cli import exit_process, worker_main

if __name__ == "__main__":
    exit_process(worker_main())
