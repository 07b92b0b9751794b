"""`make bench`: the transfer saga measured against Temporal's own floor, in one run.

    python -m bench [--transfers N] [--sequential M] [--concurrency C]
                    [--workers W] [--ledger-url URL] [--json PATH] [--only KEYS]

Starts two dev servers from the installed Temporal CLI, one after the other:
an untuned one (`temporal server start-dev` defaults, in memory) and one
exactly as the project embeds it (tuned dynamic config, SQLite file). With
TEMPORAL_ADDRESS set, that server takes the tuned one's place. Every scenario
runs its workflows once at concurrency 1 (`--sequential` of them) and once at
concurrency C (`--transfers` of them); see bench/scenarios.py for the list.
"""

from bench.run import main

main()
