"""Activity doubles: factories for steps that hang, stall, fail or freeze an account first.

Each returns an activity declared under the real activity's name, to hand to
a worker as a replacement (``transfer_worker(client, store, debit=...)``).
"""

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities import LedgerActivities, StepInput, StepResult
from ledger import LedgerStore


def hanging_step(
    name: str, *, then: Callable[[StepInput], StepResult] | None = None
) -> tuple[Any, asyncio.Event]:
    """Step `name` that hangs until cancelled, and the event set when it starts hanging.

    With `then` only the first attempt hangs; later attempts run `then` (the
    real step) on a thread.
    """
    started = asyncio.Event()

    @activity.defn(name=name)
    async def hanging(step: StepInput) -> StepResult:
        if then is None or activity.info().attempt == 1:
            started.set()
            await asyncio.sleep(3600)
        if then is None:
            raise AssertionError("unreachable")
        return await asyncio.to_thread(then, step)

    return hanging, started


def stalled_step(
    name: str,
    step: Callable[[StepInput], StepResult],
    release: threading.Event,
    outcomes: list[BaseException | StepResult],
    *,
    up_to: float,
) -> Any:
    """Step `name` that blocks until `release` is set (at most `up_to` s), then runs `step`.

    Like a stalled database call: the attempt can outlive its deadline. What
    `step` returned or raised is appended to `outcomes`.
    """

    @activity.defn(name=name)
    def stalled(request: StepInput) -> StepResult:
        release.wait(up_to)
        try:
            result = step(request)
        except BaseException as err:
            outcomes.append(err)
            raise
        outcomes.append(result)
        return result

    return stalled


def failing_step(name: str, step: Callable[..., Any], *errors: BaseException) -> Any:
    """Step `name` that raises each of `errors` in turn, one per call, then runs `step`.

    It takes `step`'s signature, so the worker converts its input as it would `step`'s.
    """
    pending = list(errors)

    @activity.defn(name=name)
    @functools.wraps(step, updated=())  # not its __dict__: that holds its own definition
    def failing(request: Any) -> Any:
        if pending:
            raise pending.pop(0)
        return step(request)

    return failing


def freezing_credit(
    store: LedgerStore, account_to_freeze: str = "ACC-001", *, frozen_in: LedgerStore | None = None
) -> Any:
    """The real credit on `store`, but first it freezes the source, so the refund will be refused.

    `frozen_in` is the ledger that holds `account_to_freeze` when it is not
    `store` (the source's bank, across banks).
    """
    real = LedgerActivities(store)
    holder = frozen_in or store

    @activity.defn(name="credit")
    def credit(step: StepInput) -> StepResult:
        if holder.get_account(account_to_freeze).status == "open":
            holder.freeze_account(account_to_freeze)
        return real.credit(step)

    return credit
