"""Live inputs inside the broker: snapshots carry the sites' fresh price reports, and rebalancing
reads them and the stored user demand of inference jobs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from broker.control import Allocation, AttemptReported, DispatchAcknowledged, Placed, PoolShare
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.placement import Policy
from broker.placement.snapshot import ReportedEnergy
from broker.rebalance.live import LiveRebalance
from broker.sites.registry import SiteRegistry
from broker.sites.sessions import SessionTable
from broker.store import open_rebalance_store, open_store
from broker.store.protocol import NewJob
from broker.writer import StoreWriter
from computenet.spec import parse_spec
from computenet.types import (
    CapacityReport,
    InferenceDemand,
    JobId,
    JobState,
    PoolCapacity,
    SiteId,
    TenantId,
)
from topology import default_topology

SITE = SiteId("horinger")
STALE_AFTER_S = 60.0


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now_s = time.time()

    def __call__(self) -> float:
        return self.now_s


def report(price: float = 0.0, carbon: float = 0.0) -> CapacityReport:
    return CapacityReport(
        pools=(PoolCapacity("910b", 8, 8),),
        cpu_cores=64,
        cpu_cores_free=64,
        memory_gb=512,
        memory_gb_free=512,
        price_cny_per_kwh=price,
        carbon_kg_per_kwh=carbon,
    )


def test_fresh_reports_reach_snapshots_and_rebalancing_and_stale_ones_do_not(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        url = f"sqlite:///{tmp_path / 'b.db'}"
        store, rebalance_store = open_store(url), open_rebalance_store(url)
        writer = StoreWriter(store)
        topology = default_topology()
        registry = SiteRegistry(
            [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
            suspect_after_s=600,
            lost_after_s=1200,
            now_s=time.monotonic(),
            stale_capacity_after_s=STALE_AFTER_S,
        )
        clock = Clock()
        view = CapacityView(writer=writer, registry=registry, topology=topology, wall_clock=clock)
        live = LiveRebalance(
            writer=writer,
            capacity=view,
            driver=JobDriver(writer, SessionTable()),
            policy=Policy.default(),
            lease=rebalance_store.lease,
        )

        def heartbeat(capacity: CapacityReport) -> None:
            now_ms = int(clock() * 1000)
            registry.reported(SITE, capacity, now_s=time.monotonic(), now_unix_ms=now_ms)

        heartbeat(report())
        assert (await view.snapshot()).reported_energy == {}
        heartbeat(report(price=0.31, carbon=0.52))
        reported_at = clock()
        expected = {SITE: ReportedEnergy(0.31, 0.52, int(reported_at * 1000) / 1000)}
        assert (await view.snapshot()).reported_energy == expected
        assert view.build([]).reported_energy == expected
        assert (await live.read_input({})).snapshot.reported_energy == expected
        clock.now_s += STALE_AFTER_S + 1  # no report since: the topology's figures again
        assert (await view.snapshot()).reported_energy == {}
        assert (await live.read_input({})).snapshot.reported_energy == {}
        heartbeat(report(price=0.4))
        assert (await view.snapshot()).reported_energy[SITE].price_cny_per_kwh == 0.4
        heartbeat(report())  # the site stopped reporting a price
        assert (await view.snapshot()).reported_energy == {}
        writer.close()

    asyncio.run(main())


SERVICE = {
    "name": "chat",
    "kind": "inference",
    "resources": {"accelerator": "h20", "count": 1},
    "duration_hours": 100.0,
    "command": ["serve"],
    "inference": {
        "user_regions": [{"region": "beijing", "weight": 1.0}],
        "latency_slo_ms": 50,
        "replicas": 1,
    },
}


def test_rebalancing_reads_the_stored_demand_of_active_inference_jobs(tmp_path: Path) -> None:
    async def main() -> None:
        url = f"sqlite:///{tmp_path / 'b.db'}"
        store, rebalance_store = open_store(url), open_rebalance_store(url)
        writer = StoreWriter(store)
        topology = default_topology()
        registry = SiteRegistry(
            [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
            suspect_after_s=600,
            lost_after_s=1200,
            now_s=time.monotonic(),
        )
        driver = JobDriver(writer, SessionTable())
        view = CapacityView(writer=writer, registry=registry, topology=topology)
        live = LiveRebalance(
            writer=writer,
            capacity=view,
            driver=driver,
            policy=Policy.default(),
            lease=rebalance_store.lease,
        )
        store.submit_jobs(
            [
                NewJob(JobId("svc"), TenantId("t"), "r1", parse_spec(SERVICE), 1),
                NewJob(JobId("idle"), TenantId("t"), "r2", parse_spec(SERVICE), 2),
            ]
        )
        job = await driver.job(JobId("svc"))
        assert job is not None
        allocation = Allocation(SITE, (PoolShare("h20", 1),), 1.0, 1.0)
        for stimulus in (
            Placed(allocation),
            DispatchAcknowledged(SITE, 1),
            AttemptReported(SITE, 1, JobState.RUNNING),
        ):
            job = await driver.job(JobId("svc"))
            assert job is not None
            assert (await driver.feed(job, stimulus)).applied
        assert (await live.read_input({})).demand == {}
        store.save_demand(InferenceDemand(JobId("svc"), {"guangzhou": 3.0, "beijing": 1.0}))
        store.save_demand(InferenceDemand(JobId("idle"), {"shanghai": 1.0}))  # still pending
        state = await live.read_input({})
        assert [a.job_id for a in state.active] == ["svc"]
        assert state.demand == {"svc": {"guangzhou": 3.0, "beijing": 1.0}}
        writer.close()

    asyncio.run(main())
