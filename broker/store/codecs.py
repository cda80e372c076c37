"""Conversion between store rows (column mappings) and the domain objects the broker sees."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from broker.store.protocol import Hold, SiteRecord
from computenet.rebalance_types import MoveKind, RebalanceMove, RebalanceRunInfo
from computenet.spec import JobSpec
from computenet.spec_limits import ACCEPTED
from computenet.types import (
    Job,
    JobEvent,
    JobId,
    JobState,
    SiteId,
    SiteStatus,
    StartFailure,
    TenantId,
)

if TYPE_CHECKING:
    from broker.store.submission import Submission

Row = Mapping[Any, Any]
"""A row as a mapping of column name to value (SQLAlchemy `Row._mapping`)."""

SUBMITTED_CAUSE = "submitted"
"""Cause of every job's first event."""


def spec_sha256(spec_json: str) -> str:
    """Hex sha256 of a spec's canonical JSON: what idempotent resubmission compares."""
    return hashlib.sha256(spec_json.encode("utf-8")).hexdigest()


def job_to_row(submission: Submission, sequence: int) -> dict[str, Any]:
    """The jobs row of a new submission whose first event has `sequence`."""
    return {
        "job_id": submission.job_id,
        "created_seq": sequence,
        "tenant": submission.tenant,
        "request_id": submission.request_id,
        "kind": submission.kind,
        "state": JobState.PENDING.value,
        "site": None,
        "spec_json": submission.spec_json,
        "attempt": 0,
        "reason": "",
        "exit_code": None,
        "placement_json": None,
        "cancel_requested": False,
        "migration_target": None,
        "pool": "",
        "start_failures_json": "[]",
        "not_before_unix_ms": 0,
        "migration_checkpoint": False,
        "restore_ref": "",
        "last_sequence": sequence,
        "created_unix_ms": submission.time_unix_ms,
        "updated_unix_ms": submission.time_unix_ms,
    }


def key_to_row(submission: Submission, spec_digest: str) -> dict[str, Any]:
    """The idempotency_keys row of a new submission."""
    return {
        "tenant": submission.tenant,
        "request_id": submission.request_id,
        "job_id": submission.job_id,
        "spec_sha256": spec_digest,
    }


def first_event_row(submission: Submission, sequence: int) -> dict[str, Any]:
    """The job_events row of a new submission's first event (PENDING, `submitted`)."""
    return {
        "sequence": sequence,
        "job_id": submission.job_id,
        "tenant": submission.tenant,
        "kind": submission.kind,
        "state": JobState.PENDING.value,
        "cause": SUBMITTED_CAUSE,
        "time_unix_ms": submission.time_unix_ms,
        "site": None,
        "attempt": 0,
        "message": "",
        "exit_code": None,
    }


def job_from_row(row: Row, spec: JobSpec | None = None) -> Job:
    """The domain job of a jobs row; `spec` skips parsing when the caller already has it."""
    return Job(
        job_id=JobId(row["job_id"]),
        tenant=TenantId(row["tenant"]),
        spec=spec
        if spec is not None
        else JobSpec.model_validate_json(row["spec_json"], context=ACCEPTED),
        state=JobState(row["state"]),
        site=SiteId(row["site"]) if row["site"] is not None else None,
        attempt=row["attempt"],
        reason=row["reason"],
        exit_code=row["exit_code"],
        last_sequence=row["last_sequence"],
        created_unix_ms=row["created_unix_ms"],
        updated_unix_ms=row["updated_unix_ms"],
        request_id=row["request_id"],
        cancel_requested=bool(row["cancel_requested"]),
        migration_target=SiteId(row["migration_target"]) if row["migration_target"] else None,
        pool=row["pool"],
        start_failures=start_failures_from_json(row["start_failures_json"]),
        not_before_unix_ms=row["not_before_unix_ms"],
        migration_checkpoint=bool(row["migration_checkpoint"]),
        restore_ref=row["restore_ref"],
    )


def start_failures_to_json(failures: tuple[StartFailure, ...]) -> str:
    """The stored form of a job's failed starts."""
    return json.dumps(
        [[f.attempt, f.site, f.reason, f.launch_failed] for f in failures],
        separators=(",", ":"),
    )


def start_failures_from_json(text: str | None) -> tuple[StartFailure, ...]:
    """A job's failed starts from their stored form."""
    return tuple(
        StartFailure(int(attempt), SiteId(site), str(reason), bool(launch_failed))
        for attempt, site, reason, launch_failed in json.loads(text or "[]")
    )


def event_to_row(event: JobEvent, *, tenant: str, kind: str) -> dict[str, Any]:
    """The job_events row of an event; tenant and kind are copied for filtered watches."""
    return {
        "sequence": event.sequence,
        "job_id": event.job_id,
        "tenant": tenant,
        "kind": kind,
        "state": event.state.value,
        "cause": event.cause,
        "time_unix_ms": event.time_unix_ms,
        "site": event.site,
        "attempt": event.attempt,
        "message": event.message,
        "exit_code": event.exit_code,
    }


