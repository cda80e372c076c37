"""The federation as placement sees it, read from the capacity ledger and the sites' reports."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from broker.control.capacity import (
    Backlog,
    SiteHolds,
    holds_by_site,
    pending_cards_by_pool,
    placeable_cards,
    pool_views,
    queue_wait_h,
    site_capacity,
)
from broker.jobflow.ledger_mirror import LedgerMirror
from broker.placement.snapshot import FederationSnapshot, ReportedEnergy, SiteCapacity
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


@dataclass(frozen=True, slots=True)
class _Round:
    """The inputs of one incremental snapshot, gathered on the event loop.

    Dicts here are never changed after they are handed out (a change makes a new dict), and a
    site's facts or holds object is replaced whenever they change, so the worker thread can
    tell unchanged sites by identity.
    """

    facts: dict[SiteId, _SiteFacts]
    held: dict[str, SiteHolds]
    by_model: dict[str, int]
    energy: dict[str, ReportedEnergy]


@dataclass(slots=True)
class _Built:
    """One site's part of the last snapshot and what it was built from."""

    facts: _SiteFacts
    held: SiteHolds | None
    views: tuple[PoolCapacity, ...]
    allocatable: dict[str, int]
    lines: dict[str, list[Hold]]
    capacity: SiteCapacity | None
    """None until made; made again when the site's queue waits change."""


