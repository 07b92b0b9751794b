"""The benchmark's report: the terminal tables, `bench-report.json`, the docs page.

    python -m bench.report bench-report.json                 # markdown on stdout
    python -m bench.report bench-report.json --page docs/performance.md

The second form (`make bench-docs`) rewrites only what lies between the
page's `<!-- bench:begin -->` and `<!-- bench:end -->` markers, so the
figures on the page always come from a report, with its date, its command
and its machine next to them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from app.temporal import temporal_cli
from bench.dated import summary
from bench.measure import PhaseReport
from ledger.audit import AuditReport
from ledger.shown import redact_url

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
#: Columns of the phase table: terminal heading, page heading, JSON key, format.
_COLUMNS = [
    ("c", "c", "concurrency", "{}"),
    ("n", "n", "workflows", "{}"),
    ("wf/s", "wf/s", "throughput_per_s", "{:.1f}"),
    ("p50 ms", "p50 ms", "p50_ms", "{:.0f}"),
    ("p95 ms", "p95 ms", "p95_ms", "{:.0f}"),
    ("p99 ms", "p99 ms", "p99_ms", "{:.0f}"),
    ("CPU ms/wf", "worker CPU ms/wf", "cpu_ms_per_workflow", "{:.1f}"),
    ("RSS MiB", "peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("events", "events", "history_events", "{:.0f}"),
    ("bytes", "history bytes", "history_bytes", "{:.0f}"),
]


class MarkersMissing(ValueError):
    """The page lacks one begin and one end marker, in that order."""


def phase_row(phase: PhaseReport) -> dict[str, Any]:
    """A phase as a row of the JSON report."""
    r = phase.result
    # A long phase: workflows per second in each successive thousand, to
    # tell a slowdown over time from a noisy spell of the machine.
    thousands = (
        [round(r.window_throughput(max(k, 1), k + 1000), 2) for k in range(0, r.count - 999, 1000)]
        if r.count >= 2000
        else None
    )
    return {
        "scenario": phase.scenario,
        "label": phase.label,
        "concurrency": phase.concurrency,
        "workflows": r.count,
        "throughput_per_s": round(r.throughput, 2),
        "p50_ms": round(r.percentile(50) * 1000, 1),
        "p95_ms": round(r.percentile(95) * 1000, 1),
        "p99_ms": round(r.percentile(99) * 1000, 1),
        "cpu_ms_per_workflow": round(r.cpu_per_workflow * 1000, 2),
        "peak_rss_mib": round(r.peak_rss / 2**20, 1),
        "history_events": None if phase.events is None else round(phase.events, 1),
        "history_bytes": None if phase.history_bytes is None else round(phase.history_bytes),
        "outcomes": r.outcomes,
        "throughput_per_thousand": thousands,
        "problems": phase.problems,
        "dated": phase.dated,
    }


def _cells(row: dict[str, Any]) -> list[str]:
    return ["-" if row[key] is None else form.format(row[key]) for _, _, key, form in _COLUMNS]


def phase_table(phases: Sequence[PhaseReport]) -> Table:
    """The phases as a terminal table."""
    table = Table(title="Phases (latency: start call to result; dated: due moment to close)")
    table.add_column("scenario", justify="left")
    for heading, *_ in _COLUMNS:
        table.add_column(heading, justify="right")
    for phase in phases:
        flag = " [red]!" if phase.problems else ""
        table.add_row(phase.scenario + flag, *_cells(phase_row(phase)))
    return table


def dated_summaries(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A sentence for each dated phase, against the plain transfer at the same concurrency."""
    plain = {row["concurrency"]: row for row in rows if row["scenario"] == "transfer"}
    return [summary(row, plain.get(row["concurrency"])) for row in rows if row.get("dated")]


