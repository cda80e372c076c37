"""The placement loop on a real SQLite store: joint rounds, ledger holds per pool, explanations."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.placement_loop import LoopTiming, PlacementLoop
from broker.placement import Policy
from broker.sites.registry import SiteRegistry
from broker.sites.sessions import SessionTable
from broker.store import open_store
from broker.store.protocol import NewJob
from broker.writer import StoreWriter
from computenet.spec import parse_spec
from computenet.types import CapacityReport, JobId, JobState, PoolCapacity, SiteId, TenantId
from topology import default_topology

SITE = SiteId("chongqing")


def _spec(count: int, accelerator: str = "") -> dict[str, object]:
    return {
        "name": "t",
        "kind": "batch",
        "duration_hours": 2.0,
        "command": ["true"],
        "resources": {"accelerator": accelerator, "count": count, "cpu": 1, "memory_gb": 1},
    }


async def _round(tmp_path: Path, explain_budget_s: float) -> tuple[StoreWriter, PlacementLoop]:
    topology = default_topology()
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    now = time.monotonic()
    registry = SiteRegistry(
        [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
        suspect_after_s=60,
        lost_after_s=120,
        now_s=now,
    )
    report = CapacityReport(
        pools=(PoolCapacity("a800", 8, 8), PoolCapacity("910b", 8, 8)),
        cpu_cores=64,
        cpu_cores_free=64,
        memory_gb=512,
        memory_gb_free=512,
    )
    registry.reported(SITE, report, now_s=now, now_unix_ms=int(time.time() * 1000))
    specs = [_spec(8), _spec(8), _spec(8, "a800")]
    store.submit_jobs(
        [
            NewJob(JobId(f"j{i}"), TenantId("t"), f"r{i}", parse_spec(s), 1_000 + i)
            for i, s in enumerate(specs)
        ]
    )
    writer = StoreWriter(store)
    loop = PlacementLoop(
        writer=writer,
        registry=registry,
        capacity=CapacityView(writer=writer, registry=registry, topology=topology),
        driver=JobDriver(writer, SessionTable()),
        policy=Policy.default(),
        timing=LoopTiming(explain_budget_s=explain_budget_s),
    )
    await loop.load_pending()
    await loop.place_pending()
    return writer, loop


def test_a_round_fills_both_pools_and_holds_each_in_the_ledger(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer, loop = await _round(tmp_path, explain_budget_s=10.0)
        store = writer.store
        jobs = {j.job_id: j for j in store.get_jobs([JobId("j0"), JobId("j1"), JobId("j2")])}
        placed = [j for j in jobs.values() if j.state == JobState.PLACED]
        assert len(placed) == 2 and {j.pool for j in placed} == {"a800", "910b"}
        holds = sorted((h.job_id, h.pool, h.count) for h in store.holds())
        assert holds == sorted((j.job_id, j.pool, 8) for j in placed)
        waiting = [j for j in jobs.values() if j.state == JobState.PENDING]
        assert len(waiting) == 1 and loop.pending_reasons[waiting[0].job_id]
        stats = loop.last_round
        assert stats is not None and (stats.candidates, stats.placed) == (3, 2)
        for job in placed:
            why = json.loads(store.placement_json(job.job_id) or "{}")
            assert why["chosen"] == SITE and why["candidates"]
        snapshot = await loop._capacity.snapshot()
        assert snapshot.sites[SITE].free == {"a800": 0, "910b": 0}
        writer.close()

    asyncio.run(scenario())


def test_explanations_past_the_budget_follow_in_the_background(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer, loop = await _round(tmp_path, explain_budget_s=0.0)
        store = writer.store
        placed = [j for j in store.jobs_in_states(frozenset({JobState.PLACED}))]
        assert len(placed) == 2
        first = json.loads(store.placement_json(placed[0].job_id) or "{}")
        assert first["deferred"] is True and first["candidates"] == []
        await asyncio.gather(*loop._explaining)
        for job in placed:
            why = json.loads(store.placement_json(job.job_id) or "{}")
            assert why["chosen"] == SITE and why["candidates"] and not why.get("deferred")
        writer.close()

    asyncio.run(scenario())
