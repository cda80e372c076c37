"""Domain vocabulary shared by the SDK, the broker and the agent: ids, enums and job records."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

from computenet.spec import JobSpec

JobId = NewType("JobId", str)
SiteId = NewType("SiteId", str)
TenantId = NewType("TenantId", str)


class JobKind(StrEnum):
    """Kind of work; placement weighs it only through its cost terms."""

    TRAINING = "training"
    INFERENCE = "inference"
    BATCH = "batch"


class JobState(StrEnum):
    """Lifecycle state of a job (ARCHITECTURE section 4)."""

    PENDING = "pending"
    PLACED = "placed"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    MIGRATING = "migrating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for succeeded, failed and cancelled: nothing follows them."""
        return self in FINAL_STATES

    @property
    def holds_capacity(self) -> bool:
        """True while the job occupies capacity at its site."""
        return self in ACTIVE_STATES


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES = frozenset(
    {JobState.PLACED, JobState.DISPATCHED, JobState.RUNNING, JobState.MIGRATING}
)


class SiteStatus(StrEnum):
    """Liveness and scheduling status of a member site."""

    OFFLINE = "offline"
    ACTIVE = "active"
    SUSPECT = "suspect"
    LOST = "lost"
    DRAINING = "draining"


class SiteLossPolicy(StrEnum):
    """What happens to a job whose site is lost."""

    REQUEUE = "requeue"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class StartFailure:
    """An attempt of a job that never got going: it failed to launch, or its site was lost first."""

    attempt: int
    site: SiteId
    reason: str
    launch_failed: bool = True
    """True: the site could not start it (the site is avoided from then on); False: the site
    was lost before the attempt was seen running."""


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the broker records it."""

    job_id: JobId
    tenant: TenantId
    spec: JobSpec
    state: JobState
    site: SiteId | None = None
    attempt: int = 0
    reason: str = ""
    exit_code: int | None = None
    last_sequence: int = 0
    created_unix_ms: int = 0
    updated_unix_ms: int = 0
    request_id: str = ""
    cancel_requested: bool = False
    """A cancel was asked for while the job held capacity; it ends when its site confirms."""
    migration_target: SiteId | None = None
    """While migrating: the site the job moves to once its current attempt has stopped."""
    pool: str = ""
    """The accelerator pool (model) placement chose for the current attempt ("" if none)."""
    start_failures: tuple[StartFailure, ...] = ()
    """Attempts that failed to start, oldest first: what the retry caps count."""
    not_before_unix_ms: int = 0
    """A pending job is not placed before this time (backoff after a failed start; 0: now)."""
    migration_checkpoint: bool = False
    """While migrating: the move stops the job's attempt with a checkpoint (the job declares
    checkpointing and its attempt was running when the move began)."""
    restore_ref: str = ""
    """The last checkpoint an attempt of this job exported (a site's `checkpoint_ref`): its
    next attempt restores from it ("" to start fresh). Cleared when the job ends."""

    @property
    def failed_sites(self) -> frozenset[SiteId]:
        """Sites that could not launch an attempt of this job: placement avoids them."""
        return frozenset(f.site for f in self.start_failures if f.launch_failed)

    @property
    def kind(self) -> JobKind:
        """The job's kind, from its spec."""
        return JobKind(self.spec.kind)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One recorded state transition of a job."""

    sequence: int
    job_id: JobId
    state: JobState
    cause: str
    time_unix_ms: int
    site: SiteId | None = None
    attempt: int = 0
    message: str = ""
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class PoolCapacity:
    """Capacity of one accelerator model at a site."""

    model: str
    total: int
    allocatable: int
    in_use: int = 0
    """Cards busy at the site, whoever runs on them (as the site reports)."""
    federation_in_use: int = 0
    """Of `in_use`, the cards the site's agent runs federation attempts on."""
    held: int = 0
    """Cards the broker's ledger holds in this pool (broker views only; 0 in site reports)."""
    nodes: int = 0
    """Node shape: nodes the pool's cards sit on (0: unknown, the pool is one bin)."""
    cards_per_node: int = 0
    """Node shape: cards on each node (0: unknown); a gang takes whole nodes of one pool."""

    @property
    def in_use_by_others(self) -> int:
        """Cards busy with work the federation did not place (local users of the site)."""
        return max(0, self.in_use - self.federation_in_use)

    @property
    def free(self) -> int:
        """Cards that can be given to new work now: allocatable - held - in use by others."""
        return max(0, self.allocatable - self.held - self.in_use_by_others)


@dataclass(frozen=True, slots=True)
class CapacityReport:
    """What a site can offer now, as its agent reports it: accelerator pools, host CPU, memory.

    The broker keeps each site's latest report; the report doubles as the agent's heartbeat.
    """

    pools: tuple[PoolCapacity, ...] = ()
    cpu_cores: float = 0.0
    cpu_cores_free: float = 0.0
    memory_gb: float = 0.0
    memory_gb_free: float = 0.0
    price_cny_per_kwh: float = 0.0
    """Live power price, if the site reports one (0: use the topology's schedule)."""
    carbon_kg_per_kwh: float = 0.0
    """Live grid carbon factor, if the site reports one (0: use the topology's)."""
    federation_cpu_cores: float = 0.0
    """Of the busy cores, those the agent's federation attempts hold."""
    federation_memory_gb: float = 0.0
    """Of the busy memory, GB the agent's federation attempts hold."""


@dataclass(frozen=True, slots=True)
class ClusterLeader:
    """The broker replica that leads, and since when (see ClusterStatus)."""

    broker_id: str
    address: str
    agent_address: str
    epoch: int
    since_unix_ms: int


@dataclass(frozen=True, slots=True)
class ClusterReplica:
    """One broker replica as last recorded in the shared database."""

    broker_id: str
    address: str
    role: str
    """"leader" or "follower"."""
    last_seen_unix_ms: int
    agent_address: str = ""


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The broker replicas of one federation and which one leads (None: none right now)."""

    leader: ClusterLeader | None
    replicas: tuple[ClusterReplica, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """A site as the broker sees it: topology facts plus live status and capacity."""

    site_id: SiteId
    name: str
    province: str
    side: str
    status: SiteStatus
    pools: tuple[PoolCapacity, ...] = ()
    cpu_cores: float = 0.0
    memory_gb: float = 0.0
    last_report_unix_ms: int = 0
    running_jobs: int = 0
    executor: str = ""
    agent_version: str = ""
    capacity_stale: bool = False
    """True while the agent's probe fails: the capacity shown is the last good report."""
    capacity_error: str = ""
    """Why the probe failed; empty when capacity is fresh."""
    capacity_unix_ms: int = 0
    """When the last good capacity report arrived, Unix ms (0 if never)."""


@dataclass(frozen=True, slots=True)
class CandidateSite:
    """Cost breakdown and verdict for one candidate site (and accelerator model) of a placement.

    `accelerator` is the pool model the costs are for ("" for a rejected site or host cores)
    and `run_hours` the job's run time there: its duration on its reference model over that
    model's speed.
    """

    site: SiteId
    feasible: bool
    reason: str = ""
    terms_cny: dict[str, float] = field(default_factory=dict)
    total_cny: float = 0.0
    accelerator: str = ""
    run_hours: float = 0.0


@dataclass(frozen=True, slots=True)
class Placement:
    """Why a job goes where it does: the chosen site (or None) and every candidate."""

    chosen: SiteId | None
    candidates: tuple[CandidateSite, ...] = ()
    decision_ms: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """The documented JSON shape of `plan` and `explain`."""
        return {
            "chosen": self.chosen,
            "candidates": [
                {
                    "site": c.site,
                    "feasible": c.feasible,
                    "reason": c.reason,
                    "terms": dict(c.terms_cny),
                    "total_cny": c.total_cny,
                    "accelerator": c.accelerator,
                    "run_hours": c.run_hours,
                }
                for c in self.candidates
            ],
        }
