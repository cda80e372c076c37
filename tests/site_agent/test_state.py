"""Table tests of the agent's pure state machine: plain equality on events and instructions."""

from __future__ import annotations

from dataclasses import replace

from computenet.types import JobState
from site_agent.events import (
    AttemptLaunched,
    BrokerAcked,
    CancelReceived,
    Connected,
    Connecting,
    Disconnected,
    DispatchReceived,
    DrainReceived,
    ExecutorReported,
    ForgetAttempt,
    ForgetReport,
    LaunchFailed,
    LeaseCheck,
    PersistAttempt,
    PersistDrain,
    PersistReport,
    RecoverAttempts,
    SendAck,
    SendHello,
    SendReport,
    ShuttingDown,
    StartAttempt,
    Started,
    StopAttempt,
)
from site_agent.records import AttemptRecord, Phase, Report, Snapshot
from site_agent.state import LEASE_EXPIRED, AgentState
from tests.site_agent.helpers import make_spec

SPEC = make_spec("true")
FAIL_SPEC = make_spec("true", on_site_loss="fail")


def dispatch(delivery: int = 1, attempt: int = 1, token: int = 10, spec=SPEC) -> DispatchReceived:
    return DispatchReceived(f"d{delivery}", delivery, "j1", attempt, token, spec, "t1", 1000)


def record(attempt: int = 1, token: int = 10, **changes: object) -> AttemptRecord:
    base = AttemptRecord("j1", attempt, token, "t1", SPEC)
    return replace(base, **changes)  # type: ignore[arg-type]


def connected_state() -> AgentState:
    state = AgentState(lease_ms=60_000)
    state.handle(Started("s", 0))
    state.handle(Connecting("c"))
    state.handle(Connected("w", 0, 0))
    return state


def running_state() -> AgentState:
    state = connected_state()
    state.handle(dispatch())
    state.handle(AttemptLaunched("l", "j1", 1, "123"))
    state.handle(ExecutorReported("p", "j1", 1, JobState.RUNNING, now_ms=2000))
    state.handle(BrokerAcked("a", 1))
    return state


def test_dispatch_is_persisted_then_acked_then_started() -> None:
    state = connected_state()
    assert state.handle(dispatch()) == [
        PersistAttempt(record()),
        SendAck(1),
        StartAttempt(record()),
    ]


def test_duplicate_dispatch_is_acked_not_started() -> None:
    state = connected_state()
    state.handle(dispatch())
    assert state.handle(dispatch(delivery=7)) == [SendAck(7)]


def test_dispatch_with_lower_fencing_token_is_ignored_but_acked() -> None:
    state = connected_state()
    state.handle(dispatch(attempt=2, token=20))
    assert state.handle(dispatch(delivery=3, attempt=1, token=10)) == [SendAck(3)]


def test_higher_token_supersedes_running_attempt() -> None:
    state = running_state()
    new = record(attempt=2, token=20)
    old = record(phase=Phase.LAUNCHED, handle="123", reported=JobState.RUNNING)
    reason = "superseded by attempt 2"
    assert state.handle(dispatch(delivery=5, attempt=2, token=20)) == [
        PersistAttempt(new),
        PersistAttempt(replace(old, stop_reason=reason)),
        SendAck(5),
        StopAttempt(("j1", 1), reason),
        StartAttempt(new),
    ]


def test_invalid_spec_is_acked_and_reported_failed() -> None:
    state = connected_state()
    bad = replace(dispatch(), spec=None, invalid_reason="command: required")
    final = record(spec=None, phase=Phase.FINAL, reported=JobState.FAILED, finished_unix_ms=1000)
    report = Report(
        1, "j1", 1, 10, JobState.FAILED, -1, "invalid spec: command: required", 1000, True
    )
    assert state.handle(bad) == [
        PersistAttempt(final),
        PersistReport(report),
        SendAck(1),
        SendReport(report),
    ]


