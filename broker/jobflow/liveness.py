"""The liveness loop: applies heartbeat TTLs and hands status changes to those who react."""

from __future__ import annotations

import asyncio
import logging
import time

from broker.jobflow.placement_loop import PlacementLoop
from broker.jobflow.tracker import JobTracker
from broker.sites.registry import SiteRegistry, StatusChange
from broker.sites.sessions import SessionTable
from computenet.types import SiteStatus

log = logging.getLogger(__name__)


class LivenessLoop:
    """Marks silent sites suspect, then lost (their jobs go back); returning sites add capacity.

    A lost site's stream is ended at the verdict: a site that was only stalled (its stream
    still open) must come back through a new hello, whose reconciliation stops every attempt
    the broker moved away meanwhile. Reports on the old stream would never say so.
    """

    def __init__(
        self,
        *,
        registry: SiteRegistry,
        sessions: SessionTable,
        tracker: JobTracker,
        placement: PlacementLoop,
        every_s: float = 0.25,
    ) -> None:
        self._registry = registry
        self._sessions = sessions
        self._tracker = tracker
        self._placement = placement
        self._every_s = every_s

    async def on_status_changes(self, changes: list[StatusChange]) -> None:
        """React to liveness changes: a lost site's stream ends and its jobs go back."""
        for change in changes:
            log.info("site status site=%s %s->%s", change.site_id, change.old, change.new)
            if change.new == SiteStatus.LOST:
                self._end_stream(change)
                await self._tracker.site_lost(change.site_id)
            elif change.new == SiteStatus.ACTIVE:
                self._placement.capacity_changed()

    def _end_stream(self, change: StatusChange) -> None:
        """Close the lost site's stream, if it still has one, so it reconnects and reconciles."""
        session = self._sessions.get(change.site_id)
        if session is not None:
            log.warning("ending the stream of a lost site site=%s", change.site_id)
            session.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set."""
        while not stop.is_set():
            await asyncio.sleep(self._every_s)
            try:
                await self.on_status_changes(self._registry.tick(time.monotonic()))
            except Exception:
                log.exception("liveness cycle failed")
