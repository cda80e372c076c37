"""Admission by tenant through the real placement path: concurrent submitters, a real SQLite
store and ledger, placement rounds and completions interleaved at random."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.control import AttemptReported
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.placement_loop import PlacementLoop
from broker.placement import Policy
from broker.sites.registry import SiteRegistry
from broker.sites.sessions import SessionTable
from broker.store import open_store
from broker.store.protocol import Hold, NewJob
from broker.tenancy import TenantPolicy, TenantsTable, WaitReason
from broker.writer import StoreWriter
from computenet.spec import parse_spec
from computenet.types import CapacityReport, JobId, JobState, PoolCapacity, SiteId, TenantId
from topology import default_topology

SITES = {SiteId("chongqing"): 6, SiteId("horinger"): 6}
TOTAL = sum(SITES.values())
TENANTS = ["lab-a", "lab-b", "lab-c", "guest"]


def _spec(cards: int) -> dict[str, object]:
    return {
        "name": "t",
        "kind": "batch",
        "duration_hours": 1.0,
        "command": ["true"],
        "resources": {"accelerator": "a800", "count": cards, "cpu": 0.1, "memory_gb": 0.1},
    }


def _registry() -> SiteRegistry:
    topology = default_topology()
    now = time.monotonic()
    registry = SiteRegistry(
        [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
        suspect_after_s=600,
        lost_after_s=1200,
        now_s=now,
    )
    for site, cards in SITES.items():
        report = CapacityReport(
            pools=(PoolCapacity("a800", cards, cards),),
            cpu_cores=64,
            cpu_cores_free=64,
            memory_gb=512,
            memory_gb_free=512,
        )
        registry.reported(site, report, now_s=now, now_unix_ms=int(time.time() * 1000))
    return registry


def _check(holds: list[Hold], tenant_of: dict[str, str], table: TenantsTable) -> None:
    by_tenant: dict[str, int] = {}
    by_site: dict[str, int] = {}
    for hold in holds:
        tenant = tenant_of[hold.job_id]
        by_tenant[tenant] = by_tenant.get(tenant, 0) + hold.count
        by_site[hold.site] = by_site.get(hold.site, 0) + hold.count
    for tenant, cards in by_tenant.items():
        ceiling = table.policy(tenant).ceiling("a800")
        assert ceiling is None or cards <= ceiling, (tenant, cards, ceiling)
    assert sum(by_tenant.values()) <= TOTAL
    for site, cards in by_site.items():
        assert cards <= SITES[SiteId(site)], (site, cards)


async def _scenario(
    folder: Path, table: TenantsTable, streams: list[list[tuple[int, int]]], seed: int
) -> None:
    rnd = random.Random(seed)
    store = open_store(f"sqlite:///{folder / 'b.db'}")
    writer = StoreWriter(store)
    registry = _registry()
    driver = JobDriver(writer, SessionTable())
    loop = PlacementLoop(
        writer=writer,
        registry=registry,
        capacity=CapacityView(writer=writer, registry=registry, topology=default_topology()),
        driver=driver,
        policy=Policy.default(),
        tenants=lambda: table,
    )
    writer.on_created(loop.adopt)
    writer.on_events(loop.observe)
    tenant_of: dict[str, str] = {}
    submitting = len(streams)

    async def submitter(index: int, stream: list[tuple[int, int]]) -> None:
        nonlocal submitting
        tenant = TENANTS[index % len(TENANTS)]
        for n, (cards, pause) in enumerate(stream):
            for _ in range(pause):
                await asyncio.sleep(0)
            job_id = JobId(f"{tenant}-{index}-{n}")
            tenant_of[job_id] = tenant
            spec = parse_spec(_spec(cards))
            await writer.submit(NewJob(job_id, TenantId(tenant), job_id, spec, int(time.time())))
        submitting -= 1

    async def placer() -> None:
        rounds = 0
        while submitting or rounds < 3:
            loop.capacity_changed()
            await loop.place_pending()
            _check(store.holds(), tenant_of, table)
            rounds += 1
            # finish some placed jobs: their sites report them succeeded
            placed = store.jobs_in_states(frozenset({JobState.PLACED}))
            for job in rnd.sample(placed, k=min(len(placed), rnd.randint(0, 2))):
                assert job.site is not None
                await driver.feed(job, AttemptReported(job.site, job.attempt, JobState.SUCCEEDED))
            await asyncio.sleep(0)

    try:
        await asyncio.gather(placer(), *(submitter(i, s) for i, s in enumerate(streams)))
        _check(store.holds(), tenant_of, table)
        for entry in await loop.queue_view():
            assert entry.text, entry  # every pending job says why it waits
            if entry.reason == WaitReason.OVER_QUOTA:
                assert table.policy(entry.tenant).ceiling("a800") is not None
    finally:
        writer.close()


policies = st.builds(
    TenantPolicy,
    weight=st.sampled_from([1.0, 2.0]),
    quota=st.fixed_dictionaries({"a800": st.integers(0, 6)}),
    borrowing_limit=st.one_of(st.just({}), st.fixed_dictionaries({"a800": st.integers(0, 6)})),
)


@settings(max_examples=12, deadline=None)
@given(
    st.fixed_dictionaries({t: policies for t in TENANTS[:3]}),
    st.lists(
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=8),
        min_size=2,
        max_size=5,
    ),
    st.integers(0, 2**16),
)
def test_concurrent_submitters_never_take_a_tenant_over_quota_plus_borrowing(
    tenants: dict[str, TenantPolicy], streams: list[list[tuple[int, int]]], seed: int
) -> None:
    table = TenantsTable(tenants=tenants)
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_scenario(Path(folder), table, streams, seed))


def test_a_job_over_its_tenants_quota_waits_with_its_reason_in_the_queue(tmp_path: Path) -> None:
    table = TenantsTable(
        tenants={"lab-b": TenantPolicy(quota={"a800": 4}, borrowing_limit={"a800": 0})}
    )

    async def scenario() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        store.submit_jobs(
            [
                NewJob(JobId(f"b{i}"), TenantId("lab-b"), f"r{i}", parse_spec(_spec(2)), 1_000 + i)
                for i in range(3)
            ]
        )
        writer = StoreWriter(store)
        registry = _registry()
        loop = PlacementLoop(
            writer=writer,
            registry=registry,
            capacity=CapacityView(writer=writer, registry=registry, topology=default_topology()),
            driver=JobDriver(writer, SessionTable()),
            policy=Policy.default(),
            tenants=lambda: table,
        )
        writer.on_events(loop.observe)
        try:
            await loop.load_pending()
            assert await loop.place_pending() == 2
            [entry] = await loop.queue_view()
            assert (entry.job_id, entry.reason) == ("b2", WaitReason.OVER_QUOTA)
            assert "nominal quota 4 + borrowing limit 0" in entry.text
            assert loop.pending_reasons["b2"] == entry.text
            [row] = await loop.tenants_view()
            assert (row.tenant, row.held, row.borrowed) == ("lab-b", {"a800": 4}, {"a800": 0})
        finally:
            writer.close()

    asyncio.run(scenario())