def test_launch_records_handle_and_running_is_reported_once() -> None:
    state = connected_state()
    state.handle(dispatch())
    launched = record(phase=Phase.LAUNCHED, handle="123")
    assert state.handle(AttemptLaunched("l", "j1", 1, "123")) == [PersistAttempt(launched)]
    running = replace(launched, reported=JobState.RUNNING)
    report = Report(1, "j1", 1, 10, JobState.RUNNING, 0, "pid 123", 2000)
    event = ExecutorReported("p", "j1", 1, JobState.RUNNING, 0, "pid 123", 2000)
    assert state.handle(event) == [
        PersistAttempt(running),
        PersistReport(report),
        SendReport(report),
    ]
    assert state.handle(replace(event, stimulus_id="p2")) == []


def test_final_state_is_reported_and_kept_until_acked() -> None:
    state = running_state()
    event = ExecutorReported("p", "j1", 1, JobState.FAILED, 3, "exit code 3", 5000)
    final = record(phase=Phase.FINAL, handle="123", reported=JobState.FAILED, finished_unix_ms=5000)
    report = Report(2, "j1", 1, 10, JobState.FAILED, 3, "exit code 3", 5000)
    assert state.handle(event) == [PersistAttempt(final), PersistReport(report), SendReport(report)]
    assert list(state.unacked) == [2]
    assert state.handle(BrokerAcked("a", 2)) == [
        ForgetReport(2),
        PersistAttempt(replace(final, final_acked=True)),
    ]
    assert state.unacked == {}


def test_launch_failure_reports_failed_and_says_it_never_started() -> None:
    state = connected_state()
    state.handle(dispatch())
    [persist, persist_report, send] = state.handle(LaunchFailed("l", "j1", 1, "sbatch: no", 9))
    assert isinstance(persist, PersistAttempt) and persist.record.reported is JobState.FAILED
    assert persist_report == PersistReport(
        Report(1, "j1", 1, 10, JobState.FAILED, -1, "sbatch: no", 9, launch_failed=True)
    )
    assert send == SendReport(persist_report.report)


def test_cancel_stops_then_reports_cancelled() -> None:
    state = running_state()
    stopping = record(
        phase=Phase.LAUNCHED, handle="123", reported=JobState.RUNNING, stop_reason="user"
    )
    cancel = CancelReceived("c", 9, "j1", 1, "user", False, 3000)
    assert state.handle(cancel) == [
        PersistAttempt(stopping),
        SendAck(9),
        StopAttempt(("j1", 1), "user"),
    ]
    assert state.handle(replace(cancel, delivery_id=10)) == [SendAck(10)]
    out = state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "exit code 143", 4000))
    report = Report(2, "j1", 1, 10, JobState.CANCELLED, 143, "user", 4000)
    assert out[1:] == [PersistReport(report), SendReport(report)]


def test_cancel_of_unknown_attempt_acks_and_reports_cancelled() -> None:
    state = connected_state()
    tomb = AttemptRecord(
        "j9", 2, 0, phase=Phase.FINAL, reported=JobState.CANCELLED, finished_unix_ms=3000
    )
    report = Report(1, "j9", 2, 0, JobState.CANCELLED, 0, "unknown attempt: user", 3000)
    assert state.handle(CancelReceived("c", 4, "j9", 2, "user", False, 3000)) == [
        PersistAttempt(tomb),
        PersistReport(report),
        SendAck(4),
        SendReport(report),
    ]
    assert state.handle(CancelReceived("c2", 5, "j9", 2, "user", False, 3001)) == [SendAck(5)]


def test_drain_is_persisted_and_acked() -> None:
    state = connected_state()
    assert state.handle(DrainReceived("d", 3, True)) == [PersistDrain(True), SendAck(3)]
    assert state.drained
    assert state.handle(DrainReceived("d", 4, True)) == [SendAck(4)]
    assert state.handle(DrainReceived("d", 5, False)) == [PersistDrain(False), SendAck(5)]


