"""Node shapes through the served placement path: reports, ledger, rounds, explanations.

Sites report pools of known node shape to a real registry; the placement loop solves against a
snapshot built from the ledger on a real SQLite store, and the jobs API explains the outcome.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.placement_loop import LoopTiming, PlacementLoop
from broker.jobs_api.hub import EventHub
from broker.jobs_api.manager import JobManager
from broker.placement import Policy
from broker.sites.registry import SiteRegistry
from broker.sites.sessions import SessionTable
from broker.store import open_store
from broker.store.protocol import NewJob
from broker.writer import StoreWriter
from computenet.errors import NotPlacedError
from computenet.spec import parse_spec
from computenet.types import CapacityReport, JobId, JobState, PoolCapacity, SiteId, TenantId
from topology import default_topology

TWO_NODES = SiteId("chongqing")  # a800: 2 nodes of 2 cards
FOUR_NODES = SiteId("horinger")  # a800: 4 nodes of 2 cards
TOO_BIG = "gang of 6 a800 needs 3 nodes of 2 cards, the pool has 2 nodes"


def _gang(cards: int) -> dict[str, object]:
    return {
        "name": f"gang{cards}",
        "kind": "training",
        "duration_hours": 2.0,
        "command": ["true"],
        "resources": {"accelerator": "a800", "count": cards, "cpu": 1, "memory_gb": 1},
    }


def _report(nodes: int) -> CapacityReport:
    pool = PoolCapacity("a800", nodes * 2, nodes * 2, nodes=nodes, cards_per_node=2)
    return CapacityReport(
        (pool,), cpu_cores=64, cpu_cores_free=64, memory_gb=512, memory_gb_free=512
    )


async def _served(
    tmp_path: Path, sites: dict[SiteId, int], gangs: list[int]
) -> tuple[StoreWriter, PlacementLoop, JobManager]:
    topology = default_topology()
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    now = time.monotonic()
    registry = SiteRegistry(
        [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
        suspect_after_s=60,
        lost_after_s=120,
        now_s=now,
    )
    for site, nodes in sites.items():
        registry.reported(site, _report(nodes), now_s=now, now_unix_ms=int(time.time() * 1000))
    store.submit_jobs(
        [
            NewJob(JobId(f"j{i}"), TenantId("t"), f"r{i}", parse_spec(_gang(n)), 1_000 + i)
            for i, n in enumerate(gangs)
        ]
    )
    writer = StoreWriter(store)
    driver = JobDriver(writer, SessionTable())
    loop = PlacementLoop(
        writer=writer,
        registry=registry,
        capacity=CapacityView(writer=writer, registry=registry, topology=topology),
        driver=driver,
        policy=Policy.default(),
        timing=LoopTiming(explain_budget_s=10.0),
    )
    manager = JobManager(
        writer=writer,
        hub=EventHub(),
        topology=topology,
        driver=lambda: driver,
        pending_reasons=lambda: loop.pending_reasons,
    )
    await loop.load_pending()
    await loop.place_pending()
    return writer, loop, manager


def test_a_gang_too_big_for_a_sites_nodes_goes_elsewhere_and_explain_says_why(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        writer, _, manager = await _served(tmp_path, {TWO_NODES: 2, FOUR_NODES: 4}, gangs=[6])
        job = await manager.get(JobId("j0"))
        assert job.state == JobState.PLACED and job.site == FOUR_NODES
        assert [(h.site, h.count) for h in writer.store.holds()] == [(FOUR_NODES, 6)]
        placement = await manager.explain(JobId("j0"))
        verdicts = {c.site: c for c in placement.candidates}
        assert placement.chosen == FOUR_NODES
        assert not verdicts[TWO_NODES].feasible and verdicts[TWO_NODES].reason == TOO_BIG
        writer.close()

    asyncio.run(scenario())


def test_a_gang_no_site_can_hold_stays_pending_and_explain_says_why(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer, loop, manager = await _served(tmp_path, {TWO_NODES: 2}, gangs=[6])
        job = await manager.get(JobId("j0"))
        assert job.state == JobState.PENDING and not writer.store.holds()
        assert f"{TWO_NODES}: {TOO_BIG}" in job.reason
        with pytest.raises(NotPlacedError, match=TOO_BIG):
            await manager.explain(JobId("j0"))
        assert loop.last_round is not None and loop.last_round.placed == 0
        writer.close()

    asyncio.run(scenario())


def test_one_card_jobs_share_nodes_and_a_two_node_gang_waits_for_whole_nodes(
    tmp_path: Path,
) -> None:
    """Four 1-card jobs fill two 2-card nodes; with one held, a 2-node gang waits, 1 node fits."""

    async def scenario() -> None:
        writer, loop, manager = await _served(tmp_path, {TWO_NODES: 2}, gangs=[1, 1, 1, 1])
        states = [(await manager.get(JobId(f"j{i}"))).state for i in range(4)]
        assert states == [JobState.PLACED] * 4  # no card left idle
        snapshot = await loop._capacity.snapshot()
        assert snapshot.sites[TWO_NODES].free == {"a800": 0}
        writer.close()

    asyncio.run(scenario())


def test_a_held_card_keeps_a_two_node_gang_out_but_not_a_one_node_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer, loop, manager = await _served(tmp_path, {TWO_NODES: 2}, gangs=[1])
        assert (await manager.get(JobId("j0"))).state == JobState.PLACED
        writer.store.submit_jobs(
            [NewJob(JobId("wide"), TenantId("t"), "wide", parse_spec(_gang(4)), 2_000)]
        )
        await loop.load_pending()
        await loop.place_pending()
        wide = await manager.get(JobId("wide"))
        why = "gang of 4 a800 needs 2 nodes of 2 cards, 1 of 2 wholly free"
        assert wide.state == JobState.PENDING and f"{TWO_NODES}: {why}" in wide.reason
        writer.store.submit_jobs(
            [NewJob(JobId("narrow"), TenantId("t"), "narrow", parse_spec(_gang(2)), 3_000)]
        )
        await loop.load_pending()
        await loop.place_pending()
        assert (await manager.get(JobId("narrow"))).state == JobState.PLACED
        assert (await manager.get(JobId("wide"))).state == JobState.PENDING
        held = sorted((h.job_id, h.count) for h in writer.store.holds())
        assert held == [(JobId("j0"), 1), (JobId("narrow"), 2)]
        writer.close()

    asyncio.run(scenario())
