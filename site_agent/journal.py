"""The agent's durable state: attempts, reports and flags in SQLite, the leader epoch beside it."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from computenet.spec import JobSpec
from computenet.types import JobState
from site_agent.events import (
    ForgetAttempt,
    ForgetReport,
    Instruction,
    PersistAttempt,
    PersistDrain,
    PersistLeaderEpoch,
    PersistReport,
)
from site_agent.records import AttemptRecord, Exit, Phase, Report, Snapshot

log = logging.getLogger(__name__)

JOURNAL_FILE = "journal.sqlite3"
LEADER_EPOCH_FILE = "leader_epoch"
"""The highest broker leader epoch welcomed, as decimal text. A file of its own, not a journal
row, so an operator whose broker cluster restarted its epochs can remove it by hand."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE IF NOT EXISTS reports (report_id INTEGER PRIMARY KEY, report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Journal:
    """SQLite in WAL mode with synchronous=FULL: a committed batch survives a crash or power loss.

    One `apply` call is one transaction, so the records an event changes land together.
    """

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / JOURNAL_FILE
        self.leader_epoch_path = state_dir / LEADER_EPOCH_FILE
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def load(self) -> Snapshot:
        """Everything persisted so far."""
        attempts = tuple(
            _record_from_json(row[0])
            for row in self._db.execute("SELECT record FROM attempts ORDER BY job_id, attempt")
        )
        reports = tuple(
            _report_from_json(row[0])
            for row in self._db.execute("SELECT report FROM reports ORDER BY report_id")
        )
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        next_id = int(meta.get("next_report_id", "1"))
        if reports:
            next_id = max(next_id, reports[-1].report_id + 1)
        return Snapshot(
            attempts=attempts,
            unacked=reports,
            next_report_id=next_id,
            drained=meta.get("drained") == "1",
            leader_epoch=self._load_leader_epoch(),
        )

    def _load_leader_epoch(self) -> int:
        try:
            text = self.leader_epoch_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("leader epoch unreadable path=%s error=%s", self.leader_epoch_path, exc)
            return 0
        if not text.isdigit():
            # written by rename, so never torn; anything else was put there by hand
            log.warning("leader epoch not a number path=%s", self.leader_epoch_path)
            return 0
        return int(text)

    def apply(self, instructions: list[Instruction]) -> None:
        """Write the persist instructions among `instructions` in one transaction."""
        writes = [i for i in instructions if _is_persist(i)]
        for item in writes:
            if isinstance(item, PersistLeaderEpoch):
                self._write_leader_epoch(item.leader_epoch)
        writes = [i for i in writes if not isinstance(i, PersistLeaderEpoch)]
        if not writes:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for item in writes:
                self._write(item)

    def _write(self, item: Instruction) -> None:
        if isinstance(item, PersistAttempt):
            r = item.record
            self._db.execute(
                "INSERT OR REPLACE INTO attempts (job_id, attempt, record) VALUES (?, ?, ?)",
                (r.job_id, r.attempt, _record_to_json(r)),
            )
        elif isinstance(item, ForgetAttempt):
            self._db.execute(
                "DELETE FROM attempts WHERE job_id = ? AND attempt = ?", (item.key[0], item.key[1])
            )
        elif isinstance(item, PersistReport):
            rep = item.report
            self._db.execute(
                "INSERT OR REPLACE INTO reports (report_id, report) VALUES (?, ?)",
                (rep.report_id, _report_to_json(rep)),
            )
            self._set("next_report_id", str(rep.report_id + 1))
        elif isinstance(item, ForgetReport):
            self._db.execute("DELETE FROM reports WHERE report_id = ?", (item.report_id,))
        elif isinstance(item, PersistDrain):
            self._set("drained", "1" if item.drained else "0")

    def _write_leader_epoch(self, epoch: int) -> None:
        """Replace the epoch file durably: write a temporary file, fsync, rename, fsync the dir."""
        temporary = self.leader_epoch_path.with_name(LEADER_EPOCH_FILE + ".tmp")
        with open(temporary, "w", encoding="ascii") as handle:
            handle.write(f"{epoch}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.leader_epoch_path)
        directory = os.open(self.leader_epoch_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        """Checkpoint and close the database (idempotent)."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.ProgrammingError:
            return
        self._db.close()


def _is_persist(item: Instruction) -> bool:
    return isinstance(
        item,
        PersistAttempt
        | ForgetAttempt
        | PersistReport
        | ForgetReport
        | PersistDrain
        | PersistLeaderEpoch,
    )


def _record_to_json(r: AttemptRecord) -> str:
    data: dict[str, Any] = {
        "job_id": r.job_id,
        "attempt": r.attempt,
        "fencing_token": r.fencing_token,
        "tenant": r.tenant,
        "spec": r.spec.model_dump(mode="json") if r.spec is not None else None,
        "phase": r.phase.value,
        "handle": r.handle,
        "reported": r.reported.value if r.reported is not None else None,
        "stop_reason": r.stop_reason,
        "final_acked": r.final_acked,
        "finished_unix_ms": r.finished_unix_ms,
        "restore_ref": r.restore_ref,
        "stop_checkpoint": r.stop_checkpoint,
        "ended": _exit_to_json(r.ended),
    }
    return json.dumps(data, sort_keys=True)


def _exit_to_json(ended: Exit | None) -> dict[str, Any] | None:
    if ended is None:
        return None
    return {"state": ended.state.value, "exit_code": ended.exit_code, "message": ended.message}


def _exit_from_json(data: Any) -> Exit | None:
    if not data:
        return None
    return Exit(JobState(data["state"]), data["exit_code"], data["message"])


def _record_from_json(text: str) -> AttemptRecord:
    d = json.loads(text)
    return AttemptRecord(
        job_id=d["job_id"],
        attempt=d["attempt"],
        fencing_token=d["fencing_token"],
        tenant=d["tenant"],
        spec=_spec_from_json(d["job_id"], d["spec"]),
        phase=Phase(d["phase"]),
        handle=d["handle"],
        reported=JobState(d["reported"]) if d["reported"] else None,
        stop_reason=d["stop_reason"],
        final_acked=d["final_acked"],
        finished_unix_ms=d["finished_unix_ms"],
        # absent in journals written before checkpoints were exported
        restore_ref=d.get("restore_ref", ""),
        stop_checkpoint=d.get("stop_checkpoint", False),
        ended=_exit_from_json(d.get("ended")),
    )


def _spec_from_json(job_id: str, data: Any) -> JobSpec | None:
    """The stored spec, or None if this version refuses it (the attempt then fails to launch).

    A spec an older agent accepted must never keep the agent from starting.
    """
    if data is None:
        return None
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        log.warning("stored spec no longer valid job_id=%s errors=%d", job_id, exc.error_count())
        return None


def _report_to_json(r: Report) -> str:
    data = {
        "report_id": r.report_id,
        "job_id": r.job_id,
        "attempt": r.attempt,
        "fencing_token": r.fencing_token,
        "state": r.state.value,
        "exit_code": r.exit_code,
        "message": r.message,
        "time_unix_ms": r.time_unix_ms,
        "launch_failed": r.launch_failed,
        "checkpoint_ref": r.checkpoint_ref,
        "checkpoint_bytes": r.checkpoint_bytes,
    }
    return json.dumps(data, sort_keys=True)


def _report_from_json(text: str) -> Report:
    d = json.loads(text)
    return Report(**{**d, "state": JobState(d["state"])})
