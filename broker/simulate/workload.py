"""Workload resolution: named traces or normalised CSV files, merged on one timeline and limited."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from broker.simulate import traces
from broker.simulate.regions import assign_locations
from broker.simulate.trace_gpus import ALIBABA_2023_GPU, PHILLY_GPU, accept_training_parts
from computenet.workload import WorkloadError, WorkloadJob, load_jobs
from topology import Topology

DEFAULT_LIMIT = 5000

NAMED: dict[str, Callable[[Topology, int], list[WorkloadJob]]] = {
    "philly": lambda topology, seed: accept_training_parts(
        traces.philly_jobs(), topology, PHILLY_GPU
    ),
    "alibaba-gpu2023": lambda topology, seed: accept_training_parts(
        traces.alibaba_gpu2023_jobs(), topology, ALIBABA_2023_GPU
    ),
    "alibaba-genai": traces.genai_jobs,
}


@dataclass(frozen=True, slots=True)
class Workload:
    """The merged jobs (sorted by submit time) and the names they came from."""

    name: str
    jobs: tuple[WorkloadJob, ...]


def _load_one(name: str, topology: Topology, seed: int) -> list[WorkloadJob]:
    loader = NAMED.get(name)
    if loader is not None:
        return loader(topology, seed)
    path = Path(name)
    if not path.is_file():
        known = ", ".join(sorted(NAMED))
        raise WorkloadError(f"unknown workload {name!r}: not one of {known} and not a file")
    return load_jobs(path)


def _align_to_day_zero(jobs: list[WorkloadJob]) -> list[WorkloadJob]:
    """Shift by whole days so the first job falls on day 0, keeping each job's time of day."""
    if not jobs:
        return jobs
    shift_s = math.floor(min(j.submit_s for j in jobs) / traces.SECONDS_PER_DAY)
    shift_s *= int(traces.SECONDS_PER_DAY)
    if shift_s == 0:
        return jobs
    return [dataclasses.replace(j, submit_s=j.submit_s - shift_s) for j in jobs]


def load_workload(
    spec: str, topology: Topology, *, seed: int, limit: int | None = DEFAULT_LIMIT
) -> Workload:
    """Load comma-separated workloads, merge them on one timeline and keep the first `limit` jobs.

    Each workload's first day becomes day 0; ties in submit time keep the listed order. Empty
    origins and user regions are then filled by the seeded draw of `assign_locations`.
    """
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise WorkloadError("no workload given")
    tagged: list[tuple[float, int, int, WorkloadJob]] = []
    seen: set[str] = set()
    for order, name in enumerate(names):
        for row, job in enumerate(_align_to_day_zero(_load_one(name, topology, seed))):
            if job.job_id in seen:
                job = dataclasses.replace(job, job_id=f"{job.job_id}#{order}")
            seen.add(job.job_id)
            tagged.append((job.submit_s, order, row, job))
    tagged.sort(key=lambda item: item[:3])
    merged = [job for *_, job in tagged]
    if limit is not None:
        merged = merged[: max(limit, 0)]
    return Workload(name=",".join(names), jobs=tuple(assign_locations(merged, topology, seed)))


def peak_training_cards(jobs: Iterable[WorkloadJob]) -> int:
    """Most training cards the workload would hold at once if every job started on arrival."""
    events = sorted(
        (t, delta)
        for job in jobs
        if job.kind == "training"
        for t, delta in ((job.submit_s, job.count), (job.submit_s + job.duration_s, -job.count))
    )
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak
