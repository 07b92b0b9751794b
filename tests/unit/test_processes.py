"""app.processes: start a child, return once it says it is ready, stop it on the way out."""

import signal
import sys
from pathlib import Path

import pytest

from app.processes import (
    ProcessNotReady,
    free_port,
    running_process,
    running_process_sync,
    start_process,
    start_process_sync,
    stop_process,
)

#: A child that says it is ready, then waits to be stopped.
READY_THEN_WAIT = "import time; print('ready now', flush=True); time.sleep(60)"
#: A child that says something else and exits with 3.
EXITS_EARLY = "import sys; print('cannot start: no config', flush=True); sys.exit(3)"
#: A child that stays up and says nothing.
SILENT = "import time; time.sleep(60)"
#: A child that says it is ready, then reports SIGINT and exits 0 on it.
STOPS_ON_SIGINT = (
    "import signal, sys, time\n"
    "def stop(*_):\n    print('Received SIGINT', flush=True); sys.exit(0)\n"
    "signal.signal(signal.SIGINT, stop)\n"
    "print('ready now', flush=True)\n"
    "time.sleep(60)\n"
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_a_child_that_prints_the_ready_text_is_returned_running(tmp_path: Path) -> None:
    """start_process returns once the ready text is in the log, with the child still running."""
    child = await start_process(python(READY_THEN_WAIT), log=tmp_path / "c.log", ready="ready now")
    try:
        assert child.returncode is None
        assert "ready now" in (tmp_path / "c.log").read_text()
    finally:
        await stop_process(child)


async def test_a_child_that_exits_early_raises_with_its_output(tmp_path: Path) -> None:
    """A child that exits before the ready text: ProcessNotReady naming its code and output."""
    with pytest.raises(ProcessNotReady, match=r"(?s)exited with 3.*cannot start: no config"):
        await start_process(python(EXITS_EARLY), log=tmp_path / "c.log", ready="ready now")


async def test_a_silent_child_raises_after_the_timeout(tmp_path: Path) -> None:
    """A child that never says it is ready: ProcessNotReady once `ready_within` has passed."""
    log = tmp_path / "c.log"
    with pytest.raises(ProcessNotReady, match="was not ready after 1 s"):
        await start_process(python(SILENT), log=log, ready="ready now", ready_within=1)


async def test_the_context_stops_the_child_on_the_way_out(tmp_path: Path) -> None:
    """running_process stops the child (SIGTERM) when the block ends."""
    async with running_process(
        python(READY_THEN_WAIT), log=tmp_path / "c.log", ready="ready now"
    ) as child:
        assert child.returncode is None
    assert -signal.SIGTERM == child.returncode


async def test_stop_process_sends_the_stop_signal_asked_for(tmp_path: Path) -> None:
    """stop_process(stop_signal=SIGINT): a child that stops cleanly on Ctrl-C exits 0."""
    log = tmp_path / "c.log"
    child = await start_process(python(STOPS_ON_SIGINT), log=log, ready="ready now")
    assert 0 == await stop_process(child, stop_signal=signal.SIGINT)
    assert "Received SIGINT" in log.read_text()


def test_the_blocking_variants_follow_the_same_rules(tmp_path: Path) -> None:
    """start_process_sync raises for an early exit; running_process_sync returns, then stops."""
    with pytest.raises(ProcessNotReady, match="cannot start: no config"):
        start_process_sync(python(EXITS_EARLY), log=tmp_path / "a.log", ready="ready now")
    with running_process_sync(
        python(READY_THEN_WAIT), log=tmp_path / "b.log", ready="ready now"
    ) as child:
        assert child.poll() is None
    assert -signal.SIGTERM == child.returncode


def test_free_port_is_a_port_nothing_listens_on() -> None:
    """free_port returns a port number a server could bind (not a privileged one)."""
    port = free_port()
    assert 1024 <= port <= 65535
