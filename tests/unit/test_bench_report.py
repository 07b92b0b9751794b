"""The docs page generator: bench-report.json in, markdown between markers out."""

import json
from pathlib import Path
from typing import Any

import pytest

from bench import report

REPORT: dict[str, Any] = {
    "machine": {
        "platform": "Linux-6.1-x86_64",
        "processor": "x86_64",
        "cpus": 2,
        "python": "3.11.7",
        "temporal_cli": "temporal version 1.9.1",
        "temporalio": "1.35.0",
        "dbos": None,
    },
    "date": "2025-01-02 03:04 UTC",
    "command": "python -m bench --transfers 4 --json bench-report.json",
    "settings": {
        "transfers": 4,
        "sequential": 2,
        "concurrency": 2,
        "workers": 1,
        "rounds": 1,
        "warmup": 1,
        "ledger": "sqlite",
        "project_server": "embedded",
    },
    "seconds": 12.3,
    "phases": [
        {
            "scenario": "transfer",
            "label": "transfer: project default",
            "concurrency": 1,
            "workflows": 2,
            "throughput_per_s": 22.25,
            "p50_ms": 43.4,
            "p95_ms": 61.0,
            "p99_ms": 80.6,
            "cpu_ms_per_workflow": 14.84,
            "peak_rss_mib": 85.2,
            "history_events": 18.0,
            "history_bytes": 4947,
            "outcomes": {"completed": 2},
            "throughput_per_thousand": None,
            "problems": [],
        },
        {
            "scenario": "ledger",
            "label": "ledger alone: debit then credit, no engine",
            "concurrency": 2,
            "workflows": 4,
            "throughput_per_s": 934.61,
            "p50_ms": 1.2,
            "p95_ms": 1.4,
            "p99_ms": 2.0,
            "cpu_ms_per_workflow": 0.93,
            "peak_rss_mib": 92.0,
            "history_events": None,
            "history_bytes": None,
            "outcomes": {"completed": 4},
            "throughput_per_thousand": None,
            "problems": [],
        },
    ],
    "ratios": [
        {
            "ratio": "transfer p50 / untuned floor p50 (c=1)",
            "value": 0.293,
            "target": "<= 0.45",
            "met": True,
        },
        {
            "ratio": "low-latency p50 / DBOS p50 (c=1)",
            "value": 2.371,
            "target": "<= 2",
            "met": False,
        },
    ],
    "skipped": {"dbos": "dbos is not installed"},
    "ledger_audit": {"ok": True, "postings": 12, "findings": []},
    "problems": [],
}

EXPECTED = """\
Measured 2025-01-02 03:04 UTC with `python -m bench --transfers 4 --json bench-report.json`: \
4 workflows at c=2 and 2 at c=1 per scenario, in 1 interleaved round(s) after 1 warm-up \
workflows, 1 worker process(es), sqlite ledger, project server embedded; 12.3 s in all.

Machine: 2 CPUs (x86_64), Linux-6.1-x86_64, Python 3.11.7, temporal version 1.9.1, \
temporalio 1.35.0, dbos not installed.

| Scenario | c | n | wf/s | p50 ms | p95 ms | p99 ms | worker CPU ms/wf | peak RSS MiB | events | history bytes |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| transfer | 1 | 2 | 22.2 | 43 | 61 | 81 | 14.8 | 85 | 18 | 4947 |
| ledger | 2 | 4 | 934.6 | 1 | 1 | 2 | 0.9 | 92 | - | - |

| Ratio (same run) | Value | Goal | Met |
|---|---:|---|---|
| transfer p50 / untuned floor p50 (c=1) | 0.29 | <= 0.45 | yes |
| low-latency p50 / DBOS p50 (c=1) | 2.37 | <= 2 | no |

Ledger audit: balanced.
Skipped dbos: dbos is not installed.
"""  # noqa: E501


def test_a_report_becomes_a_dated_markdown_table_with_its_command_and_machine() -> None:
    """The page's section: when, how and where it ran, then the phases and the ratios."""
    assert EXPECTED == report.markdown(REPORT)


def test_only_the_text_between_the_markers_is_replaced() -> None:
    """Prose before and after the markers stays as it was, byte for byte."""
    page = f"# Title\n\nBefore.\n{report.BEGIN}\nold table\n{report.END}\nAfter.\n"

    assert f"# Title\n\nBefore.\n{report.BEGIN}\nnew\n{report.END}\nAfter.\n" == (
        report.replace_between_markers(page, "new\n")
    )


@pytest.mark.parametrize(
    "page",
    [
        "no markers at all\n",
        f"{report.END}\nend before begin\n{report.BEGIN}\n",
        f"{report.BEGIN}\none\n{report.END}\n{report.BEGIN}\ntwo\n{report.END}\n",
    ],
)
def test_a_page_without_one_pair_of_markers_is_refused(page: str) -> None:
    """Missing, reversed or doubled markers are an error, never a page rewritten wholesale."""
    with pytest.raises(report.MarkersMissing):
        report.replace_between_markers(page, "new\n")


def test_the_generator_writes_the_report_into_the_page(tmp_path: Path) -> None:
    """`python -m bench.report REPORT --page PAGE` rewrites the page between its markers."""
    source = tmp_path / "bench-report.json"
    source.write_text(json.dumps(REPORT))
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\n{report.BEGIN}\nstale\n{report.END}\n\nProse.\n")

    report.main([str(source), "--page", str(page)])

    assert f"# Performance\n\n{report.BEGIN}\n{EXPECTED}{report.END}\n\nProse.\n" == (
        page.read_text()
    )


def test_the_generator_refuses_a_page_without_markers(tmp_path: Path) -> None:
    """A page without markers is left untouched and the command exits with an error."""
    source = tmp_path / "bench-report.json"
    source.write_text(json.dumps(REPORT))
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n")

    with pytest.raises(SystemExit):
        report.main([str(source), "--page", str(page)])
    assert "# Performance\n" == page.read_text()


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--rounds", "1"], "python -m bench --rounds 1"),
        (
            ["--ledger-url", "postgresql://bench:secret@db/test", "--rounds", "1"],
            "python -m bench --ledger-url 'postgresql://***@db/test' --rounds 1",
        ),
        (
            ["--ledger-url=postgresql://u:p@db/t"],
            "python -m bench '--ledger-url=postgresql://***@db/t'",
        ),
        (
            ["--ledger-url", "postgresql://db/t?password=pw&schema=s"],
            "python -m bench --ledger-url 'postgresql://db/t?password=***&schema=s'",
        ),
    ],
)
def test_the_recorded_command_never_shows_a_ledger_urls_credentials(
    argv: list[str], shown: str
) -> None:
    """The command kept in the report shows the ledger's URL, never its user or any password."""
    assert shown == report.command_line(argv)