def event_from_row(row: Row) -> JobEvent:
    """The domain event of a job_events row."""
    return JobEvent(
        sequence=row["sequence"],
        job_id=JobId(row["job_id"]),
        state=JobState(row["state"]),
        cause=row["cause"],
        time_unix_ms=row["time_unix_ms"],
        site=SiteId(row["site"]) if row["site"] is not None else None,
        attempt=row["attempt"],
        message=row["message"],
        exit_code=row["exit_code"],
    )


def hold_to_row(hold: Hold) -> dict[str, Any]:
    """The holds row of a hold."""
    return {
        "job_id": hold.job_id,
        "attempt": hold.attempt,
        "site": hold.site,
        "accelerator": hold.pool,
        "count": hold.count,
        "cpu_cores": hold.cpu_cores,
        "memory_gb": hold.memory_gb,
        "expected_end_unix_ms": hold.expected_end_unix_ms,
    }


def hold_from_row(row: Row) -> Hold:
    """The domain hold of a holds row."""
    return Hold(
        job_id=JobId(row["job_id"]),
        attempt=row["attempt"],
        site=SiteId(row["site"]),
        pool=row["accelerator"],
        count=row["count"],
        cpu_cores=row["cpu_cores"],
        memory_gb=row["memory_gb"],
        expected_end_unix_ms=row["expected_end_unix_ms"],
    )


def site_to_row(record: SiteRecord) -> dict[str, Any]:
    """The sites row of a site record."""
    return {
        "site_id": record.site_id,
        "status": record.status.value,
        "last_report_unix_ms": record.last_report_unix_ms,
        "report_json": record.report_json,
        "executor": record.executor,
        "agent_version": record.agent_version,
        "agent_epoch": record.agent_epoch,
        "drained": record.drained,
    }


def site_from_row(row: Row) -> SiteRecord:
    """The site record of a sites row."""
    return SiteRecord(
        site_id=SiteId(row["site_id"]),
        status=SiteStatus(row["status"]),
        last_report_unix_ms=row["last_report_unix_ms"],
        report_json=row["report_json"],
        executor=row["executor"],
        agent_version=row["agent_version"],
        agent_epoch=row["agent_epoch"],
        drained=bool(row["drained"]),
    )


def run_to_row(run: RebalanceRunInfo) -> dict[str, Any]:
    """The rebalance_runs row of a run record; moves and errors are kept as JSON."""
    return {
        "run_id": run.run_id,
        "trigger": run.trigger,
        "dry_run": run.dry_run,
        "started_unix_ms": run.started_unix_ms,
        "ended_unix_ms": run.ended_unix_ms,
        "expected_savings_cny": run.expected_savings_cny,
        "realised_savings_cny": run.realised_savings_cny,
        "moves_json": json.dumps([_move_to_json(m) for m in run.moves]),
        "errors_json": json.dumps(list(run.errors)),
    }


def run_from_row(row: Row) -> RebalanceRunInfo:
    """The run record of a rebalance_runs row."""
    return RebalanceRunInfo(
        run_id=str(row["run_id"]),
        trigger=str(row["trigger"]),
        dry_run=bool(row["dry_run"]),
        started_unix_ms=int(row["started_unix_ms"]),
        ended_unix_ms=int(row["ended_unix_ms"]),
        moves=tuple(_move_from_json(d) for d in json.loads(str(row["moves_json"]))),
        expected_savings_cny=float(row["expected_savings_cny"]),
        realised_savings_cny=float(row["realised_savings_cny"]),
        errors=tuple(str(e) for e in json.loads(str(row["errors_json"]))),
    )


def _move_to_json(move: RebalanceMove) -> dict[str, object]:
    # A pending job's move has no source: stored as null, as brokers before 0002 stored it.
    return {
        "job_id": move.job_id,
        "kind": move.kind.value,
        "from_site": move.from_site or None,
        "to_site": move.to_site,
        "savings_cny": move.savings_cny,
        "savings_carbon_kg": move.savings_carbon_kg,
        "cost_cny": move.cost_cny,
        "reason": move.reason,
        "applied": move.applied,
        "error": move.error,
    }


def _move_from_json(d: Mapping[str, Any]) -> RebalanceMove:
    return RebalanceMove(
        job_id=str(d["job_id"]),
        kind=MoveKind(str(d["kind"])),
        from_site=str(d["from_site"] or ""),
        to_site=str(d["to_site"]),
        savings_cny=float(d["savings_cny"]),
        savings_carbon_kg=float(d["savings_carbon_kg"]),
        cost_cny=float(d["cost_cny"]),
        reason=str(d["reason"]),
        applied=bool(d["applied"]),
        error=str(d["error"]),
    )
