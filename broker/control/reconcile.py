"""Reconciliation when a site (re)connects: the attempts it lists against what the broker believes.

Pure. A site's hello lists every attempt it holds that the broker has not acknowledged as
final, each with the state the site last saw. Differences are resolved both ways:

- the job's current attempt at the site, acknowledged or further (dispatched, running,
  migrating, stopping), that the site does not list is lost: requeued, failed or cancelled as a
  lost site's would be, its capacity released; a placed attempt is only delivered again;
- an attempt the site lists, not final there, that the broker no longer backs at that site
  (finished, cancelled, moved, or a job it never had) is stopped.

A listed final state is never an unknown: its report is still in the site's unacknowledged
queue, which the site sends again right after the welcome, and that report (with its exit code
and message) ends the attempt like any other. Every decision that concerns a job the broker has
is an event on the job's timeline saying what was reconciled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from broker.control import machine as core
from broker.control.effects import Dispatch, Effect, Stop, Write
from broker.control.retry import START_FAILED, RetryPolicy, failed_start
from broker.control.stimuli import AttemptsListed
from broker.store.protocol import Transition
from computenet.site_messages import AttemptStatus
from computenet.types import ACTIVE_STATES, Job, JobId, JobState, SiteId, StartFailure

UNKNOWN_CAUSE = "attempt_unknown_at_site"
UNKNOWN_REASON = "never seen running"
STALE_CAUSE = "stale_attempt_at_site"
_ACTIVE = frozenset(ACTIVE_STATES)


@dataclass(frozen=True, slots=True)
class Resumption:
    """What a (re)connecting site is owed.

    `stimuli` go through `JobMachine.handle` (one per job the broker has that the site holds
    or should hold); `stops` end attempts of jobs the broker does not have at all.
    """

    stimuli: tuple[tuple[Job, AttemptsListed], ...] = ()
    stops: tuple[Stop, ...] = ()


def resume(
    site: SiteId, jobs: Iterable[Job], listed: Sequence[AttemptStatus], now_unix_ms: int = 0
) -> Resumption:
    """Pair each job at `site` or named in the hello with the attempts the site listed for it.

    `jobs` are the broker's active jobs at the site plus whatever it has of the jobs `listed`
    names (any state, anywhere); a listed job missing from `jobs` is one the broker never had.
    """
    by_job: dict[JobId, list[tuple[int, JobState | None]]] = {}
    for status in listed:
        by_job.setdefault(status.job_id, []).append((status.attempt, status.state))
    stimuli: dict[JobId, tuple[Job, AttemptsListed]] = {}
    for job in jobs:
        entries = tuple(by_job.get(job.job_id, ()))
        if (_current_at(job, site) is not None or entries) and job.job_id not in stimuli:
            stimuli[job.job_id] = (job, AttemptsListed(site, entries, now_unix_ms))
    stops = tuple(
        Stop(site, job_id, attempt, core.SUPERSEDED)
        for job_id, entries in by_job.items()
        if job_id not in stimuli
        for attempt, state in entries
        if not _final(state)
    )
    return Resumption(tuple(stimuli.values()), stops)


def reconcile(job: Job, stimulus: AttemptsListed, retry: RetryPolicy) -> list[Effect]:
    """The effects of the site's listing on one job (see the module docstring).

    A lost attempt that was never seen running counts as a failed start under `retry`, as a
    lost site's would: an agent that dies starting a job may come back without it.
    """
    site = stimulus.site
    current = _current_at(job, site)
    listed = dict(stimulus.attempts)
    stale = [(a, s) for a, s in stimulus.attempts if a != current and not _final(s)]
    # Stops of stale attempts come first: they hold whatever becomes of the job's own write.
    effects: list[Effect] = [Stop(site, job.job_id, a, core.SUPERSEDED) for a, _ in stale]
    note = "; ".join(
        f"site {site} still held attempt {a} ({_name(s)}); told to stop it" for a, s in stale
    )
    if current is not None and current not in listed and job.state != JobState.PLACED:
        return [*effects, Write(_lost(job, stimulus, retry, note))]
    if stale:
        effects.append(Write(_note(job, note)))
    if current is not None:
        effects += _owed(job, site, listed.get(current))
    return effects


def _owed(job: Job, site: SiteId, listed: JobState | None) -> list[Effect]:
    """What the site is owed for the job's current attempt, which it holds or was only sent."""
    if _final(listed):
        return []  # its unacknowledged report follows on this stream and ends the attempt
    if job.cancel_requested:
        return [Stop(site, job.job_id, job.attempt, core.CANCEL_REASON)]
    if job.state == JobState.PLACED:
        # Not acknowledged yet: delivered again; the site deduplicates by (job, attempt).
        return [Dispatch(job.job_id, job.attempt, site, core.pool_of(job), job.restore_ref)]
    if job.state == JobState.MIGRATING:
        reason = f"migrating to {job.migration_target}"
        return [Stop(site, job.job_id, job.attempt, reason, job.migration_checkpoint)]
    return []


def _current_at(job: Job, site: SiteId) -> int | None:
    """The job's attempt if it is active at `site`, else None."""
    return job.attempt if job.site == site and job.state in _ACTIVE else None


def _final(state: JobState | None) -> bool:
    return state is not None and state.is_final


def _name(state: JobState | None) -> str:
    return state.value if state is not None else "state unknown"


def _lost(job: Job, stimulus: AttemptsListed, retry: RetryPolicy, also: str) -> Transition:
    """The current attempt is gone at its site: what a lost site does to the job."""
    site, attempt = stimulus.site, job.attempt
    if job.state == JobState.DISPATCHED:
        failure = StartFailure(attempt, site, UNKNOWN_REASON, launch_failed=False)
        back = failed_start(
            job, failure, cause=UNKNOWN_CAUSE, now_unix_ms=stimulus.now_unix_ms, policy=retry
        )
    else:
        back = core.requeue(job, cause=UNKNOWN_CAUSE)
    if back.new_state == JobState.PENDING:
        outcome = back.message or "requeued"
    elif back.new_state == JobState.CANCELLED:
        outcome = "cancelled (cancel requested)"
    elif back.reason == START_FAILED:
        outcome = f"failed: {back.message}"
    else:
        outcome = "failed (on_site_loss: fail)"
    message = f"reconciled: site {site} no longer knows attempt {attempt}; {outcome}"
    return replace(back, message=f"{message}; {also}" if also else message)


def _note(job: Job, what: str) -> Transition:
    """An event on the job's timeline that changes nothing but says what was reconciled."""
    return Transition(
        job_id=job.job_id,
        new_state=job.state,
        cause=STALE_CAUSE,
        expect_states=frozenset({job.state}),
        expect_attempt=job.attempt,
        message=f"reconciled: {what}",
        exit_code=job.exit_code,  # a transition always sets it: keep the job's own
    )
