"""The job lifecycle core: given a job as recorded and a stimulus, the effects that follow.

Every state change of every job is decided here and nowhere else. `handle` is a pure
function of (job, stimulus): the shells read the job, call it, and carry out the effects;
the store applies each `Write` as a compare-and-set against the state it was decided on, so
two shells deciding on the same job at once cannot both win.

States (docs/job-lifecycle.md lists them with every flag combination): pending -> placed
(capacity held) -> dispatched -> running -> succeeded | failed | cancelled; migrating while a
move stops the old attempt; back to pending when a site is lost or stops an attempt on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import assert_never

from broker.control import reconcile
from broker.control.effects import Dispatch, Effect, PlaceAtTarget, Stop, Write
from broker.control.retry import RetryPolicy, failed_start
from broker.control.stimuli import (
    AttemptReported,
    AttemptsListed,
    CancelRequested,
    DispatchAcknowledged,
    MigrationAbandoned,
    MigrationBegun,
    MigrationSourceGone,
    MigrationStop,
    MigrationTargetUnavailable,
    Placed,
    Preempt,
    SiteLost,
    SiteSuspect,
    Stimulus,
)
from broker.store.protocol import Hold, Transition
from computenet.site_messages import AttemptStatus
from computenet.types import ACTIVE_STATES, Job, JobState, SiteId, StartFailure

SUPERSEDED = "superseded: the job runs elsewhere now"
CANCEL_REASON = "cancel requested"
MOVABLE = frozenset({JobState.PLACED, JobState.DISPATCHED, JobState.RUNNING})
_ACTIVE = frozenset(ACTIVE_STATES)
_STARTABLE = frozenset({JobState.PLACED, JobState.DISPATCHED})
LAUNCH_FAILED = "launch_failed"
LOST_BEFORE_START = "site_lost_before_start"
MIGRATION_FELL_BACK = "migration_fell_back"
"""Cause of the placement that puts a migrating job back at its old site: its checkpoint could
not be taken or exported, and the job's local checkpoint folder is still there."""


