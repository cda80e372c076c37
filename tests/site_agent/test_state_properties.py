"""Property tests: no interleaving of duplicates, acks, reconnects and restarts runs an attempt
twice or loses a report the broker has not acknowledged, and none keeps an attempt running past
the lease of the last heartbeat the broker answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from computenet.types import JobState
from site_agent.events import (
    AttemptLaunched,
    BrokerAcked,
    CancelReceived,
    CheckpointExported,
    Connected,
    Connecting,
    Disconnected,
    DispatchReceived,
    Event,
    ExecutorReported,
    ExportCheckpoint,
    ForgetAttempt,
    ForgetReport,
    Instruction,
    LeaseCheck,
    LeaseRenewed,
    PersistAttempt,
    PersistDrain,
    PersistReport,
    PublishLease,
    SendReport,
    StartAttempt,
    Started,
    StopAttempt,
)
from site_agent.records import AttemptKey, AttemptRecord, Phase, Report, Snapshot
from site_agent.state import AgentState
from tests.site_agent.helpers import make_spec

SPEC = make_spec("true")
FAIL_SPEC = make_spec("true", on_site_loss="fail")
"""j2's spec: it runs on past the lease, so its moves and exports happen often."""
KEYS = [("j1", 1), ("j1", 2), ("j2", 1)]
LEASE_MS = 1000


@dataclass
class World:
    """An agent, its journal, a pretend executor and the broker's view of the reports."""

    attempts: dict[AttemptKey, AttemptRecord] = field(default_factory=dict)
    reports: dict[int, Report] = field(default_factory=dict)
    next_report_id: int = 1
    starts: dict[AttemptKey, int] = field(default_factory=dict)
    created: set[int] = field(default_factory=set)
    acked: set[int] = field(default_factory=set)
    sent_since_welcome: list[int] = field(default_factory=list)
    now: int = 0
    """Wall clock; the monotonic clock `mono` runs apart from it (a stall moves only `mono`)."""
    mono: int = 0
    running: set[AttemptKey] = field(default_factory=set)
    """Attempts the executor runs: started, neither asked to stop nor finished."""
    lease_file: int | None = None
    state: AgentState = field(default_factory=lambda: AgentState(lease_ms=LEASE_MS))
    events_fed: int = 0
    """Events the agent has handled: it knows the time only as of its last one."""
    exporting: set[AttemptKey] = field(default_factory=set)
    """Checkpoint exports under way (the runtime's tasks: a restart loses them)."""

    def take(self, event: Event) -> None:
        """Like the runtime: a lease check at the current time before every event."""
        self.feed(LeaseCheck("t", self.now, self.mono))
        self.feed(event)

    def feed(self, event: Event) -> None:
        self.events_fed += 1
        follow: list[Event] = []
        for item in self.state.handle(event):
            self.apply(item, follow)
        for event in follow:
            self.feed(event)

    def apply(self, item: Instruction, follow: list[Event]) -> None:
        if isinstance(item, PersistAttempt):
            self.attempts[item.record.key] = item.record
            if item.record.is_final:
                self.running.discard(item.record.key)
        elif isinstance(item, ForgetAttempt):
            self.attempts.pop(item.key, None)
        elif isinstance(item, PersistReport):
            assert item.report.report_id >= self.next_report_id, "report ids must increase"
            self.reports[item.report.report_id] = item.report
            self.next_report_id = item.report.report_id + 1
            self.created.add(item.report.report_id)
        elif isinstance(item, ForgetReport):
            self.reports.pop(item.report_id)
        elif isinstance(item, SendReport):
            self.sent_since_welcome.append(item.report.report_id)
        elif isinstance(item, StartAttempt):
            self.starts[item.record.key] = self.starts.get(item.record.key, 0) + 1
            self.running.add(item.record.key)
            follow.append(AttemptLaunched("l", item.record.job_id, item.record.attempt, "h"))
        elif isinstance(item, StopAttempt):
            self.running.discard(item.key)
        elif isinstance(item, ExportCheckpoint):
            self.exporting.add(item.key)
        elif isinstance(item, PublishLease):
            self.lease_file = item.expiry_mono_ms
        elif isinstance(item, PersistDrain):
            pass

    def restart(self) -> None:
        snap = Snapshot(
            attempts=tuple(self.attempts.values()),
            unacked=tuple(self.reports.values()),
            next_report_id=self.next_report_id,
        )
        self.state = AgentState(snap, lease_ms=LEASE_MS)
        self.exporting = set()
        self.feed(Started("restart", self.now, self.mono, self.lease_file))


