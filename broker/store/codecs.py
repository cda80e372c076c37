"""Conversion between store rows (column mappings) and the domain objects the broker sees."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from broker.store.protocol import Hold, NewJob, SiteRecord
from computenet.spec import JobSpec
from computenet.types import Job, JobEvent, JobId, JobState, SiteId, SiteStatus, TenantId

Row = Mapping[Any, Any]
"""A row as a mapping of column name to value (SQLAlchemy `Row._mapping`)."""


def spec_sha256(spec_json: str) -> str:
    """Hex sha256 of a spec's canonical JSON: what idempotent resubmission compares."""
    return hashlib.sha256(spec_json.encode("utf-8")).hexdigest()


def job_to_row(new: NewJob, spec_json: str, sequence: int) -> dict[str, Any]:
    """The jobs row of a new submission whose first event has `sequence`."""
    return {
        "job_id": new.job_id,
        "created_seq": sequence,
        "tenant": new.tenant,
        "request_id": new.request_id,
        "kind": new.spec.kind,
        "state": JobState.PENDING.value,
        "site": None,
        "spec_json": spec_json,
        "attempt": 0,
        "reason": "",
        "exit_code": None,
        "placement_json": None,
        "cancel_requested": False,
        "migration_target": None,
        "pool": "",
        "last_sequence": sequence,
        "created_unix_ms": new.time_unix_ms,
        "updated_unix_ms": new.time_unix_ms,
    }


def job_from_row(row: Row, spec: JobSpec | None = None) -> Job:
    """The domain job of a jobs row; `spec` skips parsing when the caller already has it."""
    return Job(
        job_id=JobId(row["job_id"]),
        tenant=TenantId(row["tenant"]),
        spec=spec if spec is not None else JobSpec.model_validate_json(row["spec_json"]),
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
