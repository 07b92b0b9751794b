"""A small run of `make bench`, so the benchmark cannot rot (numbers are not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import PhaseResult
from bench.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_a_small_benchmark_run_reports_every_scenario(tmp_path: Path) -> None:
    """Every scenario runs at both concurrencies, in two rounds, with the outcomes it must have.

    The dated one runs once, at C only: 20 transfers due at one moment.
    """
    report_path = tmp_path / "bench.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--transfers", "4", "--sequential", "2"),
            *("--concurrency", "2", "--warmup", "1", "--rounds", "2", "--dated", "20"),
            *("--json", str(report_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    phases = {(p["scenario"], p["concurrency"]): p for p in report["phases"]}
    others = [s for s in SCENARIOS if s.runner != "dated"]
    assert {(s.key, c) for s in others for c in (1, 2)} | {("dated", 2)} == set(phases)
    for scenario in others:
        for concurrency, count in [(1, 2), (2, 4)]:
            phase = phases[scenario.key, concurrency]
            assert {scenario.expect: count} == phase["outcomes"], scenario.key
            assert phase["p50_ms"] > 0
            # psutil's CPU times tick in 10 ms: two ledger calls may not show.
            assert phase["cpu_ms_per_workflow"] > (0 if scenario.runner == "worker" else -1)
    # The event counts are exact, not timings: the floor, +1 upsert, one workflow task.
    assert 17 == phases["floor", 1]["history_events"]
    assert 18 == phases["transfer", 1]["history_events"]
    assert 8 == phases["low-latency", 1]["history_events"]
    # A dated transfer: the transfer's 18, plus the timer started and fired, the
    # workflow task it wakes, and the `running` upsert (it starts `scheduled`).
    dated = phases["dated", 2]
    assert {"completed": 20} == dated["outcomes"]
    assert 24 == dated["history_events"]
    assert (20, 0) == (dated["dated"]["sampled"], dated["dated"]["sampled_without_timer"])
    assert dated["dated"]["rss_waiting_samples"] >= 1
    assert report["ledger_audit"]["ok"]
    assert [] == report["problems"]
    names = {r["ratio"] for r in report["ratios"]}
    assert "transfer p50 / untuned floor p50 (c=1)" in names
    assert "low-latency throughput / DBOS throughput (c=2)" in names
    assert "dated throughput once due / transfer throughput (c=2)" in names
    assert "Dated: 20 transfers due at one moment" in done.stdout
    assert "Ratios (same run)" in done.stdout
    # What the docs page shows next to the figures (bench/report.py).
    assert report["command"].startswith("python -m bench --transfers 4 ")
    assert report["date"].endswith(" UTC")


def test_an_unknown_scenario_is_refused() -> None:
    """A typo in --only is an error, not an empty benchmark."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "transfer,nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 2 == done.returncode
    assert "Unknown scenarios: nope" in done.stdout


def test_a_dated_scenario_of_no_transfers_is_refused() -> None:
    """--dated 0 is an error in one line, before any server starts."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--dated", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 2 == done.returncode
    assert "--dated must be at least 1, not 0" in done.stderr


def test_phase_statistics() -> None:
    """Nearest-rank percentiles, windowed throughput and CPU per workflow."""
    result = PhaseResult(
        latencies=[0.1 * i for i in range(1, 101)],
        wall=10.0,
        cpu_seconds=5.0,
        peak_rss=1,
        marks=[0.1 * i for i in range(1, 101)],
    )
    assert pytest.approx(5.0) == result.percentile(50)
    assert pytest.approx(9.9) == result.percentile(99)
    assert pytest.approx(10.0) == result.throughput
    assert pytest.approx(0.05) == result.cpu_per_workflow
    assert pytest.approx(10.0) == result.window_throughput(1, 51)
    assert PhaseResult.from_json(result.to_json()) == result
