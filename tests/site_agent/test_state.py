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
    LeaseRenewed,
    PersistAttempt,
    PersistDrain,
    PersistReport,
    PublishLease,
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
from site_agent.state import LEASE_EXPIRED, LEASE_EXPIRED_BEFORE_START, AgentState
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
    state.handle(LeaseRenewed("r", 0, 0, 0))  # the welcome renews from the hello's send time
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
    state.handle(LeaseRenewed("r", 0, 0, 0))
    state.handle(dispatch())
    state.handle(AttemptLaunched("l", "j1", 1, "1"))
    state.handle(replace(dispatch(delivery=2), job_id="j2", spec=FAIL_SPEC))
    state.handle(AttemptLaunched("l", "j2", 1, "2"))
    # the heartbeat sent at 10 s is answered at 12 s: the lease runs from the send time
    assert state.handle(LeaseRenewed("r", 12_000, 12_000, 10_000)) == [PublishLease(70_000, 0)]
    state.handle(Disconnected("x", 13_000))
    assert state.handle(LeaseCheck("t", 69_999, 69_999)) == []
    out = state.handle(LeaseCheck("t", 70_000, 70_000))
    assert out == [
        PersistAttempt(record(phase=Phase.LAUNCHED, handle="1", stop_reason=LEASE_EXPIRED)),
        StopAttempt(("j1", 1), LEASE_EXPIRED, checkpoint=True),
    ]
    assert state.handle(LeaseCheck("t", 80_000, 80_000)) == []
    done = state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "", 81_000))
    assert done[1] == PersistReport(
        Report(1, "j1", 1, 10, JobState.CANCELLED, 143, LEASE_EXPIRED, 81_000)
    )


def test_lease_expires_while_the_stream_stays_up() -> None:
    state = running_state()
    assert state.connected
    out = state.handle(LeaseCheck("t", 5_000, 60_000))
    assert StopAttempt(("j1", 1), LEASE_EXPIRED, checkpoint=True) in out


def test_lease_runs_on_the_monotonic_clock_not_the_wall_clock() -> None:
    state = running_state()
    # the wall clock jumps an hour ahead: nothing expires
    assert state.handle(LeaseCheck("t", 3_600_000, 59_999)) == []


def test_a_late_renewal_does_not_resurrect_stopped_attempts() -> None:
    state = running_state()
    stall = state.handle(LeaseCheck("t", 90_000, 90_000))  # woke from a stall past the lease
    assert any(isinstance(i, StopAttempt) for i in stall)
    # renewal of a heartbeat sent before the stall: its lease is over, nothing is held
    assert state.handle(LeaseRenewed("r", 90_000, 90_001, 20_000)) == []
    assert not state.lease_held
    refused = state.handle(replace(dispatch(delivery=5, attempt=2, token=20), now_ms=90_002))
    assert refused[0] == PersistAttempt(
        record(
            attempt=2,
            token=20,
            phase=Phase.FINAL,
            reported=JobState.CANCELLED,
            finished_unix_ms=90_002,
        )
    )
    assert refused[2] == SendAck(5)
    assert refused[-1].report.message == LEASE_EXPIRED_BEFORE_START  # type: ignore[union-attr]
    assert not any(isinstance(i, StartAttempt) for i in refused)
    # a fresh heartbeat answered: the lease holds again, the stopped attempt stays stopped
    assert state.handle(LeaseRenewed("r", 91_000, 91_000, 90_500)) == [PublishLease(150_500, 0)]
    assert state.lease_held
    assert state.attempts[("j1", 1)].stop_reason == LEASE_EXPIRED
    started = state.handle(replace(dispatch(delivery=6, attempt=3, token=30), now_ms=91_001))
    assert started[-1] == StartAttempt(record(attempt=3, token=30))


