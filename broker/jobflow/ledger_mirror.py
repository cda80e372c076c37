"""The capacity ledger's holds kept in memory, following this broker's committed transitions.

Holds change only through transitions (`release_hold` drops a job's holds, then `holds` adds
new ones), and every transition this broker writes goes through its `StoreWriter`, whose
`on_holds` listener hands each committed batch over in commit order. Replaying those
batches with the store's rule keeps the mirror equal to the table without reading it back.
It is loaded from the store at first use, again after a write whose outcome is unknown, and
every `resync_every_s` (holds written by anything else: another replica, an operator's tool).
Loads run on the writer thread, so they are ordered with the writes around them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from broker.control.capacity import SiteHolds, holds_by_site
from broker.store.protocol import Hold
from broker.writer import HoldChange, StoreWriter
from computenet.types import JobId

log = logging.getLogger(__name__)

RESYNC_EVERY_S = 30.0


def _store_order(holds: Iterable[Hold]) -> list[Hold]:
    """Holds in the store's order (job, then attempt; stable within one), so sums agree."""
    return sorted(holds, key=lambda h: (h.job_id, h.attempt))


class LedgerMirror:
    """Every hold by job, and per site its lines summed, with the sites changed since asked."""

    def __init__(
        self,
        writer: StoreWriter,
        *,
        resync_every_s: float = RESYNC_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer
        self._resync_every_s = resync_every_s
        self._clock = clock
        self._by_job: dict[JobId, list[Hold]] = {}
        self._jobs_at: dict[str, dict[JobId, None]] = {}
        self._summed: dict[str, SiteHolds] = {}
        self._stale_sites: set[str] = set()
        """Sites whose `_summed` entry must be recomputed before it is read."""
        self._changed: set[str] = set()
        """Sites whose holds changed since the last `take_changed`."""
        self._loaded_at: float | None = None
        writer.on_holds(self.applied)

    async def sync(self) -> None:
        """Load the ledger from the store if it was never loaded, is in doubt, or is due."""
        if self._loaded_at is not None and self._clock() - self._loaded_at < self._resync_every_s:
            return
        holds = await self._writer.write(self._writer.store.holds)
        self.reset(holds)

    def reset(self, holds: Iterable[Hold]) -> None:
        """Replace the mirror with the whole ledger; sites whose holds differ count as changed."""
        old = {site: self.lines(site) for site in self._jobs_at}
        self._by_job, self._jobs_at, self._summed = {}, {}, {}
        for hold in holds:
            self._add(hold)
        self._stale_sites = set(self._jobs_at)
        differ = {s for s in old.keys() | self._jobs_at.keys() if old.get(s, []) != self.lines(s)}
        if differ and self._loaded_at is not None:
            log.info("ledger reloaded sites_changed=%d", len(differ))
        self._changed |= differ
        self._loaded_at = self._clock()

    def applied(self, changes: Sequence[HoldChange] | None) -> None:
        """Replay a committed batch: for each transition that held, release, then add."""
        if changes is None:
            self._loaded_at = None  # what was written is unknown: load again before use
            return
        for t in changes:
            if t.release:
                for hold in self._by_job.pop(t.job_id, []):
                    self._jobs_at[hold.site].pop(t.job_id, None)
                    self._touch(hold.site)
            for hold in t.holds:
                self._add(hold)
                self._touch(hold.site)

    def _add(self, hold: Hold) -> None:
        self._by_job.setdefault(hold.job_id, []).append(hold)
        self._jobs_at.setdefault(hold.site, {})[hold.job_id] = None

    def _touch(self, site: str) -> None:
        self._stale_sites.add(site)
        self._changed.add(site)

    def take_changed(self) -> set[str]:
        """Sites whose holds changed since the last call (all of them after a reload)."""
        changed, self._changed = self._changed, set()
        return changed

    def lines(self, site: str) -> list[Hold]:
        """One site's holds in the store's order."""
        jobs = self._jobs_at.get(site)
        if not jobs:
            return []
        return _store_order(h for j in jobs for h in self._by_job[j] if h.site == site)

    def site(self, site: str) -> SiteHolds | None:
        """One site's holds summed (None if it has none), as `holds_by_site` sums them."""
        if site in self._stale_sites:
            self._stale_sites.discard(site)
            summed = holds_by_site(self.lines(site)).get(site)
            if summed is None:
                self._summed.pop(site, None)
            else:
                self._summed[site] = summed
        return self._summed.get(site)

    def holds(self) -> list[Hold]:
        """Every hold, in the store's order."""
        return _store_order(h for lines in self._by_job.values() for h in lines)
