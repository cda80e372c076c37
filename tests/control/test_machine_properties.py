"""Random stimulus sequences through the lifecycle core, against a model of store and sites.

The model applies the core's writes the way the store does (compare-and-set, holds released
before new ones are taken) and plays the sites: a dispatch starts an attempt, a stop ends it,
and a lost site's attempts are gone (its agent stopped them when its lease ran out). Sites also
drop their stream (their reports wait until they reconnect), stall (a frozen agent: its attempts
neither run nor stop until it comes back), or restart with an empty journal (its attempts and
unsent reports are gone); every reconnect lists what the site holds, as an agent's hello does,
and goes through `JobMachine.resume`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker.control import (
    Allocation,
    AttemptReported,
    AttemptsListed,
    CancelRequested,
    Dispatch,
    DispatchAcknowledged,
    JobMachine,
    MigrationAbandoned,
    MigrationBegun,
    MigrationSourceGone,
    MigrationStop,
    MigrationTargetUnavailable,
    PlaceAtTarget,
    Placed,
    PoolShare,
    Preempt,
    RetryPolicy,
    SiteLost,
    SiteSuspect,
    Stop,
    Write,
)
from broker.store.protocol import Hold, Transition
from broker.store.transitions import expectation_holds
from computenet.site_messages import AttemptStatus
from computenet.spec import parse_spec
from computenet.types import ACTIVE_STATES, Job, JobId, JobState, SiteId, TenantId

SITES = [SiteId("west"), SiteId("east")]
POOLS = ["a800", "910b"]
JOB = JobId("j")
HELD_STATES = frozenset({JobState.DISPATCHED, JobState.RUNNING, JobState.MIGRATING})
DOC = Path(__file__).resolve().parents[2] / "docs" / "job-lifecycle.md"
RETRY = RetryPolicy(max_attempts=4, max_sites=2, backoff_s=1.0)


def _job() -> Job:
    spec = parse_spec(
        {
            "name": "t",
            "kind": "batch",
            "resources": {"count": 8},
            "duration_hours": 1.0,
            "command": ["true"],
            "checkpoint": {"interval_hours": 1.0, "size_gb": 10.0},
        }
    )
    return Job(job_id=JOB, tenant=TenantId("t"), spec=spec, state=JobState.PENDING)


class World:
    """The store's view of one job, its ledger lines, and what runs at each site."""

    def __init__(self) -> None:
        self.job = _job()
        self.holds: list[Hold] = []
        self.running: dict[SiteId, set[int]] = {s: set() for s in SITES}
        self.delivered: dict[SiteId, set[int]] = {s: set() for s in SITES}
        self.up: dict[SiteId, bool] = dict.fromkeys(SITES, True)
        self.stalled: dict[SiteId, bool] = dict.fromkeys(SITES, False)
        self.unsent: dict[SiteId, list[AttemptReported]] = {s: [] for s in SITES}
        self.seen: set[tuple[str, bool, bool]] = set()
        self.machine = JobMachine(RETRY)
        self.target_full = False

    def write(self, t: Transition) -> bool:
        job = self.job
        if not expectation_holds(t, job.state, job.attempt):
            return False
        new = replace(job, state=t.new_state, exit_code=t.exit_code)
        if t.site is not None:
            new = replace(new, site=SiteId(t.site) if t.site else None)
        if t.attempt is not None:
            new = replace(new, attempt=t.attempt)
        if t.cancel_requested is not None:
            new = replace(new, cancel_requested=t.cancel_requested)
        if t.migration_target is not None:
            new = replace(new, migration_target=SiteId(t.migration_target) or None)
        if t.pool is not None:
            new = replace(new, pool=t.pool)
        if t.start_failures is not None:
            assert t.start_failures[: len(job.start_failures)] == job.start_failures, (
                "failed starts are only ever added"
            )
            new = replace(new, start_failures=t.start_failures)
        if t.not_before_unix_ms is not None:
            new = replace(new, not_before_unix_ms=t.not_before_unix_ms)
        if t.migration_checkpoint is not None:
            new = replace(new, migration_checkpoint=t.migration_checkpoint)
        if t.restore_ref is not None:
            new = replace(new, restore_ref=t.restore_ref)
        if t.new_state == JobState.PLACED and job.state == JobState.PENDING:
            assert t.site not in job.failed_sites, "placed where it could not launch"
        if t.release_hold:
            self.holds = []
        self.holds.extend(t.holds)
        self.job = new
        return True

    def feed(self, stimulus: object) -> None:
        effects = self.machine.handle(self.job, stimulus)  # type: ignore[arg-type]
        self.carry_out(effects)

    def carry_out(self, effects: Sequence[object]) -> None:
        for effect in effects:
            if isinstance(effect, Write):
                if not self.write(effect.transition):
                    return
            elif isinstance(effect, Dispatch):
                assert effect.restore_ref == self.job.restore_ref, "dispatched another checkpoint"
                if self.reachable(effect.site):  # else it is delivered at the next hello
                    self.delivered[effect.site].add(effect.attempt)
            elif isinstance(effect, Stop):
                site, attempt = effect.site, effect.attempt
                if self.reachable(site) and attempt in self.delivered[site] | self.running[site]:
                    self.delivered[site].discard(attempt)
                    self.running[site].discard(attempt)
                    # Odd attempts export their checkpoint, even ones fail to (the move falls back).
                    ref = f"ckpt-{attempt}" if effect.checkpoint and attempt % 2 else ""
                    self.report(AttemptReported(site, attempt, JobState.CANCELLED,
                                                checkpoint_ref=ref))  # fmt: skip
            elif isinstance(effect, PlaceAtTarget):
                if self.target_full:
                    self.feed(
                        MigrationTargetUnavailable(
                            replacing=effect.replacing, restore_ref=effect.restore_ref
                        )
                    )
                else:
                    allocation = _allocation(effect.target, 0)
                    placed = Placed(
                        allocation,
                        cause=effect.cause,
                        replacing=effect.replacing,
                        restore_ref=effect.restore_ref,
                    )
                    self.feed(placed)
        self.record()

    def reachable(self, site: SiteId) -> bool:
        return self.up[site] and not self.stalled[site]

    def report(self, report: AttemptReported) -> None:
        """The site reports an attempt: now if connected, else when it reconnects."""
        if self.up[report.site]:
            self.feed(report)
        else:
            self.unsent[report.site].append(report)

    def listed(self, site: SiteId) -> list[AttemptStatus]:
        """The attempts the site's hello lists: held ones, and finals not yet acknowledged."""
        states = {a: JobState.DISPATCHED for a in self.delivered[site]}
        states |= dict.fromkeys(self.running[site], JobState.RUNNING)
        for report in self.unsent[site]:
            if report.state.is_final:
                states[report.attempt] = report.state
        return [AttemptStatus(JOB, a, state) for a, state in sorted(states.items())]

    def reconnect(self, site: SiteId) -> None:
        """A hello listing what the site holds, the broker's reconciliation, then its reports."""
        listed = self.listed(site)
        self.up[site], self.stalled[site] = True, False
        resumption = self.machine.resume(site, [self.job], listed)
        for job, stimulus in resumption.stimuli:
            assert job == self.job and isinstance(stimulus, AttemptsListed)
            self.carry_out(self.machine.handle(self.job, stimulus))
        self.carry_out(resumption.stops)
        unsent, self.unsent[site] = self.unsent[site], []
        for report in unsent:
            self.feed(report)

    def record(self) -> None:
        job = self.job
        self.seen.add((job.state.value, job.cancel_requested, job.migration_target is not None))


