"""The federation as placement sees it, read from the capacity ledger and the sites' reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from broker.control.capacity import (
    SiteHolds,
    holds_by_site,
    pending_cards_by_pool,
    pool_views,
    queue_wait_h,
    site_capacity,
)
from broker.placement.snapshot import FederationSnapshot, SiteCapacity
from broker.sites.registry import SiteEntry, SiteRegistry
from broker.store.protocol import Hold
from broker.writer import StoreWriter
from computenet.spec import JobSpec
from computenet.types import CapacityReport, JobId, PoolCapacity, SiteId, SiteStatus
from topology import Topology


@dataclass(frozen=True, slots=True)
class _SiteFacts:
    """What a snapshot needs of one registry entry, copied so it can be read off the loop."""

    site_id: SiteId
    status: SiteStatus
    report: CapacityReport
    capacity_withheld: bool
    """Stale too long to place new work on."""


class CapacityView:
    """Builds snapshots and pool views from the ledger (never by rescanning job specs)."""

    def __init__(self, *, writer: StoreWriter, registry: SiteRegistry, topology: Topology) -> None:
        self._writer = writer
        self._registry = registry
        self._topology = topology

    async def holds(self) -> list[Hold]:
        """Every line of the ledger."""
        return await self._writer.read(self._writer.store.holds)

    async def snapshot(
        self, pending: Iterable[JobSpec] = (), *, without: JobId | None = None
    ) -> FederationSnapshot:
        """Free capacity at every site now, with queue waits for `pending` (the queue).

        `without` leaves one job's own holds out, to ask where that job could go instead.
        """
        holds = [h for h in await self.holds() if h.job_id != without]
        # The registry changes on the event loop; its facts are copied here and the snapshot
        # (milliseconds per thousand sites) is built on a worker thread, so agents' streams
        # are served meanwhile.
        facts = self._facts()
        return await asyncio.to_thread(self._build, facts, holds, list(pending))

    def build(self, holds: Iterable[Hold], pending: Iterable[JobSpec] = ()) -> FederationSnapshot:
        """A snapshot from given ledger lines and pending specs (pure apart from the registry)."""
        return self._build(self._facts(), holds, pending)

    def _facts(self) -> list[_SiteFacts]:
        now_s = time.monotonic()
        withheld = self._registry.capacity_withheld
        return [
            _SiteFacts(e.site_id, e.status, e.report, withheld(e, now_s))
            for e in self._registry.entries()
        ]

    def _build(
        self, entries: Sequence[_SiteFacts], holds: Iterable[Hold], pending: Iterable[JobSpec]
    ) -> FederationSnapshot:
        now_ms = int(time.time() * 1000)
        by_site = holds_by_site(holds)
        allocatable: dict[tuple[str, str], int] = {
            (e.site_id, p.model): p.allocatable for e in entries for p in e.report.pools
        }
        backlog = pending_cards_by_pool(
            ((s.resources.accelerator, s.accelerators_total) for s in pending), allocatable
        )
        sites: dict[str, SiteCapacity] = {}
        for entry in entries:
            held = by_site.get(entry.site_id)
            waits = _waits(entry, held, backlog, now_ms)
            sites[entry.site_id] = site_capacity(
                entry.site_id,
                entry.status,
                entry.report,
                held,
                waits,
                capacity_stale=entry.capacity_withheld,
            )
        return FederationSnapshot(topology=self._topology, sites=sites, now_unix_s=now_ms / 1000)

    def pool_totals(self) -> dict[str, dict[str, int]]:
        """Allocatable cards per site and model, busy or free (sizes pools for wait pricing)."""
        totals: dict[str, dict[str, int]] = {}
        for entry in self._registry.entries():
            by_model = totals.setdefault(entry.site_id, {})
            for pool in entry.report.pools:
                by_model[pool.model] = by_model.get(pool.model, 0) + pool.allocatable
        return totals

    def site_entry(self, site_id: SiteId) -> SiteEntry | None:
        """The registry's entry of a site, None if it is not in the topology."""
        return self._registry.get(site_id) if site_id in self._registry else None

    async def pools(self, site_id: SiteId) -> tuple[PoolCapacity, ...]:
        """One site's pools with what the ledger holds in each (their `free` follows the rule)."""
        held = holds_by_site(h for h in await self.holds() if h.site == site_id).get(site_id)
        return pool_views(self._registry.get(site_id).report.pools, held)


def _waits(
    entry: _SiteFacts,
    held: SiteHolds | None,
    backlog: dict[tuple[str, str], float],
    now_ms: int,
) -> dict[str, float]:
    views = pool_views(entry.report.pools, held)
    lines = held.lines if held is not None else []
    out: dict[str, float] = {}
    for pool in views:
        share = backlog.get((entry.site_id, pool.model), 0.0)
        mine = [h for h in lines if h.pool == pool.model]
        out[pool.model] = queue_wait_h(pool.free, share, mine, now_ms)
    return out
