"""Plain records the agent keeps about attempts and reports, shared by core, journal and link."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from computenet.spec import JobSpec
from computenet.types import JobState

AttemptKey = tuple[str, int]
"""(job_id, attempt): the agent deduplicates dispatches by this pair."""


class Phase(StrEnum):
    """Where an attempt is in its life at this agent."""

    ACCEPTED = "accepted"
    """Durable at the agent, not yet handed to the executor."""
    LAUNCHED = "launched"
    """Handed to the executor (it may still be queued there)."""
    EXPORTING = "exporting"
    """Stopped with a checkpoint; its checkpoint is being exported before the final report."""
    FINAL = "final"
    """Finished; its final report exists (acknowledged or not)."""


@dataclass(frozen=True, slots=True)
class Exit:
    """The final state of an attempt as reported once its checkpoint has been exported."""

    state: JobState
    exit_code: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """Everything the agent knows about one attempt of one job."""

    job_id: str
    attempt: int
    fencing_token: int
    tenant: str = ""
    spec: JobSpec | None = None
    """What to run; None for attempts only known through a cancel, or with an invalid spec."""
    phase: Phase = Phase.ACCEPTED
    handle: str = ""
    """Executor handle: the wrapper pid for `local`, the Slurm job id for `slurm`."""
    reported: JobState | None = None
    """Last state reported for this attempt."""
    stop_reason: str = ""
    """Why the agent asked the executor to stop it (cancel, lease expiry); empty if not asked."""
    final_acked: bool = False
    """True once the broker acknowledged the final report."""
    finished_unix_ms: int = 0
    restore_ref: str = ""
    """The checkpoint to restore before starting ("" to start fresh)."""
    stop_checkpoint: bool = False
    """The broker stopped it with checkpoint: the checkpoint is exported before the final report."""
    ended: Exit | None = None
    """How the attempt ended, kept while its checkpoint is exported (phase EXPORTING)."""

    @property
    def key(self) -> AttemptKey:
        """The (job_id, attempt) pair."""
        return (self.job_id, self.attempt)

    @property
    def is_final(self) -> bool:
        """True once the attempt has finished at this agent."""
        return self.phase is Phase.FINAL

    @property
    def requeues_on_site_loss(self) -> bool:
        """True if the broker re-places this attempt's job when the site is lost."""
        return self.spec is None or self.spec.on_site_loss == "requeue"


@dataclass(frozen=True, slots=True)
class Report:
    """A job event report, kept until the broker acknowledges its report_id."""

    report_id: int
    job_id: str
    attempt: int
    fencing_token: int
    state: JobState
    exit_code: int = 0
    message: str = ""
    time_unix_ms: int = 0
    launch_failed: bool = False
    """A FAILED attempt that never started (bad command, missing binary, executor error)."""
    checkpoint_ref: str = ""
    """Where a stopped attempt's checkpoint was exported ("" if none was taken or moved)."""
    checkpoint_bytes: int = 0
    """Size of that checkpoint."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The durable part of the agent's state, as the journal stores and restores it."""

    attempts: tuple[AttemptRecord, ...] = ()
    unacked: tuple[Report, ...] = ()
    next_report_id: int = 1
    drained: bool = False
    leader_epoch: int = 0
    """The highest leader epoch the agent has been welcomed with (0: none, or no elections)."""


@dataclass(frozen=True, slots=True)
class ExecutorUpdate:
    """A state change of an attempt as its executor saw it."""

    job_id: str
    attempt: int
    state: JobState
    """RUNNING, SUCCEEDED, FAILED or CANCELLED."""
    exit_code: int = 0
    message: str = ""
    launch_failed: bool = False
    """FAILED because the command could not be started (it never ran)."""

    @property
    def key(self) -> AttemptKey:
        """The (job_id, attempt) pair."""
        return (self.job_id, self.attempt)
