"""The messages of the agent-broker Connect stream as domain objects, shared by both ends.

An agent sends a `Hello` first, then heartbeats (with capacity when its probe worked), job event
reports and acknowledgements of deliveries; the broker answers with a `Welcome`, a
`LeaseRenewal` for every heartbeat, dispatches, cancels, drains and acknowledgements of reports.
Deliveries and reports carry ids so that nothing is applied twice across reconnects.
"""

from __future__ import annotations

from dataclasses import dataclass

from computenet.spec import JobSpec
from computenet.types import CapacityReport, JobId, JobState, SiteId, TenantId

__all__ = [
    "Ack",
    "AgentMessage",
    "AttemptStatus",
    "BrokerMessage",
    "CancelAttempt",
    "CapacityReport",
    "Dispatch",
    "Drain",
    "Heartbeat",
    "Hello",
    "JobEventReport",
    "LeaseRenewal",
    "UnreadableDispatch",
    "Welcome",
]


@dataclass(frozen=True, slots=True)
class AttemptStatus:
    """An attempt the agent holds, as it announces it in its hello."""

    job_id: JobId
    attempt: int
    state: JobState | None
    """None when the wire carried no state, or one this build does not know."""


@dataclass(frozen=True, slots=True)
class Hello:
    """The agent's first message: who it claims to be and the attempts it holds."""

    site_id: SiteId
    agent_version: str = ""
    epoch: str = ""
    """Changes at every agent process start."""
    executor: str = ""
    attempts: tuple[AttemptStatus, ...] = ()
    heartbeat_sequence: int = 0
    """The welcome renews the lease from this hello's send time; 0: no lease from the welcome."""
    checkpoints: bool = False
    """True if the agent can send and receive checkpoints of moved jobs (a store or commands)."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent every interval whether or not the capacity probe worked; answered by a renewal."""

    sequence: int
    capacity: CapacityReport | None = None
    """None when the probe failed; `capacity_error` says why."""
    capacity_error: str = ""


@dataclass(frozen=True, slots=True)
class LeaseRenewal:
    """The broker heard heartbeat `heartbeat_sequence`: the lease runs from its send time."""

    heartbeat_sequence: int
    lease_s: float


@dataclass(frozen=True, slots=True)
class JobEventReport:
    """An attempt changed state at the site; the broker acknowledges `report_id`."""

    report_id: int
    job_id: JobId
    attempt: int
    fencing_token: int
    state: JobState | None
    """None when the wire carried no state, or one this build does not know."""
    exit_code: int = 0
    message: str = ""
    time_unix_ms: int = 0
    launch_failed: bool = False
    """A failed attempt that never started, as opposed to a job that ran and failed."""
    checkpoint_ref: str = ""
    """Where this stopped attempt's checkpoint was exported ("" if none)."""
    checkpoint_bytes: int = 0
    """Size of that checkpoint."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledges a delivery (agent to broker) or a job event report (broker to agent)."""

    id: int


@dataclass(frozen=True, slots=True)
class Welcome:
    """The broker's answer to a hello: its epoch, the heartbeat interval and the agent lease."""

    broker_epoch: str
    heartbeat_interval_s: float
    lease_s: float
    heartbeat_sequence: int = 0
    """The hello's sequence number: the welcome renews the lease from the hello's send time."""
    leader_epoch: int = 0
    """The answering broker's leadership epoch (0: a single broker without elections)."""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Run this attempt of a job under this fencing token."""

    delivery_id: int
    job_id: JobId
    attempt: int
    fencing_token: int
    spec: JobSpec
    tenant: TenantId
    pool: str = ""
    """The accelerator pool (model) the broker's ledger holds the cards in ("" if none)."""
    restore_ref: str = ""
    """The checkpoint to restore from before starting ("" to start fresh)."""


@dataclass(frozen=True, slots=True)
class UnreadableDispatch:
    """A dispatch whose spec the receiver cannot read; it reports the attempt failed."""

    delivery_id: int
    job_id: JobId
    attempt: int
    fencing_token: int
    tenant: TenantId
    reason: str


@dataclass(frozen=True, slots=True)
class CancelAttempt:
    """Stop this attempt, checkpointing first if asked."""

    delivery_id: int
    job_id: JobId
    attempt: int
    reason: str = ""
    checkpoint: bool = False


@dataclass(frozen=True, slots=True)
class Drain:
    """Stop (or resume) taking new work at the site."""

    delivery_id: int
    drain: bool


AgentMessage = Hello | Heartbeat | CapacityReport | JobEventReport | Ack
"""What an agent sends on the stream."""

BrokerMessage = Welcome | LeaseRenewal | Dispatch | CancelAttempt | Drain | Ack
"""What a broker sends on the stream (a receiver may also decode an `UnreadableDispatch`)."""
