"""Attempts that fail to start: the retry caps and backoff, and what a failed start leads to.

A failed start is an attempt its site could not launch (bad command, missing binary, executor
error) or one whose site was lost before it was seen running (an agent that dies starting a
job looks like that). Each is recorded on the job; the job goes back to the queue after an
exponential backoff, avoiding the sites that could not launch it, until it has burned
`max_attempts` attempts or `max_sites` distinct sites, and then fails with every reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from broker.store.protocol import Transition
from computenet.types import ACTIVE_STATES, Job, JobState, StartFailure

MAX_REASON_CHARS = 300
"""Each recorded reason is cut to this, so a job's failure summary stays small."""
START_FAILED = "start_failed"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far a job whose attempts fail to start is retried."""

    max_attempts: int = 5
    """Failed starts after which the job fails."""
    max_sites: int = 3
    """Distinct sites with a failed start after which the job fails."""
    backoff_s: float = 5.0
    """Wait before placing the job again after its first failed start; doubles each time."""
    backoff_max_s: float = 300.0
    """The longest wait between two attempts."""

    def backoff_ms(self, failures: int) -> int:
        """The wait after the `failures`-th failed start (1-based), in milliseconds."""
        seconds = min(self.backoff_max_s, self.backoff_s * 2.0 ** max(0, failures - 1))
        return int(seconds * 1000)

    def exhausted(self, failures: tuple[StartFailure, ...]) -> bool:
        """True once the job may not be tried again."""
        sites = {f.site for f in failures}
        return len(failures) >= self.max_attempts or len(sites) >= self.max_sites


def failed_start(
    job: Job, failure: StartFailure, *, cause: str, now_unix_ms: int, policy: RetryPolicy
) -> Transition:
    """The job's current attempt failed to start: back to the queue after a backoff, or failed.

    A cancel requested meanwhile ends the job cancelled; a site lost before the attempt ran
    fails it at once if its `on_site_loss` policy says so.
    """
    failure = replace(failure, reason=_short(failure.reason))
    failures = (*job.start_failures, failure)
    what = "could not start" if failure.launch_failed else "was lost before it started"
    back = Transition(
        job_id=job.job_id,
        new_state=JobState.PENDING,
        cause=cause,
        expect_states=frozenset(ACTIVE_STATES),
        expect_attempt=job.attempt,
        site="",
        reason=cause,
        release_hold=True,
        migration_target="",
        start_failures=failures,
    )
    if job.cancel_requested:
        return _ended(back, JobState.CANCELLED, f"attempt {failure.attempt} {what}")
    if not failure.launch_failed and job.spec.on_site_loss == "fail":
        return _ended(back, JobState.FAILED, f"site {failure.site} lost")
    if policy.exhausted(failures):
        summary = summarise(failures)
        return replace(_ended(back, JobState.FAILED, summary), reason=START_FAILED)
    wait_ms = policy.backoff_ms(len(failures))
    message = (
        f"attempt {failure.attempt} at {failure.site} {what}: {failure.reason}; "
        f"retrying in {wait_ms / 1000:g} s (failed start {len(failures)} of at most "
        f"{policy.max_attempts})"
    )
    return replace(back, message=message, not_before_unix_ms=now_unix_ms + wait_ms)


def summarise(failures: tuple[StartFailure, ...]) -> str:
    """Every failed start, oldest first, in one line."""
    sites = len({f.site for f in failures})
    parts = "; ".join(f"attempt {f.attempt} at {f.site}: {f.reason}" for f in failures)
    return f"could not start after {len(failures)} attempts at {sites} sites: {parts}"


def _ended(t: Transition, state: JobState, message: str) -> Transition:
    return replace(
        t, new_state=state, site=None, message=message, cancel_requested=False, restore_ref=""
    )


def _short(reason: str) -> str:
    line = " ".join(reason.split()) or "no reason given"
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 3] + "..."
