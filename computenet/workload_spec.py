"""The JobSpec a workload job becomes, the same for the simulator and the demo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from computenet.printable import escaped
from computenet.spec import MAX_NAME_CHARS, Dataset, InferenceSpec, JobSpec, RegionDemand, Resources
from computenet.workload import DEFAULT_SLO_MS, WorkloadJob

SIMULATED_COMMAND = ("simulated",)
MAX_DURATION_H = 24 * 365
MIN_DURATION_H = 1e-6
MAX_SLO_MS = 10_000.0
MAX_PRIORITY = 1000


def workload_spec(
    job: WorkloadJob,
    *,
    command: Sequence[str] = SIMULATED_COMMAND,
    labels: Mapping[str, str] | None = None,
) -> JobSpec:
    """The JobSpec of a workload job; only `command` and `labels` differ between callers.

    Cards only: no host cores or memory, so a job's power is its cards' alone. Inference jobs
    become `count` one-card replicas serving their user region within their SLO (the workload
    default if they have none); training and batch jobs are gangs with their dataset at
    `origin`. A job accepting several models keeps them, its reference model and its workload
    class, so placement scales its run time by the chosen model's speed. The duration is the
    real one (on the reference model), clipped to the spec's one-year ceiling (a replay
    still runs the real duration); priorities are clipped to the spec's range.
    """
    serving = job.kind == "inference"
    inference = None
    if serving:
        inference = InferenceSpec(
            user_regions=(RegionDemand(region=job.user_region, weight=1.0),),
            latency_slo_ms=min(job.latency_slo_ms or DEFAULT_SLO_MS, MAX_SLO_MS),
            replicas=max(job.count, 1),
        )
    dataset = None
    if not serving and job.origin:
        dataset = Dataset(origin=job.origin, size_gb=job.dataset_gb)
    return JobSpec(
        # Trace ids come from outside: any control character is written out, not refused.
        name=escaped(job.job_id)[:MAX_NAME_CHARS] or "job",
        kind=job.kind,
        resources=Resources(
            accelerator="" if job.accelerators else job.accelerator,
            accelerators=job.accelerators,
            reference=job.reference if job.accelerators or job.accelerator else "",
            workload=job.workload,
            count=min(job.count, 1) if serving else job.count,
            cpu_cores=0.0,
            memory_gb=0.0,
        ),
        gang=not serving,
        duration_hours=min(max(job.duration_h, MIN_DURATION_H), MAX_DURATION_H),
        dataset=dataset,
        inference=inference,
        priority=max(-MAX_PRIORITY, min(MAX_PRIORITY, job.priority)),
        command=tuple(command),
        labels=dict(labels or {}),
    )
