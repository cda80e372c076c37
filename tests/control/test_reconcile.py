"""Reconciliation on a site's (re)connect, table by table: what the site lists against the job."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.control import (
    SUPERSEDED,
    AttemptsListed,
    Dispatch,
    Effect,
    JobMachine,
    Resumption,
    RetryPolicy,
    Stop,
    Write,
)
from broker.control.machine import CANCEL_REASON
from broker.control.reconcile import STALE_CAUSE, UNKNOWN_CAUSE
from computenet.site_messages import AttemptStatus
from computenet.spec import parse_spec
from computenet.types import Job, JobId, JobState, SiteId, StartFailure, TenantId

WEST, EAST = SiteId("west"), SiteId("east")
J = JobId("j")
S = JobState
machine = JobMachine()


def job(
    state: JobState,
    site: SiteId | None = WEST,
    attempt: int = 3,
    *,
    policy: str = "requeue",
    cancel: bool = False,
    target: SiteId | None = None,
    exit_code: int | None = None,
) -> Job:
    spec = parse_spec(
        {
            "name": "t",
            "kind": "batch",
            "resources": {"accelerator": "a800", "count": 2},
            "duration_hours": 1.0,
            "command": ["true"],
            "on_site_loss": policy,
        }
    )
    return Job(
        job_id=J,
        tenant=TenantId("t"),
        spec=spec,
        state=state,
        site=site,
        attempt=attempt,
        cancel_requested=cancel,
        migration_target=target,
        pool="a800",
        exit_code=exit_code,
    )


def listed(*entries: tuple[int, JobState | None]) -> AttemptsListed:
    return AttemptsListed(WEST, tuple(entries))


def writes(effects: list[Effect]) -> list[tuple[str, str, str]]:
    """(new state, cause, message) of each write."""
    return [
        (e.transition.new_state.value, e.transition.cause, e.transition.message)
        for e in effects
        if isinstance(e, Write)
    ]


def actions(effects: list[Effect]) -> list[Effect]:
    return [e for e in effects if not isinstance(e, Write)]


LOST = "reconciled: site west no longer knows attempt 3"
STALE = "reconciled: site west still held attempt 2 (running); told to stop it"
ALSO_STALE = "site west still held attempt 2 (running); told to stop it"
REQUEUED = [("pending", UNKNOWN_CAUSE, f"{LOST}; requeued")]
FAILED = [("failed", UNKNOWN_CAUSE, f"{LOST}; failed (on_site_loss: fail)")]
CANCELLED = [("cancelled", UNKNOWN_CAUSE, f"{LOST}; cancelled (cancel requested)")]
RETRIED = "attempt 3 at west was lost before it started: never seen running"
FAILED_START = [
    ("pending", UNKNOWN_CAUSE, f"{LOST}; {RETRIED}; retrying in 5 s (failed start 1 of at most 5)")
]
REQUEUED_AND_STALE = [("pending", UNKNOWN_CAUSE, f"{LOST}; requeued; {ALSO_STALE}")]


def noted(state: str) -> list[tuple[str, str, str]]:
    return [(state, STALE_CAUSE, STALE)]


STOP_2 = Stop(WEST, J, 2, SUPERSEDED)
STOP_3 = Stop(WEST, J, 3, CANCEL_REASON)
MOVE_STOP_3 = Stop(WEST, J, 3, "migrating to east")
CKPT_MOVE_STOP_3 = Stop(WEST, J, 3, "migrating to east", checkpoint=True)
REDISPATCH = Dispatch(J, 3, WEST, "a800")
L, R, F = listed, S.RUNNING, S.FAILED

# (case, job, listing, expected writes, expected other effects)
CASES = [
    # The site no longer knows an attempt it had acknowledged: lost, like a lost site's.
    # Never seen running: a failed start, as a lost site's would be (retried after a backoff).
    ("dispatched, not listed", job(S.DISPATCHED), L(), FAILED_START, []),
    ("dispatched, policy fail", job(S.DISPATCHED, policy="fail"), L(), FAILED, []),
    ("dispatched, stopping", job(S.DISPATCHED, cancel=True), L(), CANCELLED, []),
    ("running, not listed", job(R), L(), REQUEUED, []),
    ("migrating, not listed", job(S.MIGRATING, target=EAST), L(), REQUEUED, []),
    ("running, policy fail", job(R, policy="fail"), L(), FAILED, []),
    ("stopping, not listed", job(R, cancel=True), L(), CANCELLED, []),
    # Placed: the dispatch was never acknowledged, so it is delivered again, never lost.
    ("placed, not listed", job(S.PLACED), L(), [], [REDISPATCH]),
    ("placed, listed", job(S.PLACED), L((3, S.DISPATCHED)), [], [REDISPATCH]),
    ("placed, cancel requested", job(S.PLACED, cancel=True), L(), [], [STOP_3]),
    ("placed, listed failed", job(S.PLACED), L((3, F)), [], []),
    # Listed and held: nothing to write; pending stops are repeated.
    ("running, listed", job(R), L((3, R)), [], []),
    ("dispatched, listed running", job(S.DISPATCHED), L((3, R)), [], []),
    ("listed without a state", job(R), L((3, None)), [], []),
    ("stopping, listed", job(R, cancel=True), L((3, R)), [], [STOP_3]),
    ("migrating, listed", job(S.MIGRATING, target=EAST), L((3, R)), [], [MOVE_STOP_3]),
    (
        "migrating with checkpoint, listed",
        replace(job(S.MIGRATING, target=EAST), migration_checkpoint=True),
        L((3, R)),
        [],
        [CKPT_MOVE_STOP_3],
    ),
    # Listed final: its unacknowledged report follows on the stream; not an unknown.
    ("running, listed succeeded", job(R), L((3, S.SUCCEEDED)), [], []),
    ("running, listed failed", job(R), L((3, F)), [], []),
    ("stopping, listed cancelled", job(R, cancel=True), L((3, S.CANCELLED)), [], []),
    # Attempts moved away, finished or cancelled: stopped, and the job's timeline says so.
    ("moved to east", job(R, EAST), L((2, R)), noted("running"), [STOP_2]),
    ("requeued", job(S.PENDING, None, 2), L((2, R)), noted("pending"), [STOP_2]),
    ("finished", job(S.SUCCEEDED, None, 2, exit_code=0), L((2, R)), noted("succeeded"), [STOP_2]),
    ("older beside the current", job(R), L((2, R), (3, R)), noted("running"), [STOP_2]),
    ("older, current unknown", job(R), L((2, R)), REQUEUED_AND_STALE, [STOP_2]),
    ("older, current placed", job(S.PLACED), L((2, R)), noted("placed"), [STOP_2, REDISPATCH]),
    # A stale attempt already final at the site needs nothing.
    ("moved, listed final", job(R, EAST), L((2, S.CANCELLED)), [], []),
    ("active elsewhere, not listed", job(R, EAST), L(), [], []),
]


@pytest.mark.parametrize(
    ("case", "the_job", "listing", "expect_writes", "expect_actions"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_reconcile_one_job(
    case: str,
    the_job: Job,
    listing: AttemptsListed,
    expect_writes: list[tuple[str, str, str]],
    expect_actions: list[Effect],
) -> None:
    effects = machine.handle(the_job, listing)
    assert writes(effects) == expect_writes
    assert actions(effects) == expect_actions


def test_a_lost_attempt_releases_its_capacity_and_clears_the_move() -> None:
    (write,) = machine.handle(job(S.MIGRATING, target=EAST), listed())
    assert isinstance(write, Write)
    t = write.transition
    assert t.release_hold and t.site == "" and t.migration_target == ""
    assert t.expect_attempt == 3, "a newer attempt of the job is never touched"


def test_a_lost_attempt_never_seen_running_is_a_failed_start_with_a_backoff() -> None:
    hello = AttemptsListed(WEST, (), now_unix_ms=1_000_000)
    (write,) = machine.handle(job(S.DISPATCHED), hello)
    assert isinstance(write, Write)
    t = write.transition
    assert t.not_before_unix_ms == 1_000_000 + 5_000 and t.release_hold
    assert t.start_failures == (StartFailure(3, WEST, "never seen running", launch_failed=False),)
    assert WEST not in replace(job(S.PENDING), start_failures=t.start_failures).failed_sites


def test_a_lost_attempt_past_the_retry_caps_fails_the_job_with_every_reason() -> None:
    earlier = tuple(StartFailure(n, EAST, f"boom {n}") for n in (1, 2))
    capped = JobMachine(RetryPolicy(max_attempts=3, max_sites=5))
    (write,) = capped.handle(replace(job(S.DISPATCHED), start_failures=earlier), listed())
    assert isinstance(write, Write)
    t = write.transition
    assert (t.new_state, t.reason) == (S.FAILED, "start_failed")
    assert t.message.startswith(f"{LOST}; failed: could not start after 3 attempts at 2 sites")
    assert "attempt 3 at west: never seen running" in t.message


def test_a_note_keeps_the_job_as_it_is() -> None:
    (_, write) = machine.handle(job(S.SUCCEEDED, None, 2, exit_code=7), listed((2, S.RUNNING)))
    assert isinstance(write, Write)
    t = write.transition
    assert (t.new_state, t.expect_states, t.expect_attempt) == (S.SUCCEEDED, {S.SUCCEEDED}, 2)
    assert t.exit_code == 7 and not t.release_hold and t.site is None and t.reason is None


def test_stops_come_before_the_write_so_a_lost_race_still_stops() -> None:
    effects = machine.handle(job(S.RUNNING), listed((2, S.RUNNING)))
    assert isinstance(effects[0], Stop) and isinstance(effects[-1], Write)


def status(job_id: str, attempt: int, state: JobState | None) -> AttemptStatus:
    return AttemptStatus(JobId(job_id), attempt, state)


def test_resume_pairs_every_job_with_what_the_site_listed_for_it() -> None:
    at_west = replace(job(S.RUNNING), job_id=JobId("a"))
    moved = replace(job(S.RUNNING, EAST, 2), job_id=JobId("b"))
    elsewhere = replace(job(S.RUNNING, EAST), job_id=JobId("c"))
    hello = [
        status("b", 1, S.RUNNING),
        status("ghost", 4, S.RUNNING),
        status("ghost", 5, S.SUCCEEDED),
        status("gone", 1, None),
    ]
    result = machine.resume(WEST, [at_west, moved, elsewhere], hello)
    assert result == Resumption(
        stimuli=(
            (at_west, AttemptsListed(WEST, ())),
            (moved, AttemptsListed(WEST, ((1, S.RUNNING),))),
        ),
        stops=(
            Stop(WEST, JobId("ghost"), 4, SUPERSEDED),
            Stop(WEST, JobId("gone"), 1, SUPERSEDED),
        ),
    )


def test_resume_of_a_site_holding_nothing_owes_nothing() -> None:
    assert machine.resume(WEST, [job(S.RUNNING, EAST)], []) == Resumption()
