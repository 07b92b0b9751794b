"""A compensation stack for sagas, usable from any Temporal workflow (or plain asyncio).

Register a compensation *before* the step it undoes runs: if the step fails
halfway, or times out after it secretly committed, its compensation still
runs and must cope with "the step never happened". On failure or
cancellation call `Saga.compensate`: the stack unwinds in reverse order of
registration, shielded from cancellation, so a cancel that arrives while
compensations run does not stop them halfway (Temporal's Java `Saga` does not
shield, sdk-java#305). Once the stack is unwound, such a cancel is raised.

Usage in a workflow (activities ``book_car`` ... ``cancel_hotel`` registered
by name on the worker)::

    from datetime import timedelta
    from temporalio import workflow
    from workflows.saga import Saga

    @workflow.defn
    class BookTrip:
        @workflow.run
        async def run(self, trip: str) -> str:
            saga, timeout = Saga(), {"start_to_close_timeout": timedelta(seconds=10)}
            undo = lambda name: lambda: workflow.execute_activity(name, trip, **timeout)
            try:
                saga.add_compensation("cancel_car", undo("cancel_car"))
                await workflow.execute_activity("book_car", trip, **timeout)
                saga.add_compensation("cancel_hotel", undo("cancel_hotel"))
                await workflow.execute_activity("book_hotel", trip, **timeout)
            except BaseException:  # a failed step, or the workflow being cancelled
                await saga.compensate()  # cancel_hotel, then cancel_car
                raise
            return "booked"

A compensation that fails is reported, never swallowed: `compensate` raises
`CompensationError` listing every failure and what is still owed, and a
later call runs only what is still owed.

Nothing here imports Temporal, does I/O, reads a clock or draws random
numbers, so it is deterministic inside a workflow and testable on plain asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

Compensation = Callable[[], Awaitable[object]]
T = TypeVar("T")


@dataclass(frozen=True)
class CompensationFailure:
    """One compensation that raised."""

    name: str
    error: BaseException


class CompensationError(Exception):
    """One or more compensations failed. Every failure is here; none is swallowed.

    Attributes:
        failures: Each failed compensation with its error, in the order they ran.
        pending: Names of compensations still owed (failed or never run), in
            the order the next `Saga.compensate` call would run them.
    """

    def __init__(
        self, failures: list[CompensationFailure], pending: list[str], *, cancelled: bool = False
    ) -> None:
        details = "; ".join(f"{f.name}: {_describe(f.error)}" for f in failures)
        super().__init__(f"{len(failures)} compensation(s) failed: {details}")
        self.failures = failures
        self.pending = pending
        #: A cancellation arrived while the compensations ran.
        self.cancelled = cancelled


def _describe(error: BaseException) -> str:
    # Temporal's ActivityError says only "Activity task failed"; its cause says why.
    cause = error.__cause__ or getattr(error, "cause", None)
    return f"{error} ({cause})" if cause is not None else str(error)


class Saga:
    """A stack of compensations, unwound in reverse on failure.

    Args:
        parallel: Run all compensations at once instead of one by one in
            reverse order. Only for compensations that do not depend on each
            other.
        continue_on_failure: After a compensation fails, still run the rest
            (the default). If false, stop at the first failure; the rest stay
            pending.
        catch: The exception types a compensation may fail with and be
            reported. Others (a bug, a cancellation) propagate at once: in a
            workflow, catch only `ActivityError` and friends, so a bug fails
            the workflow task (and is fixed and replayed) instead of being
            reported as a failed compensation.
        shielded: Run the compensations to the end even if the caller is
            cancelled meanwhile (the default), then raise the cancellation.
            If false, a cancellation stops them where they are.
    """

    def __init__(
        self,
        *,
        parallel: bool = False,
        continue_on_failure: bool = True,
        catch: tuple[type[Exception], ...] = (Exception,),
        shielded: bool = True,
    ) -> None:
        self._parallel = parallel
        self._shielded = shielded
        self._continue = continue_on_failure
        self._catch = catch
        self._stack: list[tuple[str, Compensation]] = []

    def add_compensation(self, name: str, compensation: Compensation) -> None:
        """Push a compensation; register it before the step it undoes runs."""
        self._stack.append((name, compensation))

    @property
    def pending(self) -> list[str]:
        """Compensations still owed, in the order `compensate` would run them."""
        return [name for name, _ in reversed(self._stack)]

    async def compensate(self) -> list[str]:
        """Run every pending compensation, newest first (or all at once).

        A compensation that succeeds leaves the stack, so calling this again
        after a failure runs only what is still owed.

        Returns:
            The names of the compensations that ran and succeeded, in order
            of completion.

        Raises:
            CompensationError: At least one compensation failed; it lists all
                (and says whether a cancellation arrived meanwhile).
            asyncio.CancelledError: The caller was cancelled while the
                compensations ran; all of them ran first.
        """
        run = self._run_parallel if self._parallel else self._run_sequential
        if self._shielded:
            (done, failures), cancelled = await run_shielded(run)
        else:
            (done, failures), cancelled = await run(), False
        if failures:
            raise CompensationError(failures, self.pending, cancelled=cancelled)
        if cancelled:
            raise asyncio.CancelledError()
        return done

    async def _run_sequential(self) -> tuple[list[str], list[CompensationFailure]]:
        done: list[str] = []
        failures: list[CompensationFailure] = []
        for name, compensation in list(reversed(self._stack)):
            try:
                await compensation()
            except self._catch as err:
                failures.append(CompensationFailure(name, err))
                if not self._continue:
                    break
            else:
                self._stack.remove((name, compensation))
                done.append(name)
        return done, failures

    async def _run_parallel(self) -> tuple[list[str], list[CompensationFailure]]:
        entries = list(reversed(self._stack))
        done: list[str] = []

        async def run(entry: tuple[str, Compensation]) -> None:
            await entry[1]()
            done.append(entry[0])

        outcomes = await asyncio.gather(*(run(e) for e in entries), return_exceptions=True)
        failures: list[CompensationFailure] = []
        for entry, outcome in zip(entries, outcomes, strict=True):
            if outcome is None:
                self._stack.remove(entry)
            elif isinstance(outcome, self._catch):
                failures.append(CompensationFailure(entry[0], outcome))
            else:
                raise outcome  # a bug or a cancellation: not ours to report
        return done, failures


async def run_shielded(
    work: Callable[[], Awaitable[T]], on_cancel: Callable[[], object] | None = None
) -> tuple[T, bool]:
    """Run `work` to the end even if the caller is cancelled meanwhile.

    Args:
        work: What to run, in a task of its own that a cancellation of the
            caller does not reach.
        on_cancel: Called each time a cancellation arrives (to log it, say).

    Returns:
        What `work` returned, and whether a cancellation arrived while it ran
        (the caller decides what that means once the work is done).
    """
    task = asyncio.ensure_future(work())
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
            if not task.done() and on_cancel is not None:
                on_cancel()
    return task.result(), cancelled
