"""The demo's slice of the traces: reading the normalised CSV, picking jobs, making job specs."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_HOUR = 3600.0
MAX_DURATION_HOURS = 24 * 365
MIN_SLEEP_S = 0.05
COLUMNS = (
    "submit_s", "kind", "accelerator", "count", "duration_s", "origin", "dataset_gb",
    "user_region", "latency_slo_ms", "tenant", "job_id", "priority",
)  # fmt: skip
LABEL_TRACE_JOB = "trace-job"
LABEL_SUBMIT_S = "trace-submit-s"


class WorkloadFileError(ValueError):
    """The exported workload is missing, malformed, or has no jobs on the chosen day."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One row of the normalised workload CSV (docs/workloads.md)."""

    job_id: str
    submit_s: float
    kind: str
    accelerator: str
    count: int
    duration_s: float
    origin: str
    dataset_gb: float
    user_region: str
    latency_slo_ms: float | None
    tenant: str
    priority: int = 0

    @property
    def duration_hours(self) -> float:
        """Real (trace) run time in hours."""
        return self.duration_s / SECONDS_PER_HOUR


def _float(text: str | None, default: float | None = None) -> float | None:
    text = (text or "").strip()
    return float(text) if text else default


def job_from_row(row: dict[str, str], line: int) -> TraceJob:
    """One CSV row as a TraceJob; raises WorkloadFileError naming the line."""
    try:
        return TraceJob(
            job_id=row["job_id"].strip(),
            submit_s=float(row["submit_s"]),
            kind=row["kind"].strip(),
            accelerator=(row.get("accelerator") or "").strip(),
            count=int(float(row["count"])),
            duration_s=float(row["duration_s"]),
            origin=(row.get("origin") or "").strip(),
            dataset_gb=_float(row.get("dataset_gb"), 0.0) or 0.0,
            user_region=(row.get("user_region") or "").strip(),
            latency_slo_ms=_float(row.get("latency_slo_ms")),
            tenant=(row.get("tenant") or "").strip(),
            priority=int(_float(row.get("priority"), 0.0) or 0),
        )
    except (KeyError, ValueError) as exc:
        raise WorkloadFileError(f"line {line}: {exc}") from None


def read_workload(path: Path) -> list[TraceJob]:
    """Every job of a normalised workload CSV, in file order."""
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            return [job_from_row(row, n) for n, row in enumerate(csv.DictReader(stream), start=2)]
    except OSError as exc:
        raise WorkloadFileError(f"{path}: cannot read: {exc.strerror}") from None


def write_workload(jobs: Iterable[TraceJob], path: Path) -> None:
    """Write jobs in the normalised CSV format, so the simulator replays exactly these jobs."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(COLUMNS)
        for j in jobs:
            slo = "" if j.latency_slo_ms is None else f"{j.latency_slo_ms:g}"
            writer.writerow(
                (f"{j.submit_s:g}", j.kind, j.accelerator, j.count, repr(j.duration_s), j.origin,
                 f"{j.dataset_gb:g}", j.user_region, slo, j.tenant, j.job_id, j.priority)
            )  # fmt: skip


def evenly(jobs: Sequence[TraceJob], k: int) -> list[TraceJob]:
    """`k` jobs spread evenly over `jobs` (the middle of each of k equal strata)."""
    if k >= len(jobs):
        return list(jobs)
    return [jobs[(2 * i + 1) * len(jobs) // (2 * k)] for i in range(k)]


def select_slice(jobs: Sequence[TraceJob], days: int, n: int) -> list[TraceJob]:
    """`n` jobs of the first `days` days of the timeline: half training, half inference, each
    kind spread evenly over its jobs in the window; a kind with too few jobs leaves its share
    to the other. Sorted by submit time."""
    end = days * SECONDS_PER_DAY
    by_kind: dict[str, list[TraceJob]] = {}
    for job in jobs:
        if 0 <= job.submit_s < end:
            by_kind.setdefault(job.kind, []).append(job)
    kinds = sorted(by_kind, key=lambda kind: len(by_kind[kind]))
    chosen: list[TraceJob] = []
    for index, kind in enumerate(kinds):
        share = math.ceil((n - len(chosen)) / (len(kinds) - index))
        chosen.extend(evenly(by_kind[kind], share))
    if not chosen:
        raise WorkloadFileError(f"no jobs in the first {days} trace days")
    return sorted(chosen, key=lambda j: (j.submit_s, j.job_id))


def auto_compression(jobs: Sequence[TraceJob], wall_s: float) -> float:
    """Trace seconds per wall second that play the slice's submissions in `wall_s`."""
    span_s = max(j.submit_s for j in jobs) - min(j.submit_s for j in jobs)
    return max(span_s / wall_s, 1.0)


def sleep_s(job: TraceJob, compression: float, max_job_s: float) -> float:
    """Wall seconds the job's stand-in command sleeps: its compressed duration, capped."""
    return max(MIN_SLEEP_S, min(job.duration_s / compression, max_job_s))


def job_spec(job: TraceJob, compression: float, max_job_s: float) -> dict[str, Any]:
    """The JobSpec mapping submitted for a trace job.

    The duration stays the real one, so the broker prices the job as the trace ran it; only the
    stand-in command (`sleep`) is compressed. Inference holds `count` one-card replicas.
    """
    spec: dict[str, Any] = {
        "name": job.job_id[:128],
        "kind": job.kind,
        "duration_hours": min(job.duration_hours, MAX_DURATION_HOURS),
        "command": ["sh", "-c", f"sleep {sleep_s(job, compression, max_job_s):.2f}"],
        "labels": {LABEL_TRACE_JOB: job.job_id[:128], LABEL_SUBMIT_S: f"{job.submit_s:g}"},
        "priority": job.priority,
    }
    if job.kind == "inference":
        spec["resources"] = {"accelerator": job.accelerator, "count": 1 if job.count else 0}
        spec["inference"] = {
            "user_regions": [{"region": job.user_region}],
            "latency_slo_ms": job.latency_slo_ms or 15.0,
            "replicas": max(job.count, 1),
        }
    else:
        spec["resources"] = {"accelerator": job.accelerator, "count": job.count}
        if job.origin and job.dataset_gb > 0:
            spec["dataset"] = {"origin": job.origin, "size_gb": job.dataset_gb}
    return spec