class JobMachine:
    """Decides what follows each stimulus; holds no state of its own besides its policy."""

    def __init__(self, retry: RetryPolicy | None = None) -> None:
        self.retry = retry or RetryPolicy()
        """Caps and backoff for attempts that fail to start."""

    def handle(self, job: Job, stimulus: Stimulus) -> list[Effect]:
        """The effects of `stimulus` on `job` (empty: nothing changes)."""
        match stimulus:
            case Placed():
                return self._placed(job, stimulus)
            case DispatchAcknowledged():
                return self._acknowledged(job, stimulus)
            case AttemptReported():
                return self._reported(job, stimulus)
            case SiteSuspect():
                return []
            case SiteLost():
                if job.site != stimulus.site or job.state not in _ACTIVE:
                    return []
                if job.state in _STARTABLE:
                    # Never seen running: the agent may have died starting it (a poison job).
                    failure = StartFailure(
                        job.attempt, stimulus.site, "site lost", launch_failed=False
                    )
                    return [Write(self._failed_start(job, failure, stimulus.now_unix_ms))]
                return [Write(requeue(job, cause="site_lost"))]
            case AttemptsListed():
                return reconcile.reconcile(job, stimulus, self.retry)
            case CancelRequested():
                return self._cancel(job, stimulus)
            case MigrationBegun():
                return self._migration_begun(job, stimulus)
            case MigrationStop():
                if job.state != JobState.MIGRATING or job.site is None:
                    return []
                reason = f"migrating to {job.migration_target}"
                checkpoint = stimulus.checkpoint and job.migration_checkpoint
                return [Stop(job.site, job.job_id, job.attempt, reason, checkpoint)]
            case MigrationSourceGone():
                if job.state != JobState.MIGRATING or job.migration_target is None:
                    return []
                # Nothing was exported now: the new attempt restores the last checkpoint the
                # job did export, if any.
                return [
                    PlaceAtTarget(
                        job.job_id,
                        job.migration_target,
                        stimulus.note,
                        job.attempt,
                        restore_ref=job.restore_ref,
                    )
                ]
            case MigrationTargetUnavailable():
                if job.state != JobState.MIGRATING or stimulus.replacing != job.attempt:
                    return []
                back = requeue(
                    job,
                    cause="migration_target_unavailable",
                    message=stimulus.note,
                    restore_ref=stimulus.restore_ref,
                )
                return [Write(back)]
            case MigrationAbandoned():
                return self._migration_abandoned(job, stimulus)
            case Preempt():
                if job.state not in MOVABLE or job.site is None:
                    return []
                return [Stop(job.site, job.job_id, job.attempt, stimulus.reason, checkpoint=True)]
            case _:
                assert_never(stimulus)

    def resume(
        self,
        site: SiteId,
        jobs: Iterable[Job],
        listed: Sequence[AttemptStatus],
        now_unix_ms: int = 0,
    ) -> reconcile.Resumption:
        """After a site (re)connects: reconcile what it lists with what the broker believes.

        `jobs` are the broker's active jobs at the site and the jobs `listed` names. Feed each
        returned stimulus to `handle` (lost attempts requeue, placed ones are delivered again,
        pending stops are repeated, stale attempts are stopped) and carry out the stops.
        """
        return reconcile.resume(site, jobs, listed, now_unix_ms)

    def _placed(self, job: Job, stimulus: Placed) -> list[Effect]:
        movable = (
            job.state == JobState.MIGRATING
            and not job.cancel_requested
            and stimulus.replacing == job.attempt
        )
        if job.state != JobState.PENDING and not movable:
            return []
        allocation = stimulus.allocation
        if job.state == JobState.PENDING and allocation.site in job.failed_sites:
            return []  # it could not launch the job before
        attempt = job.attempt + 1
        restore = job.restore_ref if stimulus.restore_ref is None else stimulus.restore_ref
        holds = tuple(
            Hold(
                job_id=job.job_id,
                attempt=attempt,
                site=allocation.site,
                pool=share.pool,
                count=share.cards,
                cpu_cores=allocation.cpu_cores if i == 0 else 0.0,
                memory_gb=allocation.memory_gb if i == 0 else 0.0,
                expected_end_unix_ms=allocation.expected_end_unix_ms,
            )
            for i, share in enumerate(allocation.shares)
        )
        note = f" ({stimulus.note})" if stimulus.note else ""
        transition = Transition(
            job_id=job.job_id,
            new_state=JobState.PLACED,
            cause=stimulus.cause,
            expect_states=frozenset({job.state}),
            expect_attempt=job.attempt,
            site=allocation.site,
            attempt=attempt,
            reason="",
            message=f"placed on {allocation.site}{note}",
            holds=holds,
            release_hold=True,
            placement_json=stimulus.placement_json,
            migration_target="",
            pool=allocation.pool,
            restore_ref=restore,
        )
        dispatch = Dispatch(job.job_id, attempt, allocation.site, allocation.pool, restore)
        return [Write(transition), dispatch]

    def _acknowledged(self, job: Job, stimulus: DispatchAcknowledged) -> list[Effect]:
        if (
            job.state != JobState.PLACED
            or job.site != stimulus.site
            or job.attempt != stimulus.attempt
        ):
            return []
        return [
            Write(
                Transition(
                    job_id=job.job_id,
                    new_state=JobState.DISPATCHED,
                    cause="dispatch_acknowledged",
                    expect_states=frozenset({JobState.PLACED}),
                    expect_attempt=job.attempt,
                    message=f"accepted by {stimulus.site}",
                )
            )
        ]

    def _reported(self, job: Job, report: AttemptReported) -> list[Effect]:
        current = job.state in _ACTIVE and job.site == report.site and job.attempt == report.attempt
        if not current:
            # The site runs an attempt the broker no longer backs: stop it.
            if report.state == JobState.RUNNING:
                return [Stop(report.site, job.job_id, report.attempt, SUPERSEDED)]
            return []
        reported = Transition(
            job_id=job.job_id,
            new_state=report.state,
            cause="site_reported",
            expect_states=_ACTIVE,
            expect_attempt=report.attempt,
            message=report.message,
        )
        if report.state == JobState.RUNNING:
            if job.state not in _STARTABLE:
                return []
            return [Write(replace(reported, expect_states=_STARTABLE))]
        if report.state == JobState.FAILED and report.launch_failed:
            failure = StartFailure(report.attempt, report.site, report.message or "no reason")
            return [Write(self._failed_start(job, failure, report.now_unix_ms))]
        if report.state in (JobState.SUCCEEDED, JobState.FAILED):
            return [Write(_final(reported, exit_code=report.exit_code))]
        if report.state != JobState.CANCELLED:
            return []
        if job.cancel_requested:
            return [Write(_final(replace(reported, cause="site_confirmed_cancel")))]
        if job.state == JobState.MIGRATING and job.migration_target is not None:
            return [_moved_on(job, report)]
        # Stopped by its site or preempted: a checkpoint it exported is where it resumes.
        back = requeue(
            job,
            cause="stopped_at_site",
            message=report.message,
            restore_ref=report.checkpoint_ref or None,
        )
        return [Write(back)]

    def _failed_start(self, job: Job, failure: StartFailure, now_unix_ms: int) -> Transition:
        cause = LAUNCH_FAILED if failure.launch_failed else LOST_BEFORE_START
        return failed_start(job, failure, cause=cause, now_unix_ms=now_unix_ms, policy=self.retry)

    def _cancel(self, job: Job, stimulus: CancelRequested) -> list[Effect]:
        message = stimulus.reason or "cancelled by request"
        if job.state == JobState.PENDING:
            return [
                Write(
                    Transition(
                        job_id=job.job_id,
                        new_state=JobState.CANCELLED,
                        cause="cancelled",
                        expect_states=frozenset({JobState.PENDING}),
                        expect_attempt=job.attempt,
                        message=message,
                        release_hold=True,
                        restore_ref="",
                    )
                )
            ]
        if job.state not in _ACTIVE or job.cancel_requested or job.site is None:
            return []
        mark = Transition(
            job_id=job.job_id,
            new_state=job.state,
            cause="cancel_requested",
            expect_states=frozenset({job.state}),
            expect_attempt=job.attempt,
            message=stimulus.reason or CANCEL_REASON,
            cancel_requested=True,
        )
        return [Write(mark), Stop(job.site, job.job_id, job.attempt, CANCEL_REASON)]

    def _migration_begun(self, job: Job, stimulus: MigrationBegun) -> list[Effect]:
        if job.state not in MOVABLE or job.site != stimulus.site or job.cancel_requested:
            return []
        return [
            Write(
                Transition(
                    job_id=job.job_id,
                    new_state=JobState.MIGRATING,
                    cause="rebalance_migrating",
                    expect_states=frozenset({job.state}),
                    expect_attempt=job.attempt,
                    message=stimulus.note,
                    migration_target=stimulus.target,
                    # An attempt that has not started has nothing to checkpoint; a move priced
                    # as a restart is carried out as one, not as a fall-back.
                    migration_checkpoint=(
                        stimulus.checkpoint
                        and job.spec.checkpoint is not None
                        and job.state == JobState.RUNNING
                    ),
                )
            )
        ]

    def _migration_abandoned(self, job: Job, stimulus: MigrationAbandoned) -> list[Effect]:
        if job.state != JobState.MIGRATING:
            return []
        return [
            Write(
                Transition(
                    job_id=job.job_id,
                    new_state=JobState.RUNNING,
                    cause="migration_abandoned",
                    expect_states=frozenset({JobState.MIGRATING}),
                    expect_attempt=job.attempt,
                    message=stimulus.note,
                    migration_target="",
                )
            )
        ]


