"""`make bench`: the transfer saga measured against Temporal's own floor, in one run.

    python -m bench [--transfers N] [--sequential M] [--concurrency C] [--dated D]
                    [--workers W] [--ledger-url URL] [--json PATH] [--only KEYS]

Starts two dev servers from the installed Temporal CLI, one after the other:
an untuned one (`temporal server start-dev` defaults, in memory) and one
exactly as the project embeds it (tuned dynamic config, SQLite file). With
TEMPORAL_ADDRESS set, that server takes the tuned one's place. Every scenario
runs its workflows once at concurrency 1 (`--sequential` of them) and once at
concurrency C (`--transfers` of them); see bench/scenarios.py for the list.
The `dated` scenario instead starts `--dated` transfers all due at one moment
a little ahead, once (bench/dated.py).
"""

import argparse
import asyncio
import os
import sys

from rich.console import Console

from app.encryption import generate_ring
from bench.run import run


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--transfers", type=int, default=1000, help="per phase at concurrency C")
    parser.add_argument("--sequential", type=int, default=200, help="per phase at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=8, help="C (default 8)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per scenario")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="split each phase into rounds, interleaved across scenarios (default 3)",
    )
    parser.add_argument(
        "--dated",
        type=int,
        default=1000,
        help="transfers of the dated scenario, all due at one moment (default 1000)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured workflows first")
    parser.add_argument("--ledger-url", help="the ledger (default: a fresh SQLite file)")
    parser.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    parser.add_argument("--only", metavar="KEYS", help="comma-separated scenario keys")
    args = parser.parse_args()
    if args.dated < 1:
        parser.error(f"--dated must be at least 1, not {args.dated}")
    # Payloads are encrypted as in production (the floor's too, so ratios stay
    # fair; only floor-untuned runs the SDK's plain defaults). A key of this
    # run's own unless the caller configured one; worker processes inherit it.
    if "TRANSFER_ENCRYPTION_KEYS" not in os.environ:
        os.environ["TRANSFER_ENCRYPTION_KEYS"] = generate_ring().env_value()
    console = Console(stderr=False)
    code = asyncio.run(run(args, console))
    sys.stdout.flush()
    os._exit(code)  # the SDK can crash at interpreter exit (sdk-python#300)


main()
