"""Open accounts, start and inspect transfers, run the demo: `python starter.py --help`."""

from app.cli import exit_process, starter_main

if __name__ == "__main__":
    exit_process(starter_main())
