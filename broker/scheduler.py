"""The broker's control loops: place pending jobs, dispatch them, and apply heartbeat TTLs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from broker.placement.snapshot import FederationSnapshot, SiteCapacity
from broker.registry import SiteRegistry, StatusChange
from broker.store.protocol import Hold, Transition
from broker.tracker import JobTracker
from broker.writer import StoreWriter
from computenet.spec import JobSpec
from computenet.types import (
    ACTIVE_STATES,
    Job,
    JobEvent,
    JobId,
    JobState,
    Placement,
    SiteId,
    SiteStatus,
)
from topology import Topology

log = logging.getLogger(__name__)

Placer = Callable[[JobSpec, FederationSnapshot], Placement]
_PENDING = frozenset({JobState.PENDING})
SUBMITTED = "submitted"
NO_SITE_ACCEPTING = "waiting: no site is active"


@dataclass
class LoopTiming:
    """How often the loops run when nothing wakes them."""

    place_every_s: float = 1.0
    liveness_every_s: float = 0.25
    min_cycle_gap_s: float = 0.02


@dataclass
class SiteUsage:
    """What the broker has committed at one site: accelerators by model, cores and memory."""

    accelerators: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cpu_cores: float = 0.0
    memory_gb: float = 0.0


def usage_by_site(active: list[Job]) -> dict[SiteId, SiteUsage]:
    """Resources the broker has committed at each site (placed, dispatched or running jobs)."""
    used: dict[SiteId, SiteUsage] = defaultdict(SiteUsage)
    for job in active:
        if job.site is not None:
            usage = used[job.site]
            replicas = job.spec.inference.replicas if job.spec.inference else 1
            usage.accelerators[job.spec.resources.accelerator] += job.spec.accelerators_total
            usage.cpu_cores += job.spec.resources.cpu_cores * replicas
            usage.memory_gb += job.spec.resources.memory_gb * replicas
    return used


def placement_to_json(placement: Placement) -> str:
    """The stored form of a placement explanation."""
    return json.dumps({**placement.to_dict(), "decision_ms": placement.decision_ms})


class Scheduler:
    """Places pending jobs on a federation snapshot and watches site liveness.

    The pending queue is kept in memory from committed events, so a cycle costs nothing when
    nothing changed: new jobs are tried as they arrive, and the whole queue is tried again only
    when capacity may have grown (a job ended, a site reported different capacity or came back).
    """

    def __init__(
        self,
        *,
        writer: StoreWriter,
        registry: SiteRegistry,
        tracker: JobTracker,
        topology: Topology,
        placer: Placer,
        timing: LoopTiming | None = None,
        on_decision: Callable[[float], None] | None = None,
    ) -> None:
        self._writer = writer
        self._registry = registry
        self._tracker = tracker
        self._topology = topology
        self._placer = placer
        self._timing = timing or LoopTiming()
        self._on_decision = on_decision
        self._wake = asyncio.Event()
        self._pending: dict[JobId, Job | None] = {}
        self._fresh: set[JobId] = set()
        self._capacity_changed = True
        self.pending_reasons: dict[str, str] = {}

    def kick(self) -> None:
        """Run a placement cycle soon."""
        self._wake.set()

    def capacity_changed(self) -> None:
        """Capacity may have grown: retry the whole pending queue at the next cycle."""
        self._capacity_changed = True
        self._wake.set()

    def adopt(self, jobs: Sequence[Job]) -> None:
        """Newly submitted jobs, as committed: queue them without reading them back."""
        for job in jobs:
            self._pending[job.job_id] = job
            self._fresh.add(job.job_id)

    def observe(self, events: Sequence[JobEvent]) -> None:
        """Follow committed events: keep the pending queue, notice freed capacity."""
        for event in events:
            if event.state == JobState.PENDING:
                if event.cause != SUBMITTED or event.job_id not in self._pending:
                    self._pending[event.job_id] = None  # (re)load: its attempt changed
                self._fresh.add(event.job_id)
            else:
                self._pending.pop(event.job_id, None)
                self._fresh.discard(event.job_id)
                self.pending_reasons.pop(event.job_id, None)
            if event.state.is_final and event.site is not None:
                self._capacity_changed = True
        self._wake.set()

    async def load_pending(self) -> None:
        """Read the pending queue from the store (at start)."""
        store = self._writer.store
        for job in await self._writer.read(lambda: store.jobs_in_states(_PENDING)):
            self._pending[job.job_id] = job
            self._fresh.add(job.job_id)

    def snapshot(self, active: list[Job]) -> FederationSnapshot:
        """What every site can take now: reported allocatable minus what the broker committed."""
        used = usage_by_site(active)
        sites: dict[str, SiteCapacity] = {}
        for entry in self._registry.entries():
            usage = used.get(entry.site_id, SiteUsage())
            report = entry.report
            free: dict[str, int] = {}
            for pool in report.pools:
                committed = usage.accelerators.get(pool.model, 0) + usage.accelerators.get("", 0)
                free[pool.model] = max(0, pool.allocatable - max(committed, pool.in_use))
            cpu_busy = max(usage.cpu_cores, report.cpu_cores - report.cpu_cores_free)
            mem_busy = max(usage.memory_gb, report.memory_gb - report.memory_gb_free)
            sites[entry.site_id] = SiteCapacity(
                site_id=entry.site_id,
                status=entry.status,
                free=free,
                cpu_free=max(0.0, report.cpu_cores - cpu_busy),
                memory_gb_free=max(0.0, report.memory_gb - mem_busy),
            )
        return FederationSnapshot(topology=self._topology, sites=sites, now_unix_s=time.time())

    async def _candidates(self) -> list[Job]:
        """The pending jobs worth trying now, highest priority first, oldest first."""
        ids = list(self._pending) if self._capacity_changed else list(self._fresh)
        self._capacity_changed = False
        self._fresh.clear()
        missing = [i for i in ids if self._pending.get(i) is None and i in self._pending]
        if missing:
            store = self._writer.store
            for job in await self._writer.read(functools.partial(store.get_jobs, missing)):
                if job.job_id in self._pending and job.state == JobState.PENDING:
                    self._pending[job.job_id] = job
        jobs = [j for i in ids if (j := self._pending.get(i)) is not None]
        jobs.sort(key=lambda j: (-j.spec.priority, j.created_unix_ms))
        return jobs

    def _anyone_accepting(self) -> bool:
        return any(e.status == SiteStatus.ACTIVE for e in self._registry.entries())

    async def place_pending(self) -> int:
        """One placement cycle; returns how many jobs were placed."""
        if not self._anyone_accepting():
            # Nothing can be placed; keep the queue as it is until a site becomes active.
            for job_id in self._fresh:
                self.pending_reasons[job_id] = NO_SITE_ACCEPTING
            self._fresh.clear()
            self._capacity_changed = True
            return 0
        candidates = await self._candidates()
        if not candidates:
            return 0
        store = self._writer.store
        active = await self._writer.read(lambda: store.jobs_in_states(ACTIVE_STATES))
        snapshot = self.snapshot(active)
        transitions: list[Transition] = []
        nowhere: dict[tuple[object, ...], str] = {}  # shapes that fit nowhere in this snapshot
        for job in candidates:
            shape = _shape(job.spec)
            if shape in nowhere:
                self.pending_reasons[job.job_id] = nowhere[shape]
                continue
            placement = self._placer(job.spec, snapshot)
            if self._on_decision is not None:
                self._on_decision(placement.decision_ms)
            if placement.chosen is None:
                nowhere[shape] = self.pending_reasons[job.job_id] = _why_nowhere(placement)
                continue
            self.pending_reasons.pop(job.job_id, None)
            snapshot = _take(snapshot, placement.chosen, job.spec)
            transitions.append(_placed(job, placement))
        results = await self._writer.apply(transitions)
        placed = [t.job_id for t, event in zip(transitions, results, strict=True) if event]
        for job in await self._writer.read(functools.partial(store.get_jobs, placed)):
            self._tracker.dispatch(job)
        return len(placed)

    async def on_status_changes(self, changes: list[StatusChange]) -> None:
        """React to liveness changes: lost sites give their jobs back."""
        for change in changes:
            log.info("site status site=%s %s->%s", change.site_id, change.old, change.new)
            if change.new == SiteStatus.LOST:
                await self._tracker.site_lost(change.site_id)
            elif change.new == SiteStatus.ACTIVE:
                self.capacity_changed()

    async def run(self, stop: asyncio.Event) -> None:
        """Run the placement and liveness loops until `stop` is set."""
        await self.load_pending()
        await asyncio.gather(self._place_loop(stop), self._liveness_loop(stop))

    async def _place_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._timing.place_every_s)
            self._wake.clear()
            try:
                await self.place_pending()
            except Exception:  # the loop must survive a bad cycle; the next one retries all
                log.exception("placement cycle failed")
                self._capacity_changed = True
                await asyncio.sleep(self._timing.place_every_s)
            # Let arrivals gather into the next cycle instead of one cycle per submission.
            await asyncio.sleep(self._timing.min_cycle_gap_s)

    async def _liveness_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self._timing.liveness_every_s)
            try:
                await self.on_status_changes(self._registry.tick(time.monotonic()))
            except Exception:
                log.exception("liveness cycle failed")


def _shape(spec: JobSpec) -> tuple[object, ...]:
    """What decides where a job fits: equal shapes fit (or not) at the same sites."""
    origin = spec.dataset.origin if spec.dataset else None
    return (spec.resources, spec.inference, spec.constraints, origin, spec.gang)


def _why_nowhere(placement: Placement) -> str:
    reasons = [f"{c.site}: {c.reason}" for c in placement.candidates if not c.feasible]
    return "no feasible site now (" + "; ".join(reasons[:4]) + (")" if reasons else "")


def _take(snapshot: FederationSnapshot, site_id: SiteId, spec: JobSpec) -> FederationSnapshot:
    """The snapshot after giving the job its accelerators at the site."""
    site = snapshot.sites[site_id]
    free = dict(site.free)
    model = spec.resources.accelerator or max(free, key=lambda m: free[m], default="")
    if model:
        free[model] = max(0, free.get(model, 0) - spec.accelerators_total)
    sites = dict(snapshot.sites)
    replicas = spec.inference.replicas if spec.inference else 1
    sites[site_id] = SiteCapacity(
        site_id=site.site_id,
        status=site.status,
        free=free,
        cpu_free=max(0.0, site.cpu_free - spec.resources.cpu_cores * replicas),
        memory_gb_free=max(0.0, site.memory_gb_free - spec.resources.memory_gb * replicas),
        queue_wait_h=site.queue_wait_h,
    )
    return FederationSnapshot(
        topology=snapshot.topology, sites=sites, now_unix_s=snapshot.now_unix_s
    )


def _placed(job: Job, placement: Placement) -> Transition:
    assert placement.chosen is not None
    attempt = job.attempt + 1
    spec = job.spec
    return Transition(
        job_id=job.job_id,
        new_state=JobState.PLACED,
        cause="placed",
        expect_states=frozenset({JobState.PENDING}),
        expect_attempt=job.attempt,
        site=placement.chosen,
        attempt=attempt,
        reason="",
        message=f"placed on {placement.chosen}",
        hold=Hold(
            job_id=job.job_id,
            attempt=attempt,
            site=placement.chosen,
            accelerator=spec.resources.accelerator,
            count=spec.accelerators_total,
            cpu_cores=spec.resources.cpu_cores,
            memory_gb=spec.resources.memory_gb,
        ),
        placement_json=placement_to_json(placement),
    )
