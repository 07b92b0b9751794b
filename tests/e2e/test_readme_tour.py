"""The README's ten-minute tour, run as written against the session's dev server.

Every ```console block of README.md is a list of `$ ` commands, each followed
by excerpts of what it prints. This test runs the commands in order and
checks that every excerpt line appears in the output, so the README and the
commands cannot drift apart. What a reader does by hand is done here:

- `make worker` and `python worker.py ...` (a terminal of their own, or a
  shell's background job) start worker processes, stopped at the end;
- `export` sets the environment of the commands that follow;
- `. .venv/bin/activate` is this interpreter's directory on PATH;
- `sleep N` is not slept: the `status` after it is polled until it shows
  what the README shows (a parked transfer parks at its deadline).

The reader's `.data/`, port 8234 and task queue `money-transfer` become this
test's data directory, a free port and a task queue of its own.
"""

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.processes import free_port
from tests.support.cli import ROOT, WorkerProcess, start_worker, stop_worker

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: How long a `status` may take to show what the README shows.
POLL_SECONDS = 90


@dataclass(frozen=True)
class Step:
    """One `$ ` command of the README and the lines the README shows under it."""

    command: str
    expected: tuple[str, ...]


def tour_steps(text: str) -> list[Step]:
    """The `$ ` commands of every console block, in order, with their excerpt lines."""
    steps: list[Step] = []
    for block in CONSOLE_BLOCK.findall(text):
        command: str | None = None
        expected: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    steps.append(Step(command, tuple(expected)))
                command, expected = line[2:], []
            elif line.strip() and command is not None:
                expected.append(line.rstrip().removesuffix("...").rstrip())
        if command is not None:
            steps.append(Step(command, tuple(expected)))
    return steps


def missing(expected: tuple[str, ...], output: str) -> list[str]:
    """The excerpt lines that the output does not contain."""
    return [line for line in expected if line not in output]


@pytest.fixture
def tour_env(server_env: dict[str, str]) -> dict[str, str]:
    """A reader's fresh checkout: default ledger in the data dir, codec on a free port."""
    env = {k: v for k, v in server_env.items() if k not in ("LEDGER_URL", "TEMPORAL_UI_URL")}
    return env | {
        "TRANSFER_CODEC_URL": f"http://localhost:{free_port()}",
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    }


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """The worker processes the tour starts; each stopped (cleanly) at the end."""
    started: list[WorkerProcess] = []
    yield started
    for worker in reversed(started):
        stop_worker(worker)


def test_the_readme_tour_runs_as_written(
    tour_env: dict[str, str], workers: list[WorkerProcess]
) -> None:
    """Every command of the README's tour prints the lines the README shows under it."""
    env = dict(tour_env)
    codec_port = env["TRANSFER_CODEC_URL"].rsplit(":", 1)[1]
    replacements = {
        "money-transfer": env["TEMPORAL_TASK_QUEUE"],
        ":8234": f":{codec_port}",
        ".data/": f"{env['TRANSFER_DATA_DIR']}/",
    }

    def local(text: str) -> str:
        for reader, here in replacements.items():
            text = text.replace(reader, here)
        return text

    steps = tour_steps(README.read_text())
    commands = [step.command for step in steps]
    assert "make worker" in commands
    assert any("needs_attention" in line for step in steps for line in step.expected)
    assert any(c.startswith("python starter.py retry ") for c in commands)
    assert any(c.startswith("python starter.py resolve ") for c in commands)

    for step in steps:
        command = local(step.command).split("#", 1)[0].strip()
        expected = tuple(local(line) for line in step.expected)
        words = shlex.split(command.removesuffix("&"))
        if command == ". .venv/bin/activate" or words[0] == "sleep":
            continue
        if words[0] == "export":
            env |= dict(word.split("=", 1) for word in words[1:])
            continue
        if words[:2] == ["make", "worker"] or words[:2] == ["python", "worker.py"]:
            worker = start_worker(env, *(["--dev"] if words[0] == "make" else words[2:]))
            workers.append(worker)
            assert [] == missing(expected, worker.output()), worker.output()
            continue
        deadline = time.monotonic() + (POLL_SECONDS if words[2:3] == ["status"] else 0)
        while True:
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            output = done.stdout + done.stderr
            if not missing(expected, output) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert [] == missing(expected, output), f"$ {command}\n{output}"
