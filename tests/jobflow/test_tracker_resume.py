"""A site's (re)connect through the tracker on a real SQLite store: what it lists is reconciled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from broker.control import (
    Allocation,
    AttemptReported,
    DispatchAcknowledged,
    Placed,
    PoolShare,
    Stimulus,
)
from broker.control.reconcile import STALE_CAUSE, UNKNOWN_CAUSE
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.liveness import LivenessLoop
from broker.jobflow.placement_loop import PlacementLoop
from broker.jobflow.tracker import AttemptReport, JobTracker
from broker.placement import Policy
from broker.sites.registry import SiteRegistry, StatusChange
from broker.sites.sessions import AgentSession, OutCancel, OutDispatch, OutDrain, SessionTable
from broker.store import open_store
from broker.store.protocol import NewJob
from broker.writer import StoreWriter
from computenet.site_messages import AttemptStatus
from computenet.spec import parse_spec
from computenet.types import JobId, JobState, SiteId, SiteStatus, TenantId
from topology import default_topology

WEST, EAST = SiteId("chongqing"), SiteId("horinger")


class Broker:
    """The tracker's real collaborators on one SQLite file."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        self.writer = StoreWriter(self.store)
        self.sessions = SessionTable()
        self.driver = JobDriver(self.writer, self.sessions)
        self.tracker = JobTracker(self.writer, self.driver)

    def submit(self, name: str, *, policy: str = "requeue") -> JobId:
        spec = {
            "name": name,
            "kind": "batch",
            "resources": {"accelerator": "a800", "count": 2},
            "duration_hours": 1.0,
            "command": ["true"],
            "on_site_loss": policy,
        }
        job_id = JobId(name)
        self.store.submit_jobs([NewJob(job_id, TenantId("t"), name, parse_spec(spec), 1)])
        return job_id

    async def run_at(self, job_id: JobId, site: SiteId, *, running: bool = True) -> int:
        """Place, acknowledge and (if `running`) start the job's next attempt at `site`."""
        job = await self.driver.job(job_id)
        assert job is not None
        allocation = Allocation(site, (PoolShare("a800", 2),), 1.0, 1.0)
        assert (await self.driver.feed(job, Placed(allocation))).applied
        attempt = job.attempt + 1
        stimuli: list[Stimulus] = [DispatchAcknowledged(site, attempt)]
        if running:
            stimuli.append(AttemptReported(site, attempt, JobState.RUNNING))
        for stimulus in stimuli:
            current = await self.driver.job(job_id)
            assert current is not None
            assert (await self.driver.feed(current, stimulus)).applied
        return attempt

    async def hello(self, site: SiteId, *listed: tuple[str, int, JobState | None]) -> AgentSession:
        """A new stream from `site` whose hello lists `listed`; returns its session."""
        session = self.sessions.open(site, "epoch")
        statuses = [AttemptStatus(JobId(j), a, s) for j, a, s in listed]
        await self.tracker.resume_site(session, statuses)
        return session

    def events(self, job_id: JobId) -> list[tuple[str, str, str]]:
        return [
            (e.state.value, e.cause, e.message) for e in self.store.events_after(0, job_id=job_id)
        ]

    def holds_of(self, job_id: JobId) -> list[tuple[str, int]]:
        return [(h.site, h.attempt) for h in self.store.holds() if h.job_id == job_id]


def queued(session: AgentSession) -> list[OutDispatch | OutCancel | OutDrain]:
    """The deliveries the broker has sent on the session so far, in order."""
    return [session.in_flight[i] for i in sorted(session.in_flight)]


def run(tmp_path: Path, scenario: Callable[[Broker], Awaitable[None]]) -> None:
    async def main() -> None:
        broker = Broker(tmp_path)
        try:
            await scenario(broker)
        finally:
            broker.writer.close()

    asyncio.run(main())


def test_an_attempt_the_site_no_longer_knows_is_requeued_and_its_capacity_released(
    tmp_path: Path,
) -> None:
    async def scenario(b: Broker) -> None:
        lost, kept, accepted = b.submit("lost"), b.submit("kept"), b.submit("accepted")
        failing = b.submit("failing", policy="fail")
        for job_id in (lost, kept, failing):
            await b.run_at(job_id, WEST)
        await b.run_at(accepted, WEST, running=False)  # acknowledged, not started
        session = await b.hello(WEST, ("kept", 1, JobState.RUNNING))
        lost_1 = f"reconciled: site {WEST} no longer knows attempt 1"
        for job_id in (lost, accepted):
            assert (await b.driver.job(job_id)).state == JobState.PENDING  # type: ignore[union-attr]
            assert b.holds_of(job_id) == []
        assert b.events(lost)[-1] == ("pending", UNKNOWN_CAUSE, f"{lost_1}; requeued")
        # never seen running: a failed start, placed again only after a backoff
        (state, cause, message) = b.events(accepted)[-1]
        assert (state, cause) == ("pending", UNKNOWN_CAUSE) and message.startswith(lost_1)
        retried = await b.driver.job(accepted)
        assert retried is not None and len(retried.start_failures) == 1
        assert retried.not_before_unix_ms > 0
        assert b.holds_of(kept) == [(WEST, 1)]
        failed = await b.driver.job(failing)
        assert failed is not None and failed.state == JobState.FAILED
        assert b.events(failing)[-1][2].endswith("failed (on_site_loss: fail)")
        assert (await b.driver.job(kept)).state == JobState.RUNNING  # type: ignore[union-attr]
        assert b.events(kept)[-1][1] == "site_reported", "nothing reconciled for a known attempt"
        assert queued(session) == [], "a dispatched attempt is requeued, never sent again"

    run(tmp_path, scenario)