def _allocation(site: SiteId, pool_index: int) -> Allocation:
    return Allocation(site, (PoolShare(POOLS[pool_index], 8),), 4.0, 16.0, 1_000)


site_st = st.sampled_from(SITES)
place_st = st.builds(lambda s, p: ("place", s, p), site_st, st.integers(0, 1))
stimulus_st = st.one_of(
    place_st,
    place_st,
    place_st,
    st.builds(lambda s: ("ack", s), site_st),
    st.just(("start",)),
    st.just(("start",)),
    st.builds(lambda s, ok: ("finish", s, ok), site_st, st.booleans()),
    st.builds(lambda s: ("stop_at_site", s), site_st),
    st.builds(lambda s: ("lose", s), site_st),
    st.builds(lambda s: ("launch_fail", s), site_st),
    st.builds(lambda s: ("launch_fail", s), site_st),
    st.builds(lambda s: ("suspect", s), site_st),
    st.just(("cancel",)),
    st.builds(lambda s, c: ("migrate", s, c), site_st, st.booleans()),
    st.booleans().map(lambda c: ("migration_stop", c)),
    st.just(("source_gone",)),
    st.booleans().map(lambda full: ("target_full", full)),
    st.just(("abandon",)),
    st.just(("preempt",)),
    st.builds(lambda s, a: ("stale_report", s, a), site_st, st.integers(0, 6)),
    st.builds(lambda s: ("drop", s), site_st),
    st.builds(lambda s: ("stall", s), site_st),
    st.builds(lambda s: ("wipe", s), site_st),
    st.builds(lambda s: ("reconnect", s), site_st),
    st.builds(lambda s: ("reconnect", s), site_st),
)