class CapacityView:
    """Builds snapshots and pool views from the ledger (never by rescanning job specs).

    A snapshot is kept between rounds: only sites whose report, status, stale capacity or
    holds changed are recomputed; queue waits, which follow the pending queue, are checked
    at every pool each round, and a site whose waits are unchanged keeps its last capacity.
    """

    def __init__(
        self,
        *,
        writer: StoreWriter,
        registry: SiteRegistry,
        topology: Topology,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer
        self._registry = registry
        self._topology = topology
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._ledger = LedgerMirror(writer)
        self._seen_revision = -1
        self._facts: dict[SiteId, _SiteFacts] = {}
        self._stale: set[SiteId] = set()
        """Sites with failing probes: whether they are withheld depends on the time."""
        self._held: dict[str, SiteHolds] = {}
        self._by_model: dict[str, int] = {}
        self._totals: dict[str, dict[str, int]] = {}
        self._built: dict[SiteId, _Built] = {}
        self._building = threading.Lock()

    async def holds(self) -> list[Hold]:
        """Every line of the ledger."""
        await self._ledger.sync()
        return self._ledger.holds()

    async def snapshot(
        self, pending: Iterable[JobSpec] = (), *, without: JobId | None = None
    ) -> FederationSnapshot:
        """Free capacity at every site now, with queue waits for `pending` (the queue).

        `without` leaves one job's own holds out, to ask where that job could go instead.
        """
        await self._ledger.sync()
        # What changed is gathered here, on the event loop that changes registry and ledger;
        # the snapshot (a pass over a thousand sites' pools) is made on a worker thread, so
        # agents' streams are served meanwhile.
        if without is not None:
            holds = [h for h in self._ledger.holds() if h.job_id != without]
            facts, energy = self._all_facts(), self._reported_energy()
            return await asyncio.to_thread(self._build, facts, holds, list(pending), energy)
        inputs = self._gather()
        return await asyncio.to_thread(self._assemble, inputs, _asked(pending))

    def build(self, holds: Iterable[Hold], pending: Iterable[JobSpec] = ()) -> FederationSnapshot:
        """A snapshot from given ledger lines and pending specs, built in full (no reuse)."""
        return self._build(self._all_facts(), holds, pending, self._reported_energy())

    def _all_facts(self) -> list[_SiteFacts]:
        now_s = self._monotonic()
        return [_facts_of(self._registry, e, now_s) for e in self._registry.entries()]

    def _gather(self) -> _Round:
        """Take in what changed in the registry and the ledger since the last snapshot."""
        now_s = self._monotonic()
        changed = {e.site_id: e for e in self._registry.changed_since(self._seen_revision)}
        self._seen_revision = self._registry.revision
        for site_id in self._stale - changed.keys():
            entry = self._registry.get(site_id)
            if (
                self._registry.capacity_withheld(entry, now_s)
                != self._facts[site_id].capacity_withheld
            ):
                changed[site_id] = entry
        if changed:
            self._take_facts(changed.values(), now_s)
        touched = self._ledger.take_changed()
        if touched:
            held = dict(self._held)
            for site in touched:
                summed = self._ledger.site(site)
                if summed is None:
                    held.pop(site, None)
                else:
                    held[site] = summed
            self._held = held
        return _Round(self._facts, self._held, self._by_model, self._reported_energy())

    def _reported_energy(self) -> dict[str, ReportedEnergy]:
        """Live prices and carbon factors of the sites whose report of them is still fresh.

        A report older than the registry's stale-capacity limit counts for nothing: the site is
        priced with the topology's figures again until its agent reports anew.
        """
        now_ms = int(self._wall_clock() * 1000)
        limit_ms = self._registry.stale_capacity_after_s * 1000
        return {
            entry.site_id: ReportedEnergy(
                entry.report.price_cny_per_kwh,
                entry.report.carbon_kg_per_kwh,
                entry.capacity_unix_ms / 1000,
            )
            for entry in self._registry.energy_reports()
            if now_ms - entry.capacity_unix_ms <= limit_ms
        }

    def _take_facts(self, entries: Iterable[SiteEntry], now_s: float) -> None:
        facts, totals, by_model = dict(self._facts), dict(self._totals), dict(self._by_model)
        for entry in entries:
            old = facts.get(entry.site_id)
            new = _facts_of(self._registry, entry, now_s)
            if entry.capacity_stale_since_s is None:
                self._stale.discard(entry.site_id)
            else:
                self._stale.add(entry.site_id)
            if old == new:
                continue
            facts[entry.site_id] = new
            if old is not None:
                for model, cards in _allocatable(old.report).items():
                    by_model[model] -= cards
            for model, cards in _allocatable(new.report).items():
                by_model[model] = by_model.get(model, 0) + cards
            mine: dict[str, int] = {}
            for pool in new.report.pools:
                mine[pool.model] = mine.get(pool.model, 0) + pool.allocatable
            totals[entry.site_id] = mine
        self._facts, self._totals, self._by_model = facts, totals, by_model

    def _assemble(self, inputs: _Round, asked: list[tuple[str, int]]) -> FederationSnapshot:
        """The snapshot of `inputs`, reusing every site's part that did not change."""
        now_ms = int(self._wall_clock() * 1000)
        backlog = Backlog.of(asked, inputs.by_model)
        sites: dict[str, SiteCapacity] = {}
        with self._building:
            for site_id, facts in inputs.facts.items():
                held = inputs.held.get(site_id)
                built = self._built.get(site_id)
                if built is None or built.facts is not facts or built.held is not held:
                    built = _Built(
                        facts,
                        held,
                        pool_views(facts.report.pools, held),
                        _allocatable(facts.report),
                        _lines_by_pool(held),
                        None,
                    )
                    self._built[site_id] = built
                waits = _pool_waits(built, backlog, now_ms)
                if built.capacity is None or waits != built.capacity.queue_wait_h_by_pool:
                    built.capacity = site_capacity(
                        site_id,
                        facts.status,
                        facts.report,
                        held,
                        waits,
                        capacity_stale=facts.capacity_withheld,
                    )
                sites[site_id] = built.capacity
        return FederationSnapshot(
            topology=self._topology,
            sites=sites,
            now_unix_s=now_ms / 1000,
            reported_energy=inputs.energy,
        )

    def _build(
        self,
        entries: Sequence[_SiteFacts],
        holds: Iterable[Hold],
        pending: Iterable[JobSpec],
        energy: dict[str, ReportedEnergy],
    ) -> FederationSnapshot:
        now_ms = int(self._wall_clock() * 1000)
        by_site = holds_by_site(holds)
        allocatable: dict[tuple[str, str], int] = {
            (e.site_id, p.model): p.allocatable for e in entries for p in e.report.pools
        }
        backlog = pending_cards_by_pool(_asked(pending), allocatable)
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
        return FederationSnapshot(
            topology=self._topology, sites=sites, now_unix_s=now_ms / 1000, reported_energy=energy
        )

    def pool_totals(self) -> Mapping[str, Mapping[str, int]]:
        """Allocatable cards per site and model, busy or free (sizes pools for wait pricing).

        As of the last snapshot (the one a round solves against); read-only.
        """
        if self._seen_revision < 0:
            self._gather()
        return self._totals

    def site_entry(self, site_id: SiteId) -> SiteEntry | None:
        """The registry's entry of a site, None if it is not in the topology."""
        return self._registry.get(site_id) if site_id in self._registry else None

    async def pools(self, site_id: SiteId) -> tuple[PoolCapacity, ...]:
        """One site's pools with what the ledger holds in each (their `free` follows the rule)."""
        await self._ledger.sync()
        return pool_views(self._registry.get(site_id).report.pools, self._ledger.site(site_id))


def _facts_of(registry: SiteRegistry, entry: SiteEntry, now_s: float) -> _SiteFacts:
    withheld = registry.capacity_withheld(entry, now_s)
    return _SiteFacts(entry.site_id, entry.status, entry.report, withheld)


def _asked(pending: Iterable[JobSpec]) -> list[tuple[str, int]]:
    return [(s.resources.accelerator, s.accelerators_total) for s in pending]


def _allocatable(report: CapacityReport) -> dict[str, int]:
    """Allocatable cards per model of one report (a model named twice: its last pool)."""
    return {p.model: p.allocatable for p in report.pools}


def _lines_by_pool(held: SiteHolds | None) -> dict[str, list[Hold]]:
    out: dict[str, list[Hold]] = {}
    for hold in held.lines if held is not None else ():
        out.setdefault(hold.pool, []).append(hold)
    return out


def _pool_waits(built: _Built, backlog: Backlog, now_ms: int) -> dict[str, float]:
    """Queue wait per pool of a site, as `_waits` computes it (the same rules, fewer passes)."""
    out: dict[str, float] = {}
    for pool in built.views:
        share = backlog.share(pool.model, built.allocatable.get(pool.model, 0))
        lines = built.lines.get(pool.model, [])
        free = placeable_cards(pool, lines)
        if share - free <= 0:  # queue_wait_h's own test: the pool's free cards cover its share
            out[pool.model] = 0.0
        else:
            out[pool.model] = queue_wait_h(free, share, lines, now_ms)
    return out


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
        out[pool.model] = queue_wait_h(placeable_cards(pool, mine), share, mine, now_ms)
    return out
