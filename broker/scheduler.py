"""The broker's control loops: place pending jobs, dispatch them, and apply heartbeat TTLs."""

from __future__ import annotations

import asyncio
import functools
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.placement.snapshot import FederationSnapshot, SiteCapacity
from broker.registry import SiteRegistry, StatusChange
from broker.store.protocol import Hold, Transition
from broker.tracker import JobTracker
from broker.writer import StoreWriter
from computenet.spec import JobSpec
from computenet.types import ACTIVE_STATES, Job, JobState, Placement, SiteId, SiteStatus
from topology import Topology

log = logging.getLogger(__name__)

Placer = Callable[[JobSpec, FederationSnapshot], Placement]


@dataclass
class LoopTiming:
    """How often the loops run when nothing wakes them."""

    place_every_s: float = 1.0
    liveness_every_s: float = 0.25


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
    """Places pending jobs on a federation snapshot and watches site liveness."""

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
        self.pending_reasons: dict[str, str] = {}

    def kick(self) -> None:
        """Run a placement cycle soon (new job, new capacity, finished work)."""
        self._wake.set()

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

    async def place_pending(self) -> int:
        """One placement cycle; returns how many jobs were placed."""
        store = self._writer.store
        pending = await self._writer.read(
            lambda: store.jobs_in_states(frozenset({JobState.PENDING}))
        )
        if not pending:
            return 0
        active = await self._writer.read(lambda: store.jobs_in_states(frozenset(ACTIVE_STATES)))
        snapshot = self.snapshot(active)
        pending.sort(key=lambda j: (-j.spec.priority, j.created_unix_ms))
        transitions: list[Transition] = []
        for job in pending:
            placement = self._placer(job.spec, snapshot)
            if self._on_decision is not None:
                self._on_decision(placement.decision_ms)
            if placement.chosen is None:
                self.pending_reasons[job.job_id] = _why_nowhere(placement)
                continue
            self.pending_reasons.pop(job.job_id, None)
            snapshot = _take(snapshot, placement.chosen, job.spec)
            transitions.append(_placed(job, placement))
        results = await self._writer.apply(transitions)
        placed = 0
        for transition, event in zip(transitions, results, strict=True):
            if event is None:
                continue
            placed += 1
            placed_job = await self._writer.read(
                functools.partial(store.get_job, transition.job_id)
            )
            if placed_job is not None:
                self._tracker.dispatch(placed_job)
        return placed

    async def on_status_changes(self, changes: list[StatusChange]) -> None:
        """React to liveness changes: lost sites give their jobs back."""
        for change in changes:
            log.info("site status site=%s %s->%s", change.site_id, change.old, change.new)
            if change.new == SiteStatus.LOST:
                if await self._tracker.site_lost(change.site_id):
                    self.kick()
            elif change.new == SiteStatus.ACTIVE:
                self.kick()

    async def run(self, stop: asyncio.Event) -> None:
        """Run the placement and liveness loops until `stop` is set."""
        await asyncio.gather(self._place_loop(stop), self._liveness_loop(stop))

    async def _place_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._timing.place_every_s)
            self._wake.clear()
            try:
                await self.place_pending()
            except Exception:  # the loop must survive a bad cycle; the next one retries
                log.exception("placement cycle failed")
                await asyncio.sleep(self._timing.place_every_s)

    async def _liveness_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self._timing.liveness_every_s)
            try:
                await self.on_status_changes(self._registry.tick(time.monotonic()))
            except Exception:
                log.exception("liveness cycle failed")


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