def _moved_on(job: Job, report: AttemptReported) -> PlaceAtTarget:
    """The migrating job's old attempt stopped: where its next attempt goes, restoring what.

    A move with checkpoint (`Job.migration_checkpoint`) whose report names no exported
    checkpoint falls back to the site it came from, where the job's checkpoint folder still
    is: a checkpoint that cannot be taken or moved never loses the job's work. Otherwise the
    job goes to its target, restoring the checkpoint just exported (or, without one, the last
    one it exported before, if any).
    """
    assert job.migration_target is not None
    stopped = f"stopped at {report.site}: {report.message}"
    if report.checkpoint_ref:
        size = f" ({report.checkpoint_bytes} bytes)" if report.checkpoint_bytes else ""
        return PlaceAtTarget(
            job.job_id,
            job.migration_target,
            f"{stopped}; checkpoint {report.checkpoint_ref}{size}",
            report.attempt,
            restore_ref=report.checkpoint_ref,
        )
    if job.migration_checkpoint:
        note = (
            f"{stopped}; checkpoint not taken or not exported: back to {report.site} "
            f"instead of {job.migration_target}"
        )
        return PlaceAtTarget(
            job.job_id,
            report.site,
            note,
            report.attempt,
            restore_ref=job.restore_ref,
            cause=MIGRATION_FELL_BACK,
        )
    return PlaceAtTarget(
        job.job_id, job.migration_target, stopped, report.attempt, restore_ref=job.restore_ref
    )


def requeue(
    job: Job, *, cause: str, message: str = "", restore_ref: str | None = None
) -> Transition:
    """The job's attempt is gone: back to pending, or cancelled/failed as asked and its policy.

    The job keeps the last checkpoint it exported (`restore_ref` replaces it when the attempt
    just exported a newer one): no checkpoint is taken when a site is lost, so the next
    attempt resumes from the last one that left a site, or starts fresh.
    """
    back = Transition(
        job_id=job.job_id,
        new_state=JobState.PENDING,
        cause=cause,
        expect_states=_ACTIVE,
        expect_attempt=job.attempt,
        site="",
        reason=cause,
        message=message,
        release_hold=True,
        migration_target="",
        restore_ref=restore_ref,
    )
    if job.cancel_requested:
        return _final(replace(back, new_state=JobState.CANCELLED, site=None))
    if job.spec.on_site_loss == "fail":
        return _final(replace(back, new_state=JobState.FAILED, site=None))
    return back


def _final(t: Transition, exit_code: int | None = None) -> Transition:
    """`t` ending the job: every hold released, no pending request or checkpoint left behind."""
    return replace(
        t,
        exit_code=exit_code,
        reason="" if t.reason is None else t.reason,
        release_hold=True,
        cancel_requested=False,
        migration_target="",
        restore_ref="",
    )


def pool_of(job: Job) -> str:
    """The pool the job's current attempt runs in (what placement chose, else what it asks)."""
    return job.pool or job.spec.resources.accelerator
