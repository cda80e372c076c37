"""Events the agent's core reacts to and instructions it answers with, as frozen data."""

from __future__ import annotations

from dataclasses import dataclass

from computenet.spec import JobSpec
from computenet.types import JobState
from site_agent.records import AttemptKey, AttemptRecord, Report

# Events. Every event names its cause in `stimulus_id`; times come in, the core reads no clock.
# `now_ms` is wall time (Unix ms, for reports and tombstones); `mono_ms` is the agent's monotonic
# clock (boot time ms), the only clock the lease is measured on.


@dataclass(frozen=True, slots=True)
class Started:
    """The agent process started with the state restored from its journal."""

    stimulus_id: str
    now_ms: int
    mono_ms: int = 0
    lease_expiry_mono_ms: int | None = None
    """The lease an earlier process of this boot left behind; None if none is known."""


@dataclass(frozen=True, slots=True)
class Connecting:
    """A stream to the broker was opened; the hello goes first."""

    stimulus_id: str


@dataclass(frozen=True, slots=True)
class Connected:
    """The broker welcomed the agent."""

    stimulus_id: str
    now_ms: int
    lease_ms: int
    """The broker's lease; 0 keeps the configured one."""
    leader_epoch: int = 0
    """The welcoming leader's election epoch; 0 from a single broker without elections."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The stream to the broker ended or failed."""

    stimulus_id: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class DispatchReceived:
    """The broker asks the agent to run an attempt."""

    stimulus_id: str
    delivery_id: int
    job_id: str
    attempt: int
    fencing_token: int
    spec: JobSpec | None
    """None when the spec on the wire was invalid; `invalid_reason` says why."""
    tenant: str = ""
    now_ms: int = 0
    invalid_reason: str = ""
    restore_ref: str = ""
    """The checkpoint to restore before starting ("" to start fresh)."""


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """The broker asks the agent to stop an attempt."""

    stimulus_id: str
    delivery_id: int
    job_id: str
    attempt: int
    reason: str = ""
    checkpoint: bool = False
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class DrainReceived:
    """The broker drains the site (or resumes it)."""

    stimulus_id: str
    delivery_id: int
    drain: bool


@dataclass(frozen=True, slots=True)
class BrokerAcked:
    """The broker acknowledged a job event report."""

    stimulus_id: str
    report_id: int
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class AttemptLaunched:
    """The executor accepted an attempt and returned its handle."""

    stimulus_id: str
    job_id: str
    attempt: int
    handle: str


@dataclass(frozen=True, slots=True)
class LaunchFailed:
    """The executor could not start an attempt."""

    stimulus_id: str
    job_id: str
    attempt: int
    message: str
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class ExecutorReported:
    """The executor saw an attempt change state."""

    stimulus_id: str
    job_id: str
    attempt: int
    state: JobState
    exit_code: int = 0
    message: str = ""
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class CheckpointExported:
    """The checkpoint of an attempt stopped with one was exported (or could not be)."""

    stimulus_id: str
    job_id: str
    attempt: int
    ref: str = ""
    """Where it went in the site's checkpoint store; "" if nothing usable was exported."""
    size_bytes: int = 0
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class LeaseRenewed:
    """The broker answered a heartbeat (or the hello) the agent sent at `sent_mono_ms`."""

    stimulus_id: str
    now_ms: int
    mono_ms: int
    sent_mono_ms: int
    lease_ms: int = 0
    """The renewal's lease length; 0 keeps the current one."""


@dataclass(frozen=True, slots=True)
class LeaseCheck:
    """Checked before every other event and on a tick: stop what the lease no longer covers,
    prune old tombstones."""

    stimulus_id: str
    now_ms: int
    mono_ms: int


@dataclass(frozen=True, slots=True)
class ShuttingDown:
    """The agent is stopping; `stop_attempts` asks it to stop its running attempts too."""

    stimulus_id: str
    stop_attempts: bool = False


Event = (
    Started
    | Connecting
    | Connected
    | Disconnected
    | DispatchReceived
    | CancelReceived
    | DrainReceived
    | BrokerAcked
    | AttemptLaunched
    | LaunchFailed
    | ExecutorReported
    | CheckpointExported
    | LeaseRenewed
    | LeaseCheck
    | ShuttingDown
)

# Instructions, carried out in order by the runtime. Persist* come before the sends they guard.


@dataclass(frozen=True, slots=True)
class PersistAttempt:
    """Write (insert or replace) an attempt record to the journal."""

    record: AttemptRecord


@dataclass(frozen=True, slots=True)
class ForgetAttempt:
    """Remove a finished, acknowledged attempt from the journal."""

    key: AttemptKey


@dataclass(frozen=True, slots=True)
class PersistReport:
    """Keep a report in the journal until the broker acknowledges it."""

    report: Report


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """The broker acknowledged a report; drop it from the journal."""

    report_id: int


@dataclass(frozen=True, slots=True)
class PersistDrain:
    """Write the drain flag to the journal."""

    drained: bool


@dataclass(frozen=True, slots=True)
class PersistLeaderEpoch:
    """Write the highest leader epoch the agent has been welcomed with."""

    leader_epoch: int


@dataclass(frozen=True, slots=True)
class RefuseWelcome:
    """End the stream without acting on it: its broker leads under an epoch older than one the
    agent has already been welcomed with (a deposed leader that does not know it yet)."""

    leader_epoch: int
    highest_leader_epoch: int


@dataclass(frozen=True, slots=True)
class PublishLease:
    """Tell the executor the lease expiry (monotonic ms), so its watchdogs stop attempts at
    expiry even while the agent itself is stalled."""

    expiry_mono_ms: int
    stop_lead_ms: int
    """How long before expiry stopping begins (SIGTERM, a chance to checkpoint)."""


@dataclass(frozen=True, slots=True)
class SendHello:
    """Send the hello listing the attempts that are not acknowledged-final."""

    attempts: tuple[tuple[str, int, JobState], ...]


@dataclass(frozen=True, slots=True)
class SendAck:
    """Acknowledge a broker delivery (dispatch, cancel or drain)."""

    delivery_id: int


@dataclass(frozen=True, slots=True)
class SendReport:
    """Send a job event report to the broker."""

    report: Report


@dataclass(frozen=True, slots=True)
class StartAttempt:
    """Hand an attempt to the executor."""

    record: AttemptRecord


@dataclass(frozen=True, slots=True)
class StopAttempt:
    """Ask the executor to stop an attempt."""

    key: AttemptKey
    reason: str
    checkpoint: bool = False
    """Give the job the chance to checkpoint before it stops (where the executor can)."""


@dataclass(frozen=True, slots=True)
class ExportCheckpoint:
    """Export the job's checkpoint folder for an attempt stopped with a checkpoint; answered by
    a CheckpointExported event (the transfer runs beside the core, it may take a while)."""

    key: AttemptKey


@dataclass(frozen=True, slots=True)
class RecoverAttempts:
    """Give the executor the launched attempts it must watch again after a restart."""

    records: tuple[AttemptRecord, ...]


Instruction = (
    PersistAttempt
    | ForgetAttempt
    | PersistReport
    | ForgetReport
    | PersistDrain
    | PersistLeaderEpoch
    | RefuseWelcome
    | PublishLease
    | SendHello
    | SendAck
    | SendReport
    | StartAttempt
    | StopAttempt
    | ExportCheckpoint
    | RecoverAttempts
)
PERSIST_INSTRUCTIONS = (
    PersistAttempt,
    ForgetAttempt,
    PersistReport,
    ForgetReport,
    PersistDrain,
    PersistLeaderEpoch,
)
