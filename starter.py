"""Open accounts, start and inspect transfers, run the demo: `python starter.py --help`."""

import sys

from app.cli import starter_main

if __name__ == "__main__":
    sys.exit(starter_main())
