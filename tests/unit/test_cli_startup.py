"""Commands that never talk to Temporal start without importing its SDK (or pydantic).

Nor does any command import OpenTelemetry unless an OTEL_* variable turns tracing on.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Runs one command line in a fresh interpreter, then reports which heavy modules it loaded.
PROBE = """
import json, sys
from app.cli import starter_main, worker_main
main = worker_main if sys.argv[1] == "worker" else starter_main
try:
    code = main(sys.argv[2:])
except SystemExit as stop:  # --help and --version
    code = stop.code
heavy = sorted(
    {name.split(".")[0] for name in sys.modules} & {"temporalio", "pydantic", "opentelemetry"}
)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""

LEDGER_ONLY = [
    ["starter", "--help"],
    ["starter", "--version"],
    ["starter", "transfer", "--help"],
    ["starter", "accounts", "list"],
    ["starter", "accounts", "open", "ACC-001", "--owner", "Alice", "--balance", "10"],
    ["starter", "audit", "--no-temporal"],
    ["starter", "operator-log"],
    ["starter", "migrate"],
    ["worker", "--help"],
]


def loaded_by(command: list[str], data_dir: Path, **extra: str) -> dict[str, object]:
    """Run `command` in a fresh interpreter; its exit code and the heavy modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"TRANSFER_DATA_DIR": str(data_dir), "TRANSFER_ENCRYPTION": "off"} | extra
    env.pop("TRANSFER_LEDGER_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report: dict[str, object] = json.loads(done.stderr.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("command", LEDGER_ONLY, ids=" ".join)
def test_a_command_without_temporal_does_not_import_it(command: list[str], tmp_path: Path) -> None:
    """`--help`, `--version` and the ledger's commands load neither temporalio nor pydantic."""
    assert {"code": 0, "heavy": []} == loaded_by(command, tmp_path)


def test_the_probe_sees_a_command_that_imports_temporal(tmp_path: Path) -> None:
    """The check is not blind: `list` (visibility) imports temporalio before it connects."""
    report = loaded_by(["starter", "list"], tmp_path, TEMPORAL_ADDRESS="127.0.0.1:1")
    assert 3 == report["code"]  # nothing answers there
    # ... and without an OTEL_* variable, no OpenTelemetry: tracing costs nothing when off.
    assert ["pydantic", "temporalio"] == report["heavy"]


def test_an_otel_variable_turns_tracing_on(tmp_path: Path) -> None:
    """With OTEL_TRACES_EXPORTER=console the same command loads OpenTelemetry (it traces)."""
    report = loaded_by(
        ["starter", "list"],
        tmp_path,
        TEMPORAL_ADDRESS="127.0.0.1:1",
        OTEL_TRACES_EXPORTER="console",
    )
    assert {"code": 3, "heavy": ["opentelemetry", "pydantic", "temporalio"]} == report


@pytest.mark.parametrize(
    "setting",
    [
        {"OTEL_TRACES_EXPORTER": "jaegr"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "udp"},
    ],
    ids=["exporter", "protocol"],
)
def test_an_exporter_or_protocol_not_installed_is_a_one_line_error(
    setting: dict[str, str], tmp_path: Path
) -> None:
    """A mistyped exporter or protocol: exit 2 before connecting, one line naming the choices."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | setting
    done = subprocess.run(
        [sys.executable, "starter.py", "list"],
        cwd=ROOT,
        env=env | {"TRANSFER_DATA_DIR": str(tmp_path), "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (2, "") == (done.returncode, done.stdout)
    [line] = done.stderr.splitlines()
    assert line.startswith("error: OpenTelemetry tracing: ")
    assert line.endswith(
        "installed are OTEL_TRACES_EXPORTER=console, otlp or none, and OTLP over http/protobuf"
    )
