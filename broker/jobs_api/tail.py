"""Follows the events other replicas commit, so watches and the leader see every one of them.

On PostgreSQL every write transaction that records events also notifies; this tail wakes on
the notification (or after `poll_s` without one, in case a notification was lost), reads the
events past its cursor and hands them on. Sequence numbers are committed in order, so the
cursor never skips an event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence

from broker.jobs_api.hub import EventHub
from broker.store import ChangeFeed
from broker.writer import StoreWriter
from computenet.types import JobEvent

log = logging.getLogger(__name__)

POLL_S = 1.0
BATCH = 1000


class EventTail:
    """Reads newly committed events from the database and publishes them."""

    def __init__(
        self,
        *,
        writer: StoreWriter,
        feed: ChangeFeed,
        hub: EventHub,
        on_events: Callable[[Sequence[JobEvent]], None],
        poll_s: float = POLL_S,
    ) -> None:
        self._writer = writer
        self._feed = feed
        self._hub = hub
        self._on_events = on_events
        self._poll_s = poll_s
        self.cursor = hub.last_sequence

    async def catch_up(self) -> int:
        """Read and publish every event past the cursor; returns how many."""
        store = self._writer.store
        total = 0
        while True:
            query = functools.partial(store.events_after, self.cursor, limit=BATCH)
            events = await self._writer.read(query)
            if not events:
                return total
            self.cursor = events[-1].sequence
            total += len(events)
            self._hub.publish(events)
            self._on_events(events)
            if len(events) < BATCH:
                return total

    async def run(self, stop: asyncio.Event) -> None:
        """Wait for notifications and catch up after each, until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self._feed.wait, self._poll_s)
                if not stop.is_set():
                    await self.catch_up()
            except Exception as exc:  # the database is away: keep trying, the cursor holds
                log.warning("event tail failed error=%s", exc)
                await asyncio.sleep(self._poll_s)
