"""The compensation stack, on plain asyncio: order, failures, options."""

import asyncio

import pytest

from workflows.saga import CompensationError, Saga


class StepFailed(Exception):
    pass


class CompensationBroke(Exception):
    pass


async def run_saga(steps: int, fail_at: int, saga: Saga, log: list[str]) -> None:
    """Run `steps` steps, registering each compensation first; step `fail_at` raises."""
    for i in range(1, steps + 1):

        async def undo(i: int = i) -> None:
            log.append(f"undo{i}")

        saga.add_compensation(f"undo{i}", undo)
        if i == fail_at:
            raise StepFailed(f"step{i}")
        log.append(f"step{i}")


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
async def test_four_step_saga_compensates_in_reverse_from_the_failed_step(fail_at: int) -> None:
    """Failing at step N runs exactly undoN..undo1, newest first (undoN copes with 'never ran')."""
    saga, log = Saga(), []
    with pytest.raises(StepFailed):
        await run_saga(4, fail_at, saga, log)
    done = await saga.compensate()
    expected_undos = [f"undo{i}" for i in range(fail_at, 0, -1)]
    assert [f"step{i}" for i in range(1, fail_at)] + expected_undos == log
    assert expected_undos == done
    assert [] == saga.pending


async def test_every_compensation_failure_is_reported_and_the_rest_still_run() -> None:
    """Two failing compensations are both in the error; the third still runs."""
    saga, log = Saga(), []

    async def broken(name: str) -> None:
        log.append(name)
        raise CompensationBroke(f"{name} broke")

    async def fine() -> None:
        log.append("fine")

    saga.add_compensation("fine", fine)
    saga.add_compensation("a", lambda: broken("a"))
    saga.add_compensation("b", lambda: broken("b"))
    with pytest.raises(CompensationError) as info:
        await saga.compensate()
    assert ["b", "a", "fine"] == log
    assert ["b", "a"] == [f.name for f in info.value.failures]
    assert ["b broke", "a broke"] == [str(f.error) for f in info.value.failures]
    assert "2 compensation(s) failed: b: b broke; a: a broke" == str(info.value)
    assert ["b", "a"] == info.value.pending


async def test_stop_at_first_failure_leaves_the_rest_pending() -> None:
    """With continue_on_failure=False the unwind stops and says what is still owed."""
    saga, log = Saga(continue_on_failure=False), []

    async def broken() -> None:
        raise CompensationBroke("no")

    async def record(name: str) -> None:
        log.append(name)

    saga.add_compensation("first", lambda: record("first"))
    saga.add_compensation("broken", broken)
    saga.add_compensation("last", lambda: record("last"))
    with pytest.raises(CompensationError) as info:
        await saga.compensate()
    assert ["last"] == log
    assert ["broken", "first"] == info.value.pending


async def test_compensating_again_runs_only_what_is_still_owed() -> None:
    """After a failure, a second compensate() retries the failed one and skips the done one."""
    saga, calls = Saga(), {"flaky": 0, "ok": 0}

    async def flaky() -> None:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise CompensationBroke("not yet")

    async def ok() -> None:
        calls["ok"] += 1

    saga.add_compensation("flaky", flaky)
    saga.add_compensation("ok", ok)
    with pytest.raises(CompensationError):
        await saga.compensate()
    assert ["flaky"] == await saga.compensate()
    assert {"flaky": 2, "ok": 1} == calls


async def test_parallel_compensations_run_concurrently_and_report_all_failures() -> None:
    """In parallel mode every compensation starts before any finishes; failures are all kept."""
    saga, started = Saga(parallel=True), []
    gate = asyncio.Event()

    async def step(name: str, fail: bool) -> None:
        started.append(name)
        if len(started) == 3:
            gate.set()
        await gate.wait()
        if fail:
            raise CompensationBroke(name)

    for name, fail in [("a", False), ("b", True), ("c", True)]:
        saga.add_compensation(name, lambda n=name, f=fail: step(n, f))
    with pytest.raises(CompensationError) as info:
        await asyncio.wait_for(saga.compensate(), 5)
    assert ["c", "b", "a"] == started
    assert {"b", "c"} == {f.name for f in info.value.failures}
    assert ["c", "b"] == info.value.pending


async def test_an_exception_outside_catch_propagates_immediately() -> None:
    """A bug (a type the saga does not catch) is not dressed up as a failed compensation."""
    saga, log = Saga(catch=(CompensationBroke,)), []

    async def bug() -> None:
        raise KeyError("bug")

    async def later() -> None:
        log.append("later")

    saga.add_compensation("later", later)
    saga.add_compensation("bug", bug)
    with pytest.raises(KeyError):
        await saga.compensate()
    assert [] == log
    assert ["bug", "later"] == saga.pending


async def test_nothing_to_compensate_is_fine() -> None:
    """An empty saga compensates to nothing."""
    assert [] == await Saga().compensate()
