"""The core's side of checkpoints: a stop with checkpoint waits for the export before its final
report, which says where the checkpoint went; a dispatch carries the checkpoint to restore."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from computenet.types import JobState
from site_agent.events import (
    CancelReceived,
    CheckpointExported,
    ExecutorReported,
    ExportCheckpoint,
    PersistAttempt,
    PersistReport,
    SendAck,
    SendReport,
    StartAttempt,
    Started,
    StopAttempt,
)
from site_agent.journal import Journal
from site_agent.records import AttemptRecord, Exit, Phase, Report
from site_agent.state import AgentState
from tests.site_agent.test_state import dispatch, record, running_state

MOVE = "moved to another site"


def stopped_with_checkpoint() -> AgentState:
    state = running_state()
    out = state.handle(CancelReceived("c", 5, "j1", 1, MOVE, checkpoint=True, now_ms=3000))
    assert out[-1] == StopAttempt(("j1", 1), MOVE, checkpoint=True)
    return state


def running_record(**changes: object) -> AttemptRecord:
    running = record(phase=Phase.LAUNCHED, handle="123", reported=JobState.RUNNING)
    return replace(running, **changes)  # type: ignore[arg-type]


def test_a_checkpoint_stop_is_remembered_with_the_attempt() -> None:
    state = running_state()
    out = state.handle(CancelReceived("c", 5, "j1", 1, MOVE, checkpoint=True, now_ms=3000))
    stopping = running_record(stop_reason=MOVE, stop_checkpoint=True)
    assert out == [
        PersistAttempt(stopping),
        SendAck(5),
        StopAttempt(("j1", 1), MOVE, checkpoint=True),
    ]


def test_the_end_of_a_checkpoint_stop_exports_before_reporting() -> None:
    state = stopped_with_checkpoint()
    out = state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "exit code 143", 4000))
    exporting = running_record(
        stop_reason=MOVE,
        stop_checkpoint=True,
        phase=Phase.EXPORTING,
        ended=Exit(JobState.CANCELLED, 143, MOVE),
    )
    assert out == [PersistAttempt(exporting), ExportCheckpoint(("j1", 1))]
    assert state.unacked == {}  # the running report was acknowledged; no final one yet


def test_the_final_report_carries_the_exported_checkpoint() -> None:
    state = stopped_with_checkpoint()
    state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "exit code 143", 4000))
    out = state.handle(CheckpointExported("e", "j1", 1, "j1/1", 4096, now_ms=5000))
    report = Report(2, "j1", 1, 10, JobState.CANCELLED, 143, MOVE, 5000, False, "j1/1", 4096)
    final = running_record(
        stop_reason=MOVE,
        stop_checkpoint=True,
        phase=Phase.FINAL,
        reported=JobState.CANCELLED,
        finished_unix_ms=5000,
    )
    assert out == [PersistAttempt(final), PersistReport(report), SendReport(report)]


def test_a_failed_export_reports_no_checkpoint() -> None:
    state = stopped_with_checkpoint()
    state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "", 4000))
    out = state.handle(CheckpointExported("e", "j1", 1, "", 4096, now_ms=5000))
    report = next(i.report for i in out if isinstance(i, SendReport))
    assert (report.state, report.checkpoint_ref, report.checkpoint_bytes) == (
        JobState.CANCELLED,
        "",
        0,
    )


def test_a_job_that_finishes_while_stopping_is_reported_at_once() -> None:
    state = stopped_with_checkpoint()
    out = state.handle(ExecutorReported("p", "j1", 1, JobState.SUCCEEDED, 0, "exit code 0", 4000))
    assert not any(isinstance(i, ExportCheckpoint) for i in out)
    report = next(i.report for i in out if isinstance(i, SendReport))
    assert (report.state, report.checkpoint_ref) == (JobState.SUCCEEDED, "")


def test_a_plain_cancel_exports_nothing() -> None:
    state = running_state()
    state.handle(CancelReceived("c", 5, "j1", 1, "user", now_ms=3000))
    out = state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "", 4000))
    assert not any(isinstance(i, ExportCheckpoint) for i in out)
    assert next(i.report for i in out if isinstance(i, SendReport)).state is JobState.CANCELLED


def test_an_exporting_attempt_is_not_stopped_or_ended_again() -> None:
    state = stopped_with_checkpoint()
    state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "", 4000))
    superseded = state.handle(replace(dispatch(delivery=6, attempt=2, token=20), now_ms=4500))
    assert not any(isinstance(i, StopAttempt) for i in superseded)
    assert state.handle(ExecutorReported("p", "j1", 1, JobState.CANCELLED, 0, "", 4600)) == []
    assert state.handle(CancelReceived("c", 7, "j1", 1, "again", checkpoint=True)) == [SendAck(7)]
    assert state.attempts[("j1", 1)].phase is Phase.EXPORTING
    assert [r.key for r in state.active()] == [("j1", 1), ("j1", 2)]


def test_an_export_cut_short_by_a_restart_is_done_again(tmp_path: Path) -> None:
    state = stopped_with_checkpoint()
    state.handle(ExecutorReported("p", "j1", 1, JobState.FAILED, 143, "", 4000))
    journal = Journal(tmp_path)
    journal.apply([PersistAttempt(r) for r in state.attempts.values()])
    snapshot = journal.load()
    journal.close()
    restarted = AgentState(snapshot)
    out = restarted.handle(Started("s", 9000, 9000))
    assert ExportCheckpoint(("j1", 1)) in out
    loaded = restarted.attempts[("j1", 1)]
    assert loaded.ended == Exit(JobState.CANCELLED, 143, MOVE)
    assert loaded.stop_checkpoint
    final = restarted.handle(CheckpointExported("e", "j1", 1, "j1/1", 10, now_ms=9500))
    persisted = [i.report for i in final if isinstance(i, PersistReport)]
    assert [(r.state, r.exit_code, r.checkpoint_ref) for r in persisted] == [
        (JobState.CANCELLED, 143, "j1/1")
    ]


def test_a_dispatch_carries_the_checkpoint_to_restore() -> None:
    state = running_state()
    out = state.handle(replace(dispatch(delivery=6, attempt=2, token=20), restore_ref="j1/1"))
    assert out[-1] == StartAttempt(record(attempt=2, token=20, restore_ref="j1/1"))


def test_reports_and_records_keep_checkpoint_fields_in_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    report = Report(1, "j1", 1, 10, JobState.CANCELLED, 143, MOVE, 5000, False, "j1/1", 4096)
    rec = record(restore_ref="j0/3", stop_checkpoint=True, phase=Phase.EXPORTING)
    rec = replace(rec, ended=Exit(JobState.CANCELLED, 143, MOVE))
    journal.apply([PersistAttempt(rec), PersistReport(report)])
    snapshot = journal.load()
    journal.close()
    assert snapshot.attempts == (rec,)
    assert snapshot.unacked == (report,)