def test_a_listed_final_state_is_not_unknown_and_its_report_ends_the_attempt(
    tmp_path: Path,
) -> None:
    async def scenario(b: Broker) -> None:
        done = b.submit("done")
        await b.run_at(done, WEST)
        await b.hello(WEST, ("done", 1, JobState.FAILED))
        job = await b.driver.job(done)
        assert job is not None and job.state == JobState.RUNNING and b.holds_of(done)
        # the report the agent still holds unacknowledged follows on the stream
        await b.tracker.report(AttemptReport(WEST, done, 1, JobState.FAILED, 3, "exit 3"))
        job = await b.driver.job(done)
        assert job is not None and (job.state, job.exit_code) == (JobState.FAILED, 3)
        assert b.holds_of(done) == []
        assert all(cause != UNKNOWN_CAUSE for _, cause, _ in b.events(done))

    run(tmp_path, scenario)


def test_attempts_moved_away_finished_or_unknown_are_stopped_at_the_old_site(
    tmp_path: Path,
) -> None:
    async def scenario(b: Broker) -> None:
        moved, finished = b.submit("moved"), b.submit("finished")
        await b.run_at(moved, WEST)
        await b.run_at(finished, WEST)
        await b.tracker.site_lost(WEST)  # both requeued while west was away
        await b.run_at(moved, EAST)
        await b.run_at(finished, EAST)
        job = await b.driver.job(finished)
        assert job is not None
        await b.driver.feed(job, AttemptReported(EAST, 2, JobState.SUCCEEDED, 0))
        session = await b.hello(
            WEST,
            ("moved", 1, JobState.RUNNING),
            ("finished", 1, JobState.RUNNING),
            ("never-had", 4, JobState.RUNNING),
            ("finished", 0, JobState.CANCELLED),  # final at the site already: nothing to do
        )
        stops = {(c.job_id, c.attempt) for c in queued(session) if isinstance(c, OutCancel)}
        assert stops == {("moved", 1), ("finished", 1), ("never-had", 4)}
        note = f"reconciled: site {WEST} still held attempt 1 (running); told to stop it"
        assert b.events(moved)[-1] == ("running", STALE_CAUSE, note)
        assert b.events(finished)[-1] == ("succeeded", STALE_CAUSE, note)
        done = await b.driver.job(finished)
        assert done is not None and (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
        running = await b.driver.job(moved)
        assert running is not None and (running.site, running.attempt) == (EAST, 2)

    run(tmp_path, scenario)


def test_a_placed_attempt_is_delivered_again(tmp_path: Path) -> None:
    async def scenario(b: Broker) -> None:
        placed = b.submit("placed")
        job = await b.driver.job(placed)
        assert job is not None
        allocation = Allocation(WEST, (PoolShare("a800", 2),), 1.0, 1.0)
        await b.driver.feed(job, Placed(allocation))
        session = await b.hello(WEST)
        (dispatch,) = queued(session)
        assert isinstance(dispatch, OutDispatch) and (dispatch.job_id, dispatch.attempt) == (
            placed,
            1,
        )
        assert (await b.driver.job(placed)).state == JobState.PLACED  # type: ignore[union-attr]

    run(tmp_path, scenario)


def test_a_lost_verdict_ends_the_sites_stream(tmp_path: Path) -> None:
    async def scenario(b: Broker) -> None:
        topology = default_topology()
        registry = SiteRegistry(
            [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
            suspect_after_s=1,
            lost_after_s=2,
            now_s=time.monotonic(),
        )
        placement = PlacementLoop(
            writer=b.writer,
            registry=registry,
            capacity=CapacityView(writer=b.writer, registry=registry, topology=topology),
            driver=b.driver,
            policy=Policy.default(),
        )
        liveness = LivenessLoop(
            registry=registry, sessions=b.sessions, tracker=b.tracker, placement=placement
        )
        job_id = b.submit("stalled")
        await b.run_at(job_id, WEST)
        session = b.sessions.open(WEST, "epoch")
        await liveness.on_status_changes([StatusChange(WEST, SiteStatus.SUSPECT, SiteStatus.LOST)])
        assert await asyncio.wait_for(session.next_message(), 5) is None, "the stream ends"
        job = await b.driver.job(job_id)
        assert job is not None and job.state == JobState.PENDING

    run(tmp_path, scenario)
