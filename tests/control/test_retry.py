"""Failed starts in the lifecycle core: backoff, avoided sites, caps, and the reasons kept."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.control import (
    LAUNCH_FAILED,
    LOST_BEFORE_START,
    Allocation,
    AttemptReported,
    CancelRequested,
    JobMachine,
    Placed,
    PoolShare,
    RetryPolicy,
    SiteLost,
    Write,
)
from broker.control.retry import START_FAILED
from broker.jobflow.placement_loop import placement_spec
from broker.store.protocol import Transition
from computenet.spec import parse_spec
from computenet.types import Job, JobId, JobState, SiteId, StartFailure, TenantId

NOW = 1_000_000
POLICY = RetryPolicy(max_attempts=3, max_sites=3, backoff_s=2.0, backoff_max_s=5.0)
MACHINE = JobMachine(POLICY)


def job(state: JobState = JobState.DISPATCHED, site: str = "west", **extra: object) -> Job:
    spec = parse_spec(
        {
            "name": "t",
            "kind": "batch",
            "duration_hours": 1.0,
            "command": ["/no/such/binary"],
            "on_site_loss": extra.pop("on_site_loss", "requeue"),
            "constraints": {"excluded_sites": ["north"]},
        }
    )
    base = Job(JobId("j"), TenantId("t"), spec, state, site=SiteId(site), attempt=1)
    return replace(base, **extra)  # type: ignore[arg-type]


def launch_failed(
    site: str = "west", attempt: int = 1, why: str = "no such file"
) -> AttemptReported:
    return AttemptReported(
        SiteId(site), attempt, JobState.FAILED, -1, why, launch_failed=True, now_unix_ms=NOW
    )


def only_write(effects: list[object]) -> Transition:
    [effect] = effects
    assert isinstance(effect, Write)
    return effect.transition


def test_a_launch_failure_requeues_after_a_backoff_and_remembers_the_site() -> None:
    t = only_write(MACHINE.handle(job(), launch_failed()))
    assert (t.new_state, t.cause, t.site, t.release_hold) == (
        JobState.PENDING,
        LAUNCH_FAILED,
        "",
        True,
    )
    assert t.start_failures == (StartFailure(1, SiteId("west"), "no such file"),)
    assert t.not_before_unix_ms == NOW + 2_000
    assert "attempt 1 at west could not start: no such file" in t.message


@pytest.mark.parametrize(("failures", "wait_ms"), [(1, 2_000), (2, 4_000), (3, 5_000), (9, 5_000)])
def test_the_backoff_doubles_up_to_its_cap(failures: int, wait_ms: int) -> None:
    assert RetryPolicy(backoff_s=2.0, backoff_max_s=5.0).backoff_ms(failures) == wait_ms


def test_the_job_fails_with_every_reason_once_it_used_its_attempts() -> None:
    earlier = (
        StartFailure(1, SiteId("west"), "no such file"),
        StartFailure(2, SiteId("east"), "sbatch failed: invalid partition"),
    )
    current = job(site="south", attempt=3, start_failures=earlier)
    t = only_write(MACHINE.handle(current, launch_failed("south", 3, "permission denied")))
    assert (t.new_state, t.reason, t.site, t.release_hold) == (
        JobState.FAILED,
        START_FAILED,
        None,
        True,
    )
    assert t.message == (
        "could not start after 3 attempts at 3 sites: attempt 1 at west: no such file; "
        "attempt 2 at east: sbatch failed: invalid partition; "
        "attempt 3 at south: permission denied"
    )
    assert t.start_failures is not None and len(t.start_failures) == 3


def test_the_job_fails_once_it_burned_its_sites_even_with_attempts_left() -> None:
    policy = RetryPolicy(max_attempts=10, max_sites=2)
    earlier = (StartFailure(1, SiteId("west"), "x"), StartFailure(2, SiteId("west"), "x"))
    current = job(site="east", attempt=3, start_failures=earlier)
    t = only_write(JobMachine(policy).handle(current, launch_failed("east", 3)))
    assert t.new_state == JobState.FAILED
    assert t.message.startswith("could not start after 3 attempts at 2 sites")


def test_a_job_that_ran_and_failed_is_final_with_its_exit_code() -> None:
    report = AttemptReported(SiteId("west"), 1, JobState.FAILED, 127, "exit code 127")
    t = only_write(MACHINE.handle(job(JobState.RUNNING), report))
    assert (t.new_state, t.exit_code, t.start_failures) == (JobState.FAILED, 127, None)


def test_a_stale_launch_failure_changes_nothing() -> None:
    assert MACHINE.handle(job(attempt=2), launch_failed(attempt=1)) == []
    assert MACHINE.handle(job(site="east"), launch_failed("west")) == []


@pytest.mark.parametrize("state", [JobState.PLACED, JobState.DISPATCHED])
def test_a_site_lost_before_the_attempt_ran_counts_as_a_failed_start(state: JobState) -> None:
    t = only_write(MACHINE.handle(job(state), SiteLost(SiteId("west"), now_unix_ms=NOW)))
    assert (t.new_state, t.cause) == (JobState.PENDING, LOST_BEFORE_START)
    assert t.start_failures == (StartFailure(1, SiteId("west"), "site lost", False),)
    assert t.not_before_unix_ms == NOW + 2_000


def test_a_site_lost_while_the_attempt_ran_is_a_plain_requeue() -> None:
    t = only_write(MACHINE.handle(job(JobState.RUNNING), SiteLost(SiteId("west"))))
    assert (t.new_state, t.cause, t.start_failures) == (JobState.PENDING, "site_lost", None)


def test_a_lost_site_is_not_avoided_but_a_site_that_could_not_launch_is() -> None:
    failures = (
        StartFailure(1, SiteId("west"), "site lost", False),
        StartFailure(2, SiteId("east"), "no such file"),
    )
    pending = job(JobState.PENDING, site="", start_failures=failures)
    assert pending.failed_sites == {"east"}
    excluded = placement_spec(pending).constraints.excluded_sites
    assert excluded == ("north", "east")
    assert placement_spec(job()) == job().spec


def test_a_pending_job_is_never_placed_where_it_could_not_launch() -> None:
    failures = (StartFailure(1, SiteId("east"), "no such file"),)
    pending = replace(
        job(JobState.PENDING, start_failures=failures), site=None, not_before_unix_ms=0
    )
    at = Allocation(SiteId("east"), (PoolShare("", 0),), 1.0, 1.0)
    assert MACHINE.handle(pending, Placed(at)) == []
    elsewhere = MACHINE.handle(pending, Placed(replace(at, site=SiteId("west"))))
    assert only_write(elsewhere[:1]).new_state == JobState.PLACED


def test_lost_before_start_fails_at_once_under_the_fail_policy() -> None:
    t = only_write(MACHINE.handle(job(on_site_loss="fail"), SiteLost(SiteId("west"))))
    assert t.new_state == JobState.FAILED
    # A launch failure is not a site loss: it is retried whatever the policy.
    t = only_write(MACHINE.handle(job(on_site_loss="fail"), launch_failed()))
    assert t.new_state == JobState.PENDING


def test_a_cancel_requested_before_the_launch_failed_ends_the_job_cancelled() -> None:
    [mark, _stop] = MACHINE.handle(job(), CancelRequested("stop it"))
    assert isinstance(mark, Write) and mark.transition.cancel_requested
    t = only_write(MACHINE.handle(job(cancel_requested=True), launch_failed()))
    assert (t.new_state, t.cancel_requested) == (JobState.CANCELLED, False)