def _step(world: World, op: tuple[object, ...]) -> None:
    job = world.job
    kind = op[0]
    site: SiteId = op[1] if len(op) > 1 and op[1] in SITES else SITES[0]  # type: ignore[assignment]
    if kind == "place":
        world.feed(Placed(_allocation(site, op[2])))  # type: ignore[arg-type]
    elif kind == "ack":
        if job.attempt in world.delivered[site] and world.reachable(site):
            world.feed(DispatchAcknowledged(site, job.attempt))
    elif kind == "start":
        for at in SITES:
            if world.stalled[at]:
                continue
            for attempt in sorted(world.delivered[at] - world.running[at]):
                world.running[at].add(attempt)
                world.report(AttemptReported(at, attempt, JobState.RUNNING))
    elif kind == "finish":
        if world.stalled[site]:
            return
        for attempt in sorted(world.running[site]):
            world.running[site].discard(attempt)
            world.delivered[site].discard(attempt)
            state = JobState.SUCCEEDED if op[2] else JobState.FAILED
            world.report(AttemptReported(site, attempt, state, 0 if op[2] else 1))
    elif kind == "stop_at_site":
        if world.stalled[site]:
            return
        for attempt in sorted(world.running[site]):
            world.running[site].discard(attempt)
            world.delivered[site].discard(attempt)
            world.report(AttemptReported(site, attempt, JobState.CANCELLED, message="node down"))
    elif kind == "lose":
        world.up[site] = False  # the broker ends a lost site's stream
        if not world.stalled[site]:
            # the agent stopped its attempts when its lease ran out; it reports that later
            for attempt in sorted(world.delivered[site] | world.running[site]):
                world.unsent[site].append(AttemptReported(site, attempt, JobState.CANCELLED))
            world.running[site].clear()
            world.delivered[site].clear()
        world.feed(SiteLost(site))
    elif kind == "launch_fail":
        if world.stalled[site]:
            return
        for attempt in sorted(world.delivered[site] - world.running[site]):
            world.delivered[site].discard(attempt)
            report = AttemptReported(
                site, attempt, JobState.FAILED, -1, "no such file", launch_failed=True
            )
            world.report(report)
    elif kind == "suspect":
        world.feed(SiteSuspect(site))
    elif kind == "cancel":
        world.feed(CancelRequested("test"))
    elif kind == "migrate":
        if job.site is not None:
            # op[2]: whether both sites move checkpoints (else the move is a plain restart)
            world.feed(MigrationBegun(job.site, site, checkpoint=bool(op[2])))
    elif kind == "migration_stop":
        world.feed(MigrationStop(bool(op[1])))
    elif kind == "source_gone":
        if job.site is not None:
            world.running[job.site].clear()
            world.delivered[job.site].clear()
        world.feed(MigrationSourceGone())
    elif kind == "target_full":
        world.target_full = bool(op[1])
    elif kind == "abandon":
        world.feed(MigrationAbandoned())
    elif kind == "preempt":
        world.feed(Preempt("reclaim"))
    elif kind == "stale_report":
        if world.up[site]:
            world.feed(AttemptReported(site, op[2], JobState.RUNNING))  # type: ignore[arg-type]
        # a superseded attempt the site claims to run is told to stop, never adopted
    elif kind == "drop":
        world.up[site] = False  # the agent runs on; its reports wait for the next stream
    elif kind == "stall":
        world.up[site], world.stalled[site] = False, True
    elif kind == "wipe":
        # the agent restarts with an empty journal: its attempts and unsent reports are gone
        world.up[site], world.stalled[site] = False, False
        world.running[site].clear()
        world.delivered[site].clear()
        world.unsent[site].clear()
    elif kind == "reconnect" and not world.up[site]:
        world.reconnect(site)
        _check_reconciled(world, site)