def test_a_renewal_checks_the_lease_before_extending_it() -> None:
    state = running_state()
    out = state.handle(LeaseRenewed("r", 70_000, 70_000, 69_000))
    assert out == [
        PersistAttempt(
            record(
                phase=Phase.LAUNCHED,
                handle="123",
                reported=JobState.RUNNING,
                stop_reason=LEASE_EXPIRED,
            )
        ),
        StopAttempt(("j1", 1), LEASE_EXPIRED, checkpoint=True),
        PublishLease(129_000, 0),
    ]


def test_stopping_begins_the_stop_lead_before_expiry_capped_at_a_quarter_lease() -> None:
    state = AgentState(lease_ms=60_000, stop_lead_ms=10_000)
    state.handle(Connected("w", 0, 0))
    assert state.handle(LeaseRenewed("r", 0, 0, 0)) == [PublishLease(60_000, 10_000)]
    state.handle(dispatch())
    state.handle(AttemptLaunched("l", "j1", 1, "1"))
    assert state.handle(LeaseCheck("t", 0, 49_999)) == []
    assert state.handle(LeaseCheck("t", 0, 50_000))[-1] == StopAttempt(
        ("j1", 1), LEASE_EXPIRED, checkpoint=True
    )
    short = AgentState(lease_ms=60_000, stop_lead_ms=10_000)
    short.handle(Connected("w", 0, 8_000))
    assert short.handle(LeaseRenewed("r", 0, 0, 0)) == [PublishLease(8_000, 2_000)]


def test_restart_with_an_expired_lease_stops_and_starts_nothing() -> None:
    launched = record(phase=Phase.LAUNCHED, handle="1")
    accepted = record(attempt=3, token=30)
    state = AgentState(Snapshot(attempts=(launched, accepted)), lease_ms=60_000)
    out = state.handle(Started("s", 100_000, 100_000, lease_expiry_mono_ms=90_000))
    assert RecoverAttempts((launched,)) in out
    assert StopAttempt(("j1", 1), LEASE_EXPIRED, checkpoint=True) in out
    assert not any(isinstance(i, StartAttempt) for i in out)
    assert state.attempts[("j1", 3)].reported is JobState.CANCELLED


def test_restart_without_a_known_lease_gives_recovered_attempts_one_lease() -> None:
    launched = record(phase=Phase.LAUNCHED, handle="1")
    state = AgentState(Snapshot(attempts=(launched,)), lease_ms=60_000)
    out = state.handle(Started("s", 0, 5_000))
    assert out[0] == PublishLease(65_000, 0)
    assert state.handle(LeaseCheck("t", 0, 64_999)) == []
    assert state.handle(LeaseCheck("t", 0, 65_000))[-1].reason == LEASE_EXPIRED  # type: ignore[union-attr]


def test_cancel_asking_for_a_checkpoint_passes_it_on() -> None:
    state = running_state()
    out = state.handle(CancelReceived("c", 9, "j1", 1, "migrating", True, 3000))
    assert out[-1] == StopAttempt(("j1", 1), "migrating", checkpoint=True)


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
        PublishLease(40_000, 0),
        RecoverAttempts((launched, stopping)),
        StopAttempt(("j2", 1), "user"),
        StartAttempt(accepted),
    ]
    assert state.next_report_id == 7


def test_acked_final_attempts_are_forgotten_after_retention() -> None:
    state = AgentState(tombstone_ms=1000)
    state.handle(Connected("w", 0, 0))
    state.handle(LeaseRenewed("r", 0, 0, 0))
    state.handle(dispatch())
    state.handle(AttemptLaunched("l", "j1", 1, "1"))
    state.handle(ExecutorReported("p", "j1", 1, JobState.SUCCEEDED, 0, "", 5000))
    state.handle(BrokerAcked("a", 1))
    assert state.handle(LeaseCheck("t", 5999, 0)) == []
    assert state.handle(LeaseCheck("t", 6000, 0)) == [ForgetAttempt(("j1", 1))]


def test_shutdown_can_stop_running_attempts() -> None:
    state = running_state()
    assert state.handle(ShuttingDown("q", stop_attempts=False)) == []
    out = state.handle(ShuttingDown("q", stop_attempts=True))
    assert out[-1] == StopAttempt(("j1", 1), "agent shutdown")