ops = st.one_of(
    st.tuples(st.just("dispatch"), st.sampled_from(KEYS), st.integers(1, 50)),
    st.tuples(st.just("cancel"), st.sampled_from(KEYS), st.integers(1, 50)),
    st.tuples(st.just("move"), st.sampled_from(KEYS), st.integers(1, 50)),
    st.tuples(st.just("exported"), st.sampled_from(KEYS), st.sampled_from(["", "ref"])),
    st.tuples(st.just("exec"), st.sampled_from(KEYS), st.sampled_from(list(JobState)[3:])),
    st.tuples(st.just("ack"), st.integers(0, 30), st.none()),
    st.tuples(st.just("reconnect"), st.none(), st.none()),
    st.tuples(st.just("disconnect"), st.none(), st.none()),
    st.tuples(st.just("restart"), st.none(), st.none()),
    st.tuples(st.just("tick"), st.integers(0, 2000), st.none()),
)


MOVED_THEN_RESTARTED = [
    ("dispatch", ("j2", 1), 1),
    ("move", ("j2", 1), 2),
    ("exec", ("j2", 1), JobState.FAILED),
    ("restart", None, None),
    ("exported", ("j2", 1), "ref"),
    ("reconnect", None, None),
]
"""Too rare for the search alone: an export the restart cut short must be run again."""


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=60))
@example(MOVED_THEN_RESTARTED)
def test_no_double_start_and_no_lost_report(steps: list[tuple[str, Any, Any]]) -> None:
    world = World()
    world.feed(Started("s", 0))
    world.feed(LeaseRenewed("r", 0, 0, 0))
    for op, a, b in steps:
        world.now += 10
        world.mono += 10
        if op == "dispatch":
            job, attempt = a
            spec = FAIL_SPEC if job == "j2" else SPEC
            world.feed(
                DispatchReceived("d", int(b), job, attempt, attempt * 10, spec, "t", world.now)
            )
        elif op == "cancel":
            job, attempt = a
            world.feed(CancelReceived("c", int(b), job, attempt, "user", False, world.now))
        elif op == "move":
            job, attempt = a
            world.feed(CancelReceived("c", int(b), job, attempt, "move", True, world.now))
        elif op == "exported" and a in world.exporting:
            world.exporting.discard(a)
            job, attempt = a
            world.feed(CheckpointExported("e", job, attempt, b, 10 if b else 0, world.now))
        elif op == "exec":
            job, attempt = a
            world.feed(ExecutorReported("p", job, attempt, b, 0, "", world.now))
        elif op == "ack" and world.state.connected and world.sent_since_welcome:
            report_id = world.sent_since_welcome[int(a) % len(world.sent_since_welcome)]
            world.feed(BrokerAcked("a", report_id, world.now))
            world.acked.add(report_id)
        elif op == "reconnect":
            world.feed(Disconnected("x", world.now))
            world.feed(Connecting("c"))
            world.sent_since_welcome = []
            world.feed(Connected("w", world.now, 0))
            assert world.sent_since_welcome == sorted(world.state.unacked)
            world.feed(LeaseRenewed("r", world.now, world.mono, world.mono))
        elif op == "disconnect":
            world.feed(Disconnected("x", world.now))
        elif op == "restart":
            world.restart()
        elif op == "tick":
            world.now += int(a)
            world.mono += int(a)
            world.feed(LeaseCheck("t", world.now, world.mono))

        assert all(n <= 1 for n in world.starts.values()), world.starts
        held = {k for k, r in world.state.attempts.items() if r.phase is Phase.EXPORTING}
        assert held <= world.exporting, "an attempt waits for an export nobody runs"
        for report in world.reports.values():
            if report.checkpoint_ref:
                assert world.attempts[(report.job_id, report.attempt)].stop_checkpoint
        unacked = world.created - world.acked
        assert unacked <= set(world.state.unacked), "a report vanished before its ack"
        assert unacked <= set(world.reports), "an unacked report is missing from the journal"


