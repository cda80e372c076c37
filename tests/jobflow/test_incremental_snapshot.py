"""The kept snapshot always equals one built in full, over random reports, statuses and holds.

Holds are written as real transitions on a SQLite store through the writer, so the in-memory
ledger is checked against the table itself.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.jobflow.capacity_view import CapacityView
from broker.sites.registry import SiteRegistry
from broker.store import open_store
from broker.store.protocol import Hold, NewJob, Transition
from broker.writer import StoreWriter
from computenet.spec import JobSpec, parse_spec
from computenet.types import CapacityReport, JobId, JobState, PoolCapacity, SiteId, TenantId
from topology import Topology, default_topology

MODELS = ("a800", "910b", "h20")
JOBS = 3


@lru_cache(maxsize=1)
def _topology() -> Topology:
    return default_topology()


@lru_cache(maxsize=8)
def _spec(model: str, count: int) -> JobSpec:
    return parse_spec(
        {
            "name": "t",
            "kind": "batch",
            "duration_hours": 1.0,
            "command": ["true"],
            "resources": {"accelerator": model, "count": count, "cpu": 1, "memory_gb": 1},
        }
    )


pools = st.lists(
    st.builds(
        PoolCapacity,
        st.sampled_from(MODELS),
        st.integers(0, 16),
        st.integers(0, 16),
        st.integers(0, 16),
        st.integers(0, 8),
        nodes=st.sampled_from([0, 2, 4]),  # node shapes: whole free nodes follow holds too
        cards_per_node=st.sampled_from([0, 2, 4, 8]),
    ),
    max_size=3,
)
reports = st.builds(
    lambda p, cpu, free, fed: CapacityReport(
        pools=tuple(p),
        cpu_cores=cpu,
        cpu_cores_free=min(free, cpu),
        memory_gb=cpu * 4.0,
        memory_gb_free=min(free, cpu) * 3.3,
        federation_cpu_cores=fed,
    ),
    pools,
    st.floats(0, 128),
    st.floats(0, 128),
    st.floats(0, 16),
)
site_index = st.integers(0, 3)  # few sites, so steps meet at one
job_index = st.integers(0, JOBS - 1)
holds = st.tuples(
    site_index,
    st.sampled_from(("", *MODELS)),
    st.integers(1, 8),
    st.floats(0, 8),
    st.integers(0, 3),
)
steps = st.one_of(
    st.tuples(st.just("report"), site_index, reports),
    st.tuples(st.just("probe_fails"), site_index, st.floats(0, 45)),
    st.tuples(st.just("drain"), site_index, st.booleans()),
    st.tuples(st.just("time"), st.floats(0, 20)),
    st.tuples(
        st.just("hold"), job_index, st.lists(holds, max_size=2), st.booleans(), st.booleans()
    ),
    st.tuples(
        st.just("pending"),
        st.lists(st.tuples(st.sampled_from(("", *MODELS)), st.integers(1, 32)), max_size=6),
    ),
    st.tuples(st.just("tick")),
)


@dataclass
class _Clock:
    wall_s: float = 1_800_000_000.0
    mono_s: float = 10_000.0


class _World:
    """A registry, a store with jobs, and the view under test, all on one fake clock."""

    def __init__(self, folder: Path) -> None:
        self.clock = _Clock()
        topology = _topology()
        self.sites = [SiteId(s.id) for s in topology.sites]
        self.registry = SiteRegistry(
            [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
            suspect_after_s=15,
            lost_after_s=60,
            now_s=self.clock.mono_s,
            stale_capacity_after_s=30,
        )
        store = open_store(f"sqlite:///{folder / 'b.db'}")
        store.submit_jobs(
            [
                NewJob(JobId(f"j{i}"), TenantId("t"), f"r{i}", _spec("", 1), 1_000 + i)
                for i in range(JOBS)
            ]
        )
        self.writer = StoreWriter(store)
        self.view = CapacityView(
            writer=self.writer,
            registry=self.registry,
            topology=topology,
            wall_clock=lambda: self.clock.wall_s,
            monotonic=lambda: self.clock.mono_s,
        )
        self.pending: list[JobSpec] = []
        # Every site starts with room in every pool, so holds show in what is free.
        roomy = CapacityReport(
            pools=tuple(PoolCapacity(m, 16, 16) for m in MODELS),
            cpu_cores=64,
            cpu_cores_free=64,
            memory_gb=256,
            memory_gb_free=256,
        )
        for site in self.sites:
            self.registry.reported(site, roomy, now_s=self.clock.mono_s, now_unix_ms=1)

    async def step(self, step: tuple[object, ...]) -> None:
        kind, *args = step
        now_s, now_ms = self.clock.mono_s, int(self.clock.wall_s * 1000)
        if kind == "report":
            site, report = args
            self.registry.reported(self.sites[site], report, now_s=now_s, now_unix_ms=now_ms)
        elif kind == "probe_fails":
            site, ago_s = args
            site_id = self.sites[site]
            self.registry.heartbeat(site_id, None, now_s=now_s - ago_s, now_unix_ms=now_ms)
        elif kind == "drain":
            site, drained = args
            self.registry.set_drained(self.sites[site], drained)
        elif kind == "time":
            (advance_s,) = args
            self.clock.mono_s += advance_s
            self.clock.wall_s += advance_s
            self.registry.tick(self.clock.mono_s)
        elif kind == "hold":
            job, lines, release, expect_ok = args
            await self._hold(JobId(f"j{job}"), lines, release, expect_ok)
        elif kind == "pending":
            (asked,) = args
            self.pending = [_spec(model, count) for model, count in asked]
        elif kind == "tick":
            self.registry.tick(self.clock.mono_s)

    async def _hold(
        self,
        job_id: JobId,
        lines: list[tuple[int, str, int, float, int]],
        release: bool,
        expect_ok: bool,
    ) -> None:
        end_ms = int(self.clock.wall_s * 1000)
        held = tuple(
            Hold(job_id, 1, self.sites[site], pool, count, cpu, 1.0, end_ms + hours * 3_600_000)
            for site, pool, count, cpu, hours in lines
        )
        transition = Transition(
            job_id,
            JobState.PLACED,
            "test",
            expect_attempt=None if expect_ok else 99,
            holds=held,
            release_hold=release,
        )
        await self.writer.apply([transition])

    async def check(self) -> None:
        kept = await self.view.snapshot(self.pending)
        stored = self.writer.store.holds()
        assert await self.view.holds() == stored
        full = self.view.build(stored, self.pending)
        assert dict(kept.sites) == dict(full.sites)
        assert kept.now_unix_s == full.now_unix_s
        totals: dict[str, dict[str, int]] = {}
        for entry in self.registry.entries():
            by_model = totals.setdefault(entry.site_id, {})
            for pool in entry.report.pools:
                by_model[pool.model] = by_model.get(pool.model, 0) + pool.allocatable
        assert self.view.pool_totals() == totals


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(steps, min_size=4, max_size=30))
def test_the_kept_snapshot_equals_a_full_rebuild(plan: list[tuple[object, ...]]) -> None:
    async def scenario(folder: Path) -> None:
        world = _World(folder)
        try:
            await world.check()  # a first snapshot, so later ones are incremental
            for step in plan:
                await world.step(step)
                await world.check()
            await world.check()
        finally:
            world.writer.close()

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder)))


def test_holds_written_behind_the_writers_back_show_after_a_resync() -> None:
    async def scenario(folder: Path) -> None:
        world = _World(folder)
        try:
            site = world.sites[0]
            report = CapacityReport(pools=(PoolCapacity("a800", 8, 8),), cpu_cores=8)
            world.registry.reported(site, report, now_s=world.clock.mono_s, now_unix_ms=1)
            assert (await world.view.snapshot()).sites[site].free == {"a800": 8}
            hold = Hold(JobId("j0"), 1, site, "a800", 3, 0.0, 0.0)
            # Another writer on the same database (a second replica, a repair tool).
            world.writer.store.apply([Transition(JobId("j0"), JobState.PLACED, "x", holds=(hold,))])
            world.view._ledger._loaded_at = None  # as when RESYNC_EVERY_S has passed
            assert (await world.view.snapshot()).sites[site].free == {"a800": 5}
        finally:
            world.writer.close()

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder)))
