"""The leader's usage accounting loop: prices open attempt runs and records the increments.

Every `every_s` (and soon after an event that may end an attempt) it reads the runs not yet
settled, prices each from where it is accounted to its end (or to now while it runs) and
writes the increments in one fenced transaction. The store applies an increment only if the
run is still accounted up to its start, so a retried pass, a restart or two leaders overlapping
across a failover never count a stretch twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from broker.accounting.pricing import next_stretch, price_stretch
from broker.store.accounting import UsageIncrement
from broker.store.protocol import Fence
from broker.writer import StoreWriter
from computenet.types import JobEvent, JobState
from topology import Topology

log = logging.getLogger(__name__)

DEFAULT_EVERY_S = 60.0
SUBMITTED = "submitted"
_SETTLE_DELAY_S = 0.2
"""Wait this long after an ending event before a pass, so a burst of them makes one pass."""


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class UsageAccountant:
    """Prices and records the usage of attempt runs, periodically and when attempts end."""

    def __init__(
        self,
        *,
        writer: StoreWriter,
        topology: Topology,
        fence: Fence | None = None,
        every_s: float = DEFAULT_EVERY_S,
        clock: Callable[[], int] = _wall_ms,
        on_recorded: Callable[[Sequence[UsageIncrement]], None] | None = None,
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive (got {every_s})")
        self._writer = writer
        self._topology = topology
        self._fence = fence
        self._every_s = every_s
        self._clock = clock
        self._on_recorded = on_recorded
        self._wake = asyncio.Event()

    def observe(self, events: Sequence[JobEvent]) -> None:
        """Committed events: one that ends an attempt (a final state, a requeue) has its run
        priced soon (other ends, such as a finished move, wait for the next regular pass)."""
        if any(_ends_an_attempt(e) for e in events):
            self._wake.set()

    @property
    def woken(self) -> bool:
        """True once an attempt ended since the last pass began (the loop runs one soon)."""
        return self._wake.is_set()

    async def account(self, *, ended_only: bool = False) -> list[UsageIncrement]:
        """One pass: price every unsettled run up to now (with `ended_only`, only the runs
        that ended); returns the increments recorded."""
        store = self._writer.store
        runs = await self._writer.read(lambda: store.open_runs(ended_only=ended_only))
        now = self._clock()
        increments = []
        for run in runs:
            stretch = next_stretch(run, now)
            if stretch is not None:
                increments.append(price_stretch(self._topology, run, *stretch))
        if not increments:
            return []
        applied = await self._writer.write(
            lambda: store.record_usage(increments, fence=self._fence)
        )
        recorded = [inc for inc, ok in zip(increments, applied, strict=True) if ok]
        skipped = len(increments) - len(recorded)
        if skipped:
            log.info("usage increments skipped (already accounted) count=%d", skipped)
        if recorded and self._on_recorded is not None:
            self._on_recorded(recorded)
        log.debug("usage recorded runs=%d increments=%d", len(runs), len(recorded))
        return recorded

    async def run(self, stop: asyncio.Event) -> None:
        """Account every `every_s` and after attempts end, until `stop` is set.

        A wake after an attempt ended prices the ended runs only, so submissions and ends
        under load never re-price every running attempt; the full pass keeps its own clock.
        """
        failures = 0
        next_full = time.monotonic()
        while not stop.is_set():
            full = time.monotonic() >= next_full
            self._wake.clear()  # ends committed from here on wake the next pass
            try:
                await self.account(ended_only=not full)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("usage accounting pass failed failures=%d", failures)
            if full:
                # on repeated failures, retry sooner (backing off), never later than usual
                retry_s = min(self._every_s, 0.5 * 2**failures) if failures else self._every_s
                next_full = time.monotonic() + retry_s
            await self._wait(stop, max(0.0, next_full - time.monotonic()))
            if self._wake.is_set() and not stop.is_set():
                await asyncio.sleep(_SETTLE_DELAY_S)  # a burst of ends makes one pass

    async def _wait(self, stop: asyncio.Event, timeout_s: float) -> None:
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()


def _ends_an_attempt(event: JobEvent) -> bool:
    return event.state.is_final or (event.state == JobState.PENDING and event.cause != SUBMITTED)