def ratio_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The ratios as a terminal table."""
    table = Table(title="Ratios (same run)")
    for name in ["ratio", "value", "target", "met"]:
        table.add_column(name)
    for row in rows:
        table.add_row(
            row["ratio"], f"{row['value']:.2f}", row["target"], "yes" if row["met"] else "no"
        )
    return table


def show(
    console: Console,
    phases: Sequence[PhaseReport],
    ratios: Sequence[dict[str, Any]],
    skipped: dict[str, str],
    audit: AuditReport,
    problems: Sequence[str],
) -> None:
    """The end of a run on the terminal: both tables, what was skipped, the audit, problems."""
    console.print(phase_table(phases))
    for line in dated_summaries([phase_row(p) for p in phases]):
        console.print(line)
    console.print(ratio_table(ratios))
    for key, why in skipped.items():
        console.print(f"skipped {key}: {why}")
    console.print(
        f"Ledger audit: {'balanced' if audit.ok else 'FINDINGS'} "
        f"({audit.postings} postings, {audit.transfers} transfers)"
    )
    for problem in problems:
        console.print(f"[red]problem: {problem}")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cli = subprocess.run([temporal_cli(), "--version"], capture_output=True, text=True, check=False)

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "temporal_cli": cli.stdout.strip(),
        "temporalio": version("temporalio"),
        "dbos": version("dbos"),
    }


def command_line(argv: Sequence[str]) -> str:
    """The benchmark's command as the report shows it, a ledger URL's secrets redacted."""
    shown, url_next = ["python", "-m", "bench"], False
    for arg in argv:
        if url_next:
            arg, url_next = redact_url(arg), False
        elif arg.startswith("--ledger-url="):
            arg = "--ledger-url=" + redact_url(arg.removeprefix("--ledger-url="))
        elif arg == "--ledger-url":
            url_next = True
        shown.append(arg)
    return shlex.join(shown)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a run (`python -m bench`'s), as the report records them."""
    return {
        "transfers": args.transfers,
        "sequential": args.sequential,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "dated": args.dated,
        "ledger": "postgresql" if args.ledger_url else "sqlite",
        "project_server": os.environ.get("TEMPORAL_ADDRESS", "embedded"),
    }


def document(
    *,
    date: str,
    command: str,
    settings: dict[str, Any],
    seconds: float,
    phases: Sequence[PhaseReport],
    ratios: list[dict[str, Any]],
    skipped: dict[str, str],
    audit: AuditReport,
    problems: list[str],
) -> dict[str, Any]:
    """The JSON report: the machine, when and how it ran, every phase, every ratio."""
    return {
        "machine": machine(),
        "date": date,
        "command": command,
        "settings": settings,
        "seconds": round(seconds, 1),
        "phases": [phase_row(p) for p in phases],
        "ratios": ratios,
        "skipped": skipped,
        "ledger_audit": {"ok": audit.ok, "postings": audit.postings, "findings": audit.findings},
        "problems": problems,
    }


def markdown(report: dict[str, Any]) -> str:
    """A JSON report as the docs page's section: when, how, where, then the two tables."""
    m, s = report["machine"], report["settings"]
    lines = [
        f"Measured {report.get('date', '(date not recorded)')} with "
        f"`{report.get('command', '(command not recorded)')}`: "
        f"{s['transfers']} workflows at c={s['concurrency']} and {s['sequential']} at c=1 "
        f"per scenario, in {s['rounds']} interleaved round(s) after {s['warmup']} warm-up "
        f"workflows, {s['workers']} worker process(es), {s['ledger']} ledger, "
        f"project server {s['project_server']}; {report['seconds']} s in all.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['processor']}), {m['platform']}, Python {m['python']}, "
        f"{m['temporal_cli']}, temporalio {m['temporalio']}, dbos {m['dbos'] or 'not installed'}.",
        "",
        "| Scenario | " + " | ".join(page for _, page, _, _ in _COLUMNS) + " |",
        "|---|" + "---:|" * len(_COLUMNS),
    ]
    lines += [
        f"| {row['scenario']} | " + " | ".join(_cells(row)) + " |" for row in report["phases"]
    ]
    dated = dated_summaries(report["phases"])
    if dated:
        lines += ["", *dated]
    lines += ["", "| Ratio (same run) | Value | Goal | Met |", "|---|---:|---|---|"]
    lines += [
        f"| {r['ratio']} | {r['value']:.2f} | {r['target']} | {'yes' if r['met'] else 'no'} |"
        for r in report["ratios"]
    ]
    audit = report["ledger_audit"]
    lines += ["", f"Ledger audit: {'balanced' if audit['ok'] else 'FINDINGS'}."]
    lines += [f"Skipped {key}: {why}." for key, why in report["skipped"].items()]
    lines += [f"Problem: {problem}." for problem in report["problems"]]
    return "\n".join(lines) + "\n"


def replace_between_markers(page: str, text: str) -> str:
    """`page` with what lies between its markers replaced by `text`.

    Raises:
        MarkersMissing: the page lacks one begin marker followed by one end marker.
    """
    if page.count(BEGIN) != 1 or page.count(END) != 1 or page.index(BEGIN) > page.index(END):
        raise MarkersMissing(f"expected one {BEGIN} and, after it, one {END}")
    head, rest = page.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{text}{END}{tail}"


def main(argv: Sequence[str] | None = None) -> None:
    """Print a JSON report as markdown, or write it into a page between its markers."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("report", type=Path, help="a bench-report.json")
    parser.add_argument("--page", type=Path, help="rewrite this page between its markers")
    args = parser.parse_args(argv)
    text = markdown(json.loads(args.report.read_text()))
    if args.page is None:
        sys.stdout.write(text)
        return
    try:
        args.page.write_text(replace_between_markers(args.page.read_text(), text))
    except MarkersMissing as error:
        parser.error(f"{args.page}: {error}")


if __name__ == "__main__":
    main()
