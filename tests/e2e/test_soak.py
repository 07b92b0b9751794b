"""The bank soak test, bounded: a few hundred transfers under faults, in CI on both stores."""

from pathlib import Path

import pytest

from tests.soak.bank import SoakConfig, _Run, run_soak
from tests.support.ledgers import postgres_schema_url

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("kind", "transfers"), [("sqlite", 200), ("postgres", 120), ("two banks", 150)]
)
async def test_bank_soak_keeps_every_invariant_under_faults(
    kind: str, transfers: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Random transfers, killed workers, failing ledger calls, a server restart: no violation.

    With two banks: a ledger and a worker per bank plus a workflow worker, any
    one of them killed at a time, transfers within and across banks.
    """
    config = SoakConfig(transfers=transfers, clients=6)
    if kind == "postgres":
        config.ledger_url = postgres_schema_url(request.getfixturevalue("postgres_url"))
    if kind == "two banks":
        config.banks = ("north", "south")
    report = await run_soak(config, tmp_path)
    print(report.text())
    seed = f"--seed {report.seed}" + (" --banks north,south" if config.banks else "")
    assert [] == report.violations, f"replay with: make soak SOAK_ARGS='{seed}'"
    assert transfers == report.transfers
    assert report.faults.get("worker SIGKILLs", 0) >= 1
    assert 1 == report.faults.get("server restarts", 0)
    assert report.outcomes.get("completed", 0) > 0
    assert report.outcomes.get("compensated", 0) > 0
    if config.banks:
        bank_kills = sum(
            n for fault, n in report.faults.items() if fault.startswith("SIGKILLs bank")
        )
        assert bank_kills >= 1, report.faults
        roles_killed = sum(1 for fault in report.faults if fault.startswith("SIGKILLs "))
        assert min(3, report.faults["worker SIGKILLs"]) == roles_killed, report.faults


@pytest.mark.parametrize("seed", range(8))
def test_split_roles_die_in_rounds_banks_first(seed: int, tmp_path: Path) -> None:
    """Kills with a worker per bank reach a bank first and every role each round."""
    run = _Run(SoakConfig(seed=seed, banks=("north", "south")), tmp_path)
    run.workers = [(role, None) for role in run.roles()]  # type: ignore[misc]
    victims = []
    for _ in range(9):
        role, _process = run.workers.pop(run.next_victim())
        victims.append(role)
        run.faults["worker SIGKILLs"] += 1
        run.workers.append((role, None))  # type: ignore[arg-type]
    assert victims[0].startswith("bank:")
    assert "workflows" == victims[2]
    for start in range(0, 9, 3):
        assert sorted(run.roles()) == sorted(victims[start : start + 3])
