"""A move with checkpoint through the real driver, tracker and live rebalancing on SQLite: the
new attempt is dispatched restoring what the old one exported, or falls back to its site."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from broker.control import (
    MIGRATION_FELL_BACK,
    Allocation,
    AttemptReported,
    DispatchAcknowledged,
    Placed,
    PoolShare,
)
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.tracker import AttemptReport, JobTracker
from broker.placement import Policy
from broker.rebalance.apply import Action, Step
from broker.rebalance.live import LiveRebalance
from broker.sites.registry import SiteRegistry
from broker.sites.sessions import AgentSession, OutCancel, OutDispatch, SessionTable
from broker.store import open_rebalance_store, open_store
from broker.store.protocol import NewJob
from broker.writer import StoreWriter
from computenet.spec import parse_spec
from computenet.types import CapacityReport, Job, JobId, JobState, PoolCapacity, SiteId, TenantId
from topology import default_topology

WEST, EAST = SiteId("chongqing"), SiteId("horinger")
JOB = JobId("trainer")
REF = "ckpt://chongqing/trainer/1"


class Broker:
    """The broker's job flow on one SQLite file, with live rebalancing hooked in."""

    def __init__(self, tmp_path: Path, checkpoints: frozenset[SiteId]) -> None:
        url = f"sqlite:///{tmp_path / 'b.db'}"
        self.store = open_store(url)
        self.rebalance_store = open_rebalance_store(url)
        self.writer = StoreWriter(self.store)
        self.sessions = SessionTable()
        self.driver = JobDriver(self.writer, self.sessions)
        self.tracker = JobTracker(self.writer, self.driver)
        topology = default_topology()
        self.registry = SiteRegistry(
            [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
            suspect_after_s=60,
            lost_after_s=120,
            now_s=time.monotonic(),
        )
        for site in (WEST, EAST):
            # what the site's agent says in its hello: does it move checkpoints
            self.registry.connected(
                site,
                now_s=time.monotonic(),
                executor="local",
                version="t",
                epoch="epoch",
                checkpoints=site in checkpoints,
            )
            self.report(site, allocatable=8)
        capacity = CapacityView(writer=self.writer, registry=self.registry, topology=topology)
        self.live = LiveRebalance(
            writer=self.writer,
            capacity=capacity,
            driver=self.driver,
            policy=Policy.default(),
            lease=self.rebalance_store.lease,
        )
        self.driver.on_place_at_target = self.live.place_at_target
        self.west = self.sessions.open(WEST, "epoch")
        self.east = self.sessions.open(EAST, "epoch")

    def report(self, site: SiteId, *, allocatable: int) -> None:
        capacity = CapacityReport(
            pools=(PoolCapacity("a800", 8, allocatable),),
            cpu_cores=64,
            cpu_cores_free=64,
            memory_gb=512,
            memory_gb_free=512,
        )
        now_ms = int(time.time() * 1000)
        self.registry.reported(site, capacity, now_s=time.monotonic(), now_unix_ms=now_ms)

    async def job(self) -> Job:
        job = await self.driver.job(JOB)
        assert job is not None
        return job

    async def running_at_west(self) -> None:
        spec = {
            "name": "trainer",
            "kind": "training",
            "resources": {"accelerator": "a800", "count": 2},
            "duration_hours": 10.0,
            "command": ["train"],
            "checkpoint": {"interval_hours": 1.0, "size_gb": 40.0},
        }
        self.store.submit_jobs([NewJob(JOB, TenantId("t"), "r", parse_spec(spec), 1)])
        allocation = Allocation(WEST, (PoolShare("a800", 2),), 1.0, 1.0)
        for stimulus in (
            Placed(allocation),
            DispatchAcknowledged(WEST, 1),
            AttemptReported(WEST, 1, JobState.RUNNING),
        ):
            assert (await self.driver.feed(await self.job(), stimulus)).applied
        drain(self.west)

    async def move_to_east(self) -> OutCancel:
        """The steps of a rebalancing move with checkpoint; returns the stop the source got."""
        for action in (Action.MARK_MIGRATING, Action.CHECKPOINT_AND_STOP, Action.DISPATCH):
            site = EAST if action == Action.DISPATCH else WEST
            await self.live.perform(Step(JOB, action, site, "a800", "cheaper", EAST))
        (stop,) = drain(self.west)
        assert isinstance(stop, OutCancel)
        return stop

    async def stopped(self, ref: str, size: int = 0) -> None:
        """The source's final report of the stopped attempt."""
        await self.tracker.report(
            AttemptReport(WEST, JOB, 1, JobState.CANCELLED, None, "stopped", False, ref, size)
        )

    def causes(self) -> list[str]:
        return [e.cause for e in self.store.events_after(0, job_id=JOB)]


def drain(session: AgentSession) -> list[object]:
    """The deliveries sent on the session since the last drain, in order (acknowledged)."""
    return [session.acknowledged(i) for i in sorted(session.in_flight)]


def run(
    tmp_path: Path,
    scenario: Callable[[Broker], Awaitable[None]],
    checkpoints: frozenset[SiteId] = frozenset({WEST, EAST}),
) -> None:
    async def main() -> None:
        broker = Broker(tmp_path, checkpoints)
        try:
            broker.live.bind(asyncio.get_running_loop())
            await scenario(broker)
        finally:
            broker.rebalance_store.close()
            broker.store.close()

    asyncio.run(main())


def test_the_new_attempt_restores_the_checkpoint_the_stopped_one_exported(
    tmp_path: Path,
) -> None:
    async def scenario(b: Broker) -> None:
        await b.running_at_west()
        stop = await b.move_to_east()
        assert stop.checkpoint and stop.attempt == 1
        await b.stopped(REF, 40 << 30)
        (dispatch,) = drain(b.east)
        assert isinstance(dispatch, OutDispatch)
        assert (dispatch.job_id, dispatch.attempt, dispatch.restore_ref) == (JOB, 2, REF)
        job = await b.job()
        assert (job.state, job.site, job.attempt, job.restore_ref) == (
            JobState.PLACED,
            EAST,
            2,
            REF,
        )
        assert b.causes()[-1] == "migrated"
        # A reconnecting target is delivered the same dispatch again, from the store.
        b.east = b.sessions.open(EAST, "epoch-2")
        await b.tracker.resume_site(b.east, [])
        (again,) = drain(b.east)
        assert isinstance(again, OutDispatch) and again.restore_ref == REF

    run(tmp_path, scenario)


def test_a_checkpoint_that_was_not_exported_sends_the_job_back_to_its_site(
    tmp_path: Path,
) -> None:
    async def scenario(b: Broker) -> None:
        await b.running_at_west()
        await b.move_to_east()
        await b.stopped("")
        assert drain(b.east) == []
        (dispatch,) = drain(b.west)
        assert isinstance(dispatch, OutDispatch)
        assert (dispatch.attempt, dispatch.restore_ref) == (2, "")
        job = await b.job()
        assert (job.state, job.site, job.migration_target) == (JobState.PLACED, WEST, None)
        assert b.causes()[-1] == MIGRATION_FELL_BACK
        assert [(h.site, h.attempt) for h in b.store.holds()] == [(WEST, 2)]

    run(tmp_path, scenario)


def test_a_fall_back_the_source_cannot_take_requeues_the_job(tmp_path: Path) -> None:
    async def scenario(b: Broker) -> None:
        await b.running_at_west()
        await b.move_to_east()
        b.report(WEST, allocatable=0)  # the source's cards went elsewhere meanwhile
        await b.stopped("")
        assert drain(b.east) == [] and drain(b.west) == []
        job = await b.job()
        assert (job.state, job.site) == (JobState.PENDING, None)
        assert b.causes()[-1] == "migration_target_unavailable"
        assert b.store.holds() == []

    run(tmp_path, scenario)


def test_a_move_from_a_site_that_cannot_send_checkpoints_is_a_plain_restart_at_the_target(
    tmp_path: Path,
) -> None:
    async def scenario(b: Broker) -> None:
        await b.running_at_west()
        state = await b.live.read_input({})
        assert state.checkpoint_sites is not None
        assert EAST in state.checkpoint_sites and WEST not in state.checkpoint_sites
        stop = await b.move_to_east()
        assert not stop.checkpoint, "priced as a restart, stopped as one"
        await b.stopped("")
        assert drain(b.west) == []
        (dispatch,) = drain(b.east)
        assert isinstance(dispatch, OutDispatch)
        assert (dispatch.attempt, dispatch.restore_ref) == (2, "")
        job = await b.job()
        assert (job.state, job.site) == (JobState.PLACED, EAST)
        assert MIGRATION_FELL_BACK not in b.causes()
        assert b.causes()[-1] == "migrated"

    run(tmp_path, scenario, checkpoints=frozenset({EAST}))
