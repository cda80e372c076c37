"""Server-side deadlines: one FIFO timer cancels exactly the calls that outlive the timeout."""

from __future__ import annotations

import asyncio
import contextlib

from broker.security.deadlines import Deadlines


async def _call(deadlines: Deadlines, work_s: float) -> str:
    """A call that works `work_s` seconds under a deadline; says how it ended."""
    deadline = deadlines.start()
    try:
        await asyncio.sleep(work_s)
        return "answered"
    except asyncio.CancelledError:
        if deadline.timed_out():
            return "timed out"
        raise
    finally:
        deadlines.finish(deadline)


def test_only_calls_outliving_the_timeout_are_cancelled() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines(0.05)
        outcomes = await asyncio.gather(
            _call(deadlines, 0.0), _call(deadlines, 1.0), _call(deadlines, 0.01)
        )
        assert deadlines.running() == 0
        return list(outcomes)

    assert asyncio.run(main()) == ["answered", "timed out", "answered"]


def test_calls_started_later_get_their_own_full_timeout() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines(0.1)
        first = asyncio.create_task(_call(deadlines, 1.0))
        await asyncio.sleep(0.06)
        second = asyncio.create_task(_call(deadlines, 0.08))  # ends at 0.14, before 0.16
        return [await first, await second]

    assert asyncio.run(main()) == ["timed out", "answered"]


def test_a_call_cancelled_for_another_reason_stays_cancelled() -> None:
    async def main() -> None:
        deadlines = Deadlines(0.05)
        task = asyncio.create_task(_call(deadlines, 1.0))
        await asyncio.sleep(0.01)
        task.cancel()  # the client went away before the deadline
        try:
            await task
        except asyncio.CancelledError:
            return
        raise AssertionError("the cancellation was swallowed")

    asyncio.run(main())


def test_a_swallowed_deadline_leaves_no_pending_cancellation() -> None:
    async def stubborn(deadlines: Deadlines) -> int:
        deadline = deadlines.start()
        try:
            with contextlib.suppress(asyncio.CancelledError):  # a handler ignoring it
                await asyncio.sleep(1.0)
        finally:
            deadlines.finish(deadline)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    async def main() -> int:
        return await asyncio.create_task(stubborn(Deadlines(0.02)))

    assert asyncio.run(main()) == 0


def test_deadlines_work_across_event_loops() -> None:
    deadlines = Deadlines(0.02)
    for _ in range(2):
        assert asyncio.run(_call(deadlines, 1.0)) == "timed out"