def _check_reconciled(world: World, site: SiteId) -> None:
    """One reconnect leaves no attempt the broker counts on that the site does not hold."""
    job = world.job
    if job.site == site and job.state in HELD_STATES:
        held = world.delivered[site] | world.running[site]
        assert job.attempt in held, f"{job.state.value} attempt {job.attempt} unknown at {site}"


def _check(world: World) -> None:
    job = world.job
    running = [(s, a) for s, attempts in world.running.items() for a in attempts]
    live = [(s, a) for s, a in running if not world.stalled[s]]
    assert len(live) <= 1, f"two running attempts: {live}"
    if job.state.is_final:
        assert world.holds == [], "a final job holds capacity"
        assert not job.cancel_requested and job.migration_target is None
        assert job.restore_ref == "", "a final job keeps a checkpoint"
    if job.state in ACTIVE_STATES:
        assert job.site is not None and world.holds, "an active job holds capacity at its site"
        assert all(h.site == job.site and h.attempt == job.attempt for h in world.holds)
    if job.state == JobState.PENDING:
        assert job.site is None and world.holds == [], "a pending job holds nothing"
    assert len(job.start_failures) <= RETRY.max_attempts, "more failed starts than the cap"
    if RETRY.exhausted(job.start_failures):
        assert job.state.is_final, "a job past its retry caps is still tried"
    for site, attempt in live:
        assert job.state in ACTIVE_STATES and (job.site, job.attempt) == (site, attempt), (
            "a running attempt is the job's current one"
        )


@settings(max_examples=1500, deadline=None)
@given(st.lists(stimulus_st, min_size=4, max_size=40))
def test_random_stimuli_keep_the_lifecycle_invariants(ops: list[tuple[object, ...]]) -> None:
    world = World()
    world.record()
    for op in ops:
        _step(world, op)
        _check(world)


reconnect_st = st.one_of(
    place_st,
    place_st,
    st.builds(lambda s: ("ack", s), site_st),
    st.just(("start",)),
    st.just(("start",)),
    st.builds(lambda s, ok: ("finish", s, ok), site_st, st.booleans()),
    st.builds(lambda s: ("lose", s), site_st),
    st.just(("cancel",)),
    st.builds(lambda s, c: ("migrate", s, c), site_st, st.booleans()),
    st.booleans().map(lambda c: ("migration_stop", c)),
    st.builds(lambda s: ("drop", s), site_st),
    st.builds(lambda s: ("stall", s), site_st),
    st.builds(lambda s: ("wipe", s), site_st),
    st.builds(lambda s: ("reconnect", s), site_st),
    st.builds(lambda s: ("reconnect", s), site_st),
)
W, E = SITES


@settings(max_examples=1500, deadline=None)
@given(st.lists(reconnect_st, min_size=4, max_size=30))
@example([("place", W, 0), ("start",), ("stall", W), ("lose", W), ("place", E, 0), ("start",),
          ("reconnect", W)])  # fmt: skip
@example([("place", W, 0), ("ack", W), ("start",), ("wipe", W), ("reconnect", W)])
def test_reconnects_with_forgotten_or_moved_attempts_keep_the_invariants(
    ops: list[tuple[object, ...]],
) -> None:
    """Sites that drop, stall, forget and come back: one reconnect settles every difference."""
    world = World()
    world.record()
    for op in ops:
        _step(world, op)
        _check(world)


def documented_states() -> set[tuple[str, bool, bool]]:
    """The (state, cancel requested, migration target set) rows of docs/job-lifecycle.md."""
    rows = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\|\s*`(\w+)`\s*\|\s*(yes|no)\s*\|\s*(yes|no)\s*\|", line)
        if m:
            rows.add((m.group(1), m.group(2) == "yes", m.group(3) == "yes"))
    return rows


@settings(max_examples=300, deadline=None)
@given(st.lists(stimulus_st, max_size=30))
def test_every_reachable_state_is_documented(ops: list[tuple[object, ...]]) -> None:
    documented = documented_states()
    world = World()
    world.record()
    for op in ops:
        _step(world, op)
    assert world.seen <= documented, f"undocumented states: {world.seen - documented}"