def test_reports_wait_while_disconnected_and_resend_in_order_after_welcome() -> None:
    state = running_state()
    state.handle(Disconnected("x", 3000))
    first = state.handle(ExecutorReported("p", "j1", 1, JobState.SUCCEEDED, 0, "ok", 3500))
    assert not any(isinstance(i, SendReport) for i in first)
    hello = state.handle(Connecting("c"))
    assert hello == [SendHello((("j1", 1, JobState.SUCCEEDED),))]
    assert state.handle(Connected("w", 4000, 0)) == [SendReport(state.unacked[2])]


def test_hello_lists_attempts_not_acknowledged_final() -> None:
    state = running_state()
    state.handle(ExecutorReported("p", "j1", 1, JobState.SUCCEEDED, 0, "", 3000))
    state.handle(BrokerAcked("a", 2))
    state.handle(
        dispatch(delivery=2, attempt=1, token=10) if False else replace(dispatch(), job_id="j2")
    )
    assert state.handle(Connecting("c")) == [SendHello((("j2", 1, JobState.DISPATCHED),))]


def test_lease_expiry_stops_requeue_attempts_only() -> None:
    state = AgentState(lease_ms=60_000)
    state.handle(Started("s", 0))
    state.handle(Connecting("c"))
    state.handle(Connected("w", 0, 0))
    state.handle(dispatch())
    state.handle(AttemptLaunched("l", "j1", 1, "1"))
    state.handle(replace(dispatch(delivery=2), job_id="j2", spec=FAIL_SPEC))
    state.handle(AttemptLaunched("l", "j2", 1, "2"))
    state.handle(Disconnected("x", 10_000))
    assert state.handle(LeaseCheck("t", 69_999)) == []
    out = state.handle(LeaseCheck("t", 70_000))
    assert out == [
        PersistAttempt(record(phase=Phase.LAUNCHED, handle="1", stop_reason=LEASE_EXPIRED)),
        StopAttempt(("j1", 1), LEASE_EXPIRED),
    ]
    assert state.handle(LeaseCheck("t", 80_000)) == []
    done = state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "", 81_000))
    assert done[1] == PersistReport(
        Report(1, "j1", 1, 10, JobState.CANCELLED, 143, LEASE_EXPIRED, 81_000)
    )


def test_welcome_lease_replaces_configured_lease() -> None:
    state = AgentState(lease_ms=60_000)
    state.handle(Connected("w", 0, 5_000))
    assert state.lease_ms == 5_000


def test_restart_recovers_launched_and_starts_accepted() -> None:
    launched = record(phase=Phase.LAUNCHED, handle="1")
    stopping = replace(launched, job_id="j2", stop_reason="user")
    accepted = record(attempt=3, token=30)
    state = AgentState(Snapshot(attempts=(launched, stopping, accepted), next_report_id=7))
    assert state.handle(Started("s", 0)) == [
        RecoverAttempts((launched, stopping)),
        StopAttempt(("j2", 1), "user"),
        StartAttempt(accepted),
    ]
    assert state.next_report_id == 7


def test_acked_final_attempts_are_forgotten_after_retention() -> None:
    state = AgentState(tombstone_ms=1000)
    state.handle(Connected("w", 0, 0))
    state.handle(dispatch())
    state.handle(AttemptLaunched("l", "j1", 1, "1"))
    state.handle(ExecutorReported("p", "j1", 1, JobState.SUCCEEDED, 0, "", 5000))
    state.handle(BrokerAcked("a", 1))
    assert state.handle(LeaseCheck("t", 5999)) == []
    assert state.handle(LeaseCheck("t", 6000)) == [ForgetAttempt(("j1", 1))]


def test_shutdown_can_stop_running_attempts() -> None:
    state = running_state()
    assert state.handle(ShuttingDown("q", stop_attempts=False)) == []
    out = state.handle(ShuttingDown("q", stop_attempts=True))
    assert out[-1] == StopAttempt(("j1", 1), "agent shutdown")
