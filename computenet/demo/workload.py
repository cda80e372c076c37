"""The demo's slice of the traces: reading the normalised CSV, picking jobs, making job specs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

from computenet.spec import JobSpec
from computenet.workload import WorkloadError, WorkloadJob, export_jobs, load_jobs
from computenet.workload_spec import workload_spec

SECONDS_PER_DAY = 86_400.0
MIN_SLEEP_S = 0.05
LABEL_TRACE_JOB = "trace-job"
LABEL_SUBMIT_S = "trace-submit-s"


def read_workload(path: Path) -> list[WorkloadJob]:
    """Every job of a normalised workload CSV, in file order."""
    try:
        return load_jobs(path)
    except WorkloadError as exc:
        raise WorkloadFileError(str(exc)) from None


def write_workload(jobs: Sequence[WorkloadJob], path: Path) -> None:
    """Write jobs in the normalised CSV format, so the simulator replays exactly these jobs."""
    export_jobs(jobs, path)


class WorkloadFileError(ValueError):
    """The exported workload is missing, malformed, or has no jobs on the chosen day."""


def evenly(jobs: Sequence[WorkloadJob], k: int) -> list[WorkloadJob]:
    """`k` jobs spread evenly over `jobs` (the middle of each of k equal strata)."""
    if k >= len(jobs):
        return list(jobs)
    return [jobs[(2 * i + 1) * len(jobs) // (2 * k)] for i in range(k)]


def select_slice(jobs: Sequence[WorkloadJob], days: int, n: int) -> list[WorkloadJob]:
    """`n` jobs of the first `days` days of the timeline: half training, half inference, each
    kind spread evenly over its jobs in the window; a kind with too few jobs leaves its share
    to the other. Sorted by submit time."""
    end = days * SECONDS_PER_DAY
    by_kind: dict[str, list[WorkloadJob]] = {}
    for job in jobs:
        if 0 <= job.submit_s < end:
            by_kind.setdefault(job.kind, []).append(job)
    kinds = sorted(by_kind, key=lambda kind: len(by_kind[kind]))
    chosen: list[WorkloadJob] = []
    for index, kind in enumerate(kinds):
        share = math.ceil((n - len(chosen)) / (len(kinds) - index))
        chosen.extend(evenly(by_kind[kind], share))
    if not chosen:
        raise WorkloadFileError(f"no jobs in the first {days} trace days")
    return sorted(chosen, key=lambda j: (j.submit_s, j.job_id))


def like_for_like(
    jobs: Sequence[WorkloadJob], compression: float, max_job_s: float
) -> list[WorkloadJob]:
    """The slice as both arms run it: any model at its traced speed, durations capped.

    A demo job sleeps its duration over the compression whatever card it gets, so the jobs
    accept any model with no reference (no run is shortened by a faster card, in the broker or
    in the simulator), and a duration longer than `max_job_s` wall seconds is cut to that many
    trace seconds (`max_job_s` x compression) in the workload both arms replay, so the cards a
    job holds are held as long in both.
    """
    cap_s = max_job_s * compression
    return [
        dataclasses.replace(
            job,
            accelerators=(),
            reference="",
            workload="",
            duration_s=min(job.duration_s, cap_s),
        )
        for job in jobs
    ]


def auto_compression(jobs: Sequence[WorkloadJob], wall_s: float) -> float:
    """Trace seconds per wall second that play the slice's submissions in `wall_s`."""
    span_s = max(j.submit_s for j in jobs) - min(j.submit_s for j in jobs)
    return max(span_s / wall_s, 1.0)


def sleep_s(job: WorkloadJob, compression: float, max_job_s: float) -> float:
    """Wall seconds the job's stand-in command sleeps: its compressed duration, capped."""
    return max(MIN_SLEEP_S, min(job.duration_s / compression, max_job_s))


def job_spec(job: WorkloadJob, compression: float, max_job_s: float) -> JobSpec:
    """The JobSpec submitted for a trace job: the simulator's (computenet.workload_spec).

    Only the stand-in command (`sleep`, compressed) and the trace labels are the demo's own;
    the duration stays the real one, so the broker prices the job as the trace ran it.
    """
    return workload_spec(
        job,
        command=("sh", "-c", f"sleep {sleep_s(job, compression, max_job_s):.2f}"),
        labels={LABEL_TRACE_JOB: job.job_id[:128], LABEL_SUBMIT_S: f"{job.submit_s:g}"},
    )