lease_ops = st.one_of(
    st.tuples(st.just("dispatch"), st.sampled_from(KEYS), st.integers(1, 50)),
    st.tuples(st.just("exec"), st.sampled_from(KEYS), st.sampled_from(list(JobState)[3:])),
    st.tuples(st.just("cancel"), st.sampled_from(KEYS), st.booleans()),
    st.tuples(st.just("heartbeat"), st.none(), st.none()),
    # answers arrive late, out of order, twice, or never
    st.tuples(st.just("renewal"), st.integers(0, 1000), st.none()),
    st.tuples(st.just("stall"), st.integers(0, 3 * LEASE_MS), st.none()),
    st.tuples(st.just("wall_jump"), st.integers(-10 * LEASE_MS, 10 * LEASE_MS), st.none()),
    st.tuples(st.just("reconnect"), st.none(), st.none()),
    st.tuples(st.just("restart"), st.none(), st.none()),
    st.tuples(st.just("tick"), st.none(), st.none()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(lease_ops, max_size=60), st.sampled_from([0, 100, 400]))
def test_no_attempt_runs_past_the_lease_of_the_last_answered_heartbeat(
    steps: list[tuple[str, Any, Any]], stop_lead_ms: int
) -> None:
    world = World(state=AgentState(lease_ms=LEASE_MS, stop_lead_ms=stop_lead_ms))
    world.feed(Started("s", 0, 0))
    sent: list[int] = []  # send times of heartbeats (and hellos), by sequence number
    renewed: list[int] = []  # send times of those the broker answered and the agent read
    for op, a, b in steps:
        world.mono += 7
        world.now += 7
        fed_before = world.events_fed
        if op == "dispatch":
            job, attempt = a
            spec_event = DispatchReceived("d", int(b), job, attempt, attempt * 10, SPEC, "t", 0)
            world.take(spec_event)
        elif op == "exec":
            job, attempt = a
            world.take(ExecutorReported("p", job, attempt, b, 0, "", world.now))
        elif op == "cancel":
            job, attempt = a
            world.take(CancelReceived("c", 1, job, attempt, "user", bool(b), world.now))
        elif op == "heartbeat":
            sent.append(world.mono)
        elif op == "renewal" and sent:
            sent_ms = sent[int(a) % len(sent)]
            renewed.append(sent_ms)
            world.take(LeaseRenewed("r", world.now, world.mono, sent_ms))
        elif op == "stall":
            world.mono += int(a)
            world.now += int(a)
        elif op == "wall_jump":
            world.now = max(0, world.now + int(a))
        elif op == "reconnect":
            world.take(Disconnected("x", world.now))
            world.take(Connecting("c"))
            sent.append(world.mono)  # the hello
            world.take(Connected("w", world.now, 0))
        elif op == "restart":
            world.restart()
        elif op == "tick":
            world.feed(LeaseCheck("t", world.now, world.mono))

        # The agent learns the time only from events (a stall, or sending a heartbeat, feeds it
        # none): the bound holds from its next event on; the wrapper's watchdog covers between.
        if world.events_fed > fed_before:
            bound = max(renewed, default=None)
            if bound is None or world.mono >= bound + LEASE_MS:
                requeue = {k for k in world.running if world.attempts[k].requeues_on_site_loss}
                assert not requeue, (world.mono, renewed, world.running)
        assert all(n <= 1 for n in world.starts.values()), world.starts
