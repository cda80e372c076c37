"""What can happen to a job: the stimuli the lifecycle core decides on."""

from __future__ import annotations

from dataclasses import dataclass

from computenet.types import JobState, SiteId


@dataclass(frozen=True, slots=True)
class PoolShare:
    """Cards taken from one accelerator pool of a site ("" for host-only work, 0 cards)."""

    pool: str
    cards: int


@dataclass(frozen=True, slots=True)
class Allocation:
    """Where an attempt runs and what it holds there: the lines it adds to the ledger."""

    site: SiteId
    shares: tuple[PoolShare, ...]
    cpu_cores: float
    memory_gb: float
    expected_end_unix_ms: int = 0

    @property
    def pool(self) -> str:
        """The pool the attempt runs in (its largest share), "" for host-only work."""
        if not self.shares:
            return ""
        return max(self.shares, key=lambda s: s.cards).pool


@dataclass(frozen=True, slots=True)
class Placed:
    """Placement chose an allocation for the job's next attempt.

    Applies to a pending job, or to a migrating one whose old attempt has stopped (or whose
    old site is gone): the old holds are released and the new ones taken in one write.
    """

    allocation: Allocation
    cause: str = "placed"
    note: str = ""
    placement_json: str | None = None
    replacing: int | None = None
    """For a migrating job: the attempt that is over (from `PlaceAtTarget`); a migrating job
    whose current attempt may still run is never placed again."""
    restore_ref: str | None = None
    """The checkpoint the new attempt restores from (from `PlaceAtTarget`); None keeps the
    job's own (the last one it exported, if any)."""


@dataclass(frozen=True, slots=True)
class DispatchAcknowledged:
    """The site holds the attempt durably."""

    site: SiteId
    attempt: int


@dataclass(frozen=True, slots=True)
class AttemptReported:
    """A site reported the state of one attempt of the job."""

    site: SiteId
    attempt: int
    state: JobState
    exit_code: int | None = None
    message: str = ""
    launch_failed: bool = False
    """A FAILED attempt that never started (the site could not launch it)."""
    now_unix_ms: int = 0
    """When the broker took the report (the retry backoff counts from it)."""
    checkpoint_ref: str = ""
    """On the final report of an attempt stopped with checkpoint: where its checkpoint was
    exported ("" if none was taken or it could not be exported)."""
    checkpoint_bytes: int = 0
    """Size of that checkpoint."""


@dataclass(frozen=True, slots=True)
class SiteSuspect:
    """The job's site went quiet; nothing changes for the job until it is lost."""

    site: SiteId


@dataclass(frozen=True, slots=True)
class SiteLost:
    """The site was silent past its lost window: its attempts no longer count."""

    site: SiteId
    now_unix_ms: int = 0
    """When the broker judged it lost (the retry backoff counts from it)."""


@dataclass(frozen=True, slots=True)
class AttemptsListed:
    """A (re)connecting site's hello listed these attempts of the job (maybe none of them).

    Each entry is (attempt, state the site last saw); the state is None when the site sent
    none this build knows. The core reconciles both ways: the job's current attempt at the
    site that the site does not list is lost; a listed attempt the broker no longer backs there
    is stopped.
    """

    site: SiteId
    attempts: tuple[tuple[int, JobState | None], ...] = ()
    now_unix_ms: int = 0
    """When the hello arrived: a lost attempt that never ran is retried after a backoff."""


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """A client asked for the job to be cancelled."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class MigrationBegun:
    """Rebalancing starts moving the job from `site` to `target`.

    `checkpoint` is False when the move was priced as a restart (a site of the move cannot
    send or receive checkpoints): the job is then stopped without one and starts afresh.
    """

    site: SiteId
    target: SiteId
    note: str = ""
    checkpoint: bool = True


@dataclass(frozen=True, slots=True)
class MigrationStop:
    """Rebalancing asks the migrating job's current attempt to stop (checkpointing first).

    The stop checkpoints only if `checkpoint` and the move is with checkpoint
    (`Job.migration_checkpoint`, decided when the move began).
    """

    checkpoint: bool = True


@dataclass(frozen=True, slots=True)
class MigrationSourceGone:
    """The migrating job's old site is lost or offline: the move goes on without its stop."""

    note: str = ""


@dataclass(frozen=True, slots=True)
class MigrationTargetUnavailable:
    """The move's target cannot take the job now: it goes back to the queue.

    Only once its old attempt is over: `replacing` names it (from `PlaceAtTarget`).
    """

    note: str = ""
    replacing: int | None = None
    restore_ref: str | None = None
    """The checkpoint the stopped attempt exported (from `PlaceAtTarget`); the requeued job
    keeps it. None keeps the job's own."""


@dataclass(frozen=True, slots=True)
class MigrationAbandoned:
    """A broker restart found the move unfinished: the job stays where it runs."""

    note: str = ""


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop the job's attempt with a checkpoint; the job requeues once the site confirms."""

    reason: str = ""


Stimulus = (
    Placed
    | DispatchAcknowledged
    | AttemptReported
    | SiteSuspect
    | SiteLost
    | AttemptsListed
    | CancelRequested
    | MigrationBegun
    | MigrationStop
    | MigrationSourceGone
    | MigrationTargetUnavailable
    | MigrationAbandoned
    | Preempt
)
