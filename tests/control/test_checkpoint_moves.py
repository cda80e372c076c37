"""Checkpoints in the lifecycle core, table by table: a move restores what its stop exported,
falls back to where the job was when nothing was exported, and the job keeps its last
exported checkpoint across requeues until it ends."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.control import (
    MIGRATION_FELL_BACK,
    Allocation,
    AttemptReported,
    AttemptsListed,
    CancelRequested,
    Dispatch,
    Effect,
    JobMachine,
    MigrationBegun,
    MigrationSourceGone,
    MigrationStop,
    MigrationTargetUnavailable,
    PlaceAtTarget,
    Placed,
    PoolShare,
    Preempt,
    SiteLost,
    Stop,
    Write,
)
from broker.store.protocol import Transition
from computenet.spec import parse_spec
from computenet.types import Job, JobId, JobState, SiteId, TenantId

WEST, EAST = SiteId("west"), SiteId("east")
J = JobId("j")
S = JobState
OLD, NEW = "ckpt://west/j/2", "ckpt://west/j/3"
machine = JobMachine()


def job(state: JobState, *, checkpointing: bool = True, **extra: object) -> Job:
    """Attempt 3 of a job at WEST (moving to EAST when migrating)."""
    raw: dict[str, object] = {
        "name": "t",
        "kind": "training",
        "resources": {"accelerator": "a800", "count": 2},
        "duration_hours": 10.0,
        "command": ["train"],
    }
    if checkpointing:
        raw["checkpoint"] = {"interval_hours": 1.0, "size_gb": 40.0}
    base = Job(
        job_id=J,
        tenant=TenantId("t"),
        spec=parse_spec(raw),
        state=state,
        site=WEST,
        attempt=3,
        pool="a800",
        migration_target=EAST if state == S.MIGRATING else None,
    )
    return replace(base, **extra)  # type: ignore[arg-type]


def moving(**extra: object) -> Job:
    """Migrating from WEST to EAST with checkpoint; its last exported checkpoint is OLD."""
    return job(S.MIGRATING, **{"migration_checkpoint": True, "restore_ref": OLD, **extra})


def stopped(ref: str = "", size: int = 0) -> AttemptReported:
    return AttemptReported(WEST, 3, S.CANCELLED, message="stopped", checkpoint_ref=ref,
                           checkpoint_bytes=size)  # fmt: skip


def only_write(effects: list[Effect]) -> Transition:
    [effect] = effects
    assert isinstance(effect, Write)
    return effect.transition


def at(site: SiteId) -> Allocation:
    return Allocation(site, (PoolShare("a800", 2),), 4.0, 16.0)


@pytest.mark.parametrize(
    ("the_job", "carried", "with_checkpoint"),
    [
        (job(S.RUNNING), True, True),
        (job(S.DISPATCHED), True, False),  # not started: nothing to checkpoint
        (job(S.PLACED), True, False),
        (job(S.RUNNING, checkpointing=False), True, False),
        # priced as a restart (a site of the move has no checkpoint store): carried out as one
        (job(S.RUNNING), False, False),
        (job(S.DISPATCHED), False, False),
    ],
    ids=["running", "dispatched", "placed", "not checkpointing", "restart", "restart unstarted"],
)
def test_a_move_is_with_checkpoint_only_for_a_running_checkpointing_job_priced_so(
    the_job: Job, carried: bool, with_checkpoint: bool
) -> None:
    begun = MigrationBegun(WEST, EAST, "cheaper", checkpoint=carried)
    t = only_write(machine.handle(the_job, begun))
    assert (t.new_state, t.migration_target, t.migration_checkpoint) == (
        S.MIGRATING,
        EAST,
        with_checkpoint,
    )


@pytest.mark.parametrize(
    ("flag", "asked", "expect"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_the_stop_checkpoints_only_when_the_move_is_with_checkpoint(
    flag: bool, asked: bool, expect: bool
) -> None:
    effects = machine.handle(moving(migration_checkpoint=flag), MigrationStop(asked))
    assert effects == [Stop(WEST, J, 3, "migrating to east", checkpoint=expect)]


TABLE: list[tuple[str, Job, AttemptReported, list[Effect]]] = [
    (
        "checkpoint exported: to the target, restoring it",
        moving(),
        stopped(NEW, 42),
        [PlaceAtTarget(J, EAST, f"stopped at west: stopped; checkpoint {NEW} (42 bytes)", 3,
                       restore_ref=NEW)],
    ),
    (
        "nothing exported: back to the source, keeping the last checkpoint",
        moving(),
        stopped(),
        [PlaceAtTarget(J, WEST, "stopped at west: stopped; checkpoint not taken or not exported:"
                       " back to west instead of east", 3, restore_ref=OLD,
                       cause=MIGRATION_FELL_BACK)],
    ),
    (
        "move without checkpoint: to the target, keeping the last checkpoint",
        moving(migration_checkpoint=False),
        stopped(),
        [PlaceAtTarget(J, EAST, "stopped at west: stopped", 3, restore_ref=OLD)],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("the_job", "report", "expect"), [r[1:] for r in TABLE],
                         ids=[r[0] for r in TABLE])  # fmt: skip
def test_a_stopped_migrating_attempt(
    the_job: Job, report: AttemptReported, expect: list[Effect]
) -> None:
    assert machine.handle(the_job, report) == expect


def test_placing_the_moved_job_records_and_dispatches_the_checkpoint() -> None:
    placed = Placed(at(EAST), cause="migrated", replacing=3, restore_ref=NEW)
    write, dispatch = machine.handle(moving(), placed)
    assert isinstance(write, Write)
    t = write.transition
    assert (t.new_state, t.site, t.attempt, t.cause, t.restore_ref) == (
        S.PLACED,
        EAST,
        4,
        "migrated",
        NEW,
    )
    assert dispatch == Dispatch(J, 4, EAST, "a800", restore_ref=NEW)


def test_the_fall_back_places_the_job_at_its_source_restoring_its_last_checkpoint() -> None:
    placed = Placed(at(WEST), cause=MIGRATION_FELL_BACK, replacing=3, restore_ref=OLD)
    write, dispatch = machine.handle(moving(), placed)
    assert isinstance(write, Write)
    assert (write.transition.site, write.transition.cause) == (WEST, MIGRATION_FELL_BACK)
    assert dispatch == Dispatch(J, 4, WEST, "a800", restore_ref=OLD)


def test_a_pending_job_is_dispatched_with_the_checkpoint_it_kept() -> None:
    effects = machine.handle(job(S.PENDING, site=None, restore_ref=OLD), Placed(at(EAST)))
    assert effects[1:] == [Dispatch(J, 4, EAST, "a800", restore_ref=OLD)]
    assert only_write(effects[:1]).restore_ref == OLD


@pytest.mark.parametrize(
    ("the_job", "stimulus", "expect_state", "expect_ref"),
    [
        # the source cannot take it either: a normal requeue, with the exported checkpoint
        (moving(), MigrationTargetUnavailable("full", replacing=3, restore_ref=NEW), S.PENDING,
         NEW),
        # no checkpoint is taken when a site is lost: the job keeps the last one exported
        (job(S.RUNNING, restore_ref=OLD), SiteLost(WEST), S.PENDING, None),
        (job(S.RUNNING, restore_ref=OLD), AttemptsListed(WEST, ()), S.PENDING, None),
        # stopped by its site or preempted with a checkpoint: it resumes from it
        (job(S.RUNNING, restore_ref=OLD), stopped(NEW), S.PENDING, NEW),
        (job(S.RUNNING, restore_ref=OLD), stopped(), S.PENDING, None),
        # a job that ends forgets its checkpoint
        (job(S.RUNNING, restore_ref=OLD), AttemptReported(WEST, 3, S.SUCCEEDED, 0), S.SUCCEEDED,
         ""),
        (job(S.RUNNING, restore_ref=OLD), AttemptReported(WEST, 3, S.FAILED, 1), S.FAILED, ""),
        (job(S.RUNNING, restore_ref=OLD, cancel_requested=True), stopped(NEW), S.CANCELLED, ""),
        (job(S.PENDING, site=None, restore_ref=OLD), CancelRequested(), S.CANCELLED, ""),
    ],
    ids=["source full", "site lost", "not listed", "stopped with ref", "stopped without ref",
         "succeeded", "failed", "cancelled", "cancelled while pending"],
)  # fmt: skip
def test_what_the_job_keeps_as_its_next_restore_point(
    the_job: Job, stimulus: object, expect_state: JobState, expect_ref: str | None
) -> None:
    t = only_write(machine.handle(the_job, stimulus))  # type: ignore[arg-type]
    assert (t.new_state, t.restore_ref) == (expect_state, expect_ref)


def test_a_move_whose_source_is_gone_restores_the_last_exported_checkpoint() -> None:
    effects = machine.handle(moving(), MigrationSourceGone("west lost"))
    assert effects == [PlaceAtTarget(J, EAST, "west lost", 3, restore_ref=OLD)]


def test_a_preempted_job_stops_with_a_checkpoint() -> None:
    effects = machine.handle(job(S.RUNNING), Preempt("reclaim"))
    assert effects == [Stop(WEST, J, 3, "reclaim", checkpoint=True)]


def test_a_redelivered_dispatch_carries_the_checkpoint() -> None:
    placed = job(S.PLACED, restore_ref=NEW)
    effects = machine.handle(placed, AttemptsListed(WEST, ()))
    assert effects == [Dispatch(J, 3, WEST, "a800", restore_ref=NEW)]
