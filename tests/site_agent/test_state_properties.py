"""Property tests: no interleaving of duplicates, acks, reconnects and restarts runs an attempt
twice or loses a report the broker has not acknowledged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from computenet.types import JobState
from site_agent.events import (
    AttemptLaunched,
    BrokerAcked,
    CancelReceived,
    Connected,
    Connecting,
    Disconnected,
    DispatchReceived,
    Event,
    ExecutorReported,
    ForgetAttempt,
    ForgetReport,
    Instruction,
    LeaseCheck,
    PersistAttempt,
    PersistDrain,
    PersistReport,
    SendReport,
    StartAttempt,
    Started,
)
from site_agent.records import AttemptKey, AttemptRecord, Report, Snapshot
from site_agent.state import AgentState
from tests.site_agent.helpers import make_spec

SPEC = make_spec("true")
KEYS = [("j1", 1), ("j1", 2), ("j2", 1)]


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
    state: AgentState = field(default_factory=lambda: AgentState(lease_ms=1000))

    def feed(self, event: Event) -> None:
        follow: list[Event] = []
        for item in self.state.handle(event):
            self.apply(item, follow)
        for event in follow:
            self.feed(event)

    def apply(self, item: Instruction, follow: list[Event]) -> None:
        if isinstance(item, PersistAttempt):
            self.attempts[item.record.key] = item.record
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
            follow.append(AttemptLaunched("l", item.record.job_id, item.record.attempt, "h"))
        elif isinstance(item, PersistDrain):
            pass

    def restart(self) -> None:
        snap = Snapshot(
            attempts=tuple(self.attempts.values()),
            unacked=tuple(self.reports.values()),
            next_report_id=self.next_report_id,
        )
        self.state = AgentState(snap, lease_ms=1000)
        self.feed(Started("restart", self.now))


ops = st.one_of(
    st.tuples(st.just("dispatch"), st.sampled_from(KEYS), st.integers(1, 50)),
    st.tuples(st.just("cancel"), st.sampled_from(KEYS), st.integers(1, 50)),
    st.tuples(st.just("exec"), st.sampled_from(KEYS), st.sampled_from(list(JobState)[3:])),
    st.tuples(st.just("ack"), st.integers(0, 30), st.none()),
    st.tuples(st.just("reconnect"), st.none(), st.none()),
    st.tuples(st.just("disconnect"), st.none(), st.none()),
    st.tuples(st.just("restart"), st.none(), st.none()),
    st.tuples(st.just("tick"), st.integers(0, 2000), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=60))
def test_no_double_start_and_no_lost_report(steps: list[tuple[str, Any, Any]]) -> None:
    world = World()
    world.feed(Started("s", 0))
    for op, a, b in steps:
        world.now += 10
        if op == "dispatch":
            job, attempt = a
            world.feed(
                DispatchReceived("d", int(b), job, attempt, attempt * 10, SPEC, "t", world.now)
            )
        elif op == "cancel":
            job, attempt = a
            world.feed(CancelReceived("c", int(b), job, attempt, "user", False, world.now))
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
        elif op == "disconnect":
            world.feed(Disconnected("x", world.now))
        elif op == "restart":
            world.restart()
        elif op == "tick":
            world.now += int(a)
            world.feed(LeaseCheck("t", world.now))

        assert all(n <= 1 for n in world.starts.values()), world.starts
        unacked = world.created - world.acked
        assert unacked <= set(world.state.unacked), "a report vanished before its ack"
        assert unacked <= set(world.reports), "an unacked report is missing from the journal"
