"""Translation of simulator jobs into the job specs the placement engine decides on."""

from __future__ import annotations

from computenet.spec import Dataset, InferenceSpec, JobSpec, RegionDemand, Resources
from computenet.workload import WorkloadJob

MAX_DURATION_H = 24 * 365
_COMMAND = ("simulated",)


def job_spec(job: WorkloadJob) -> JobSpec:
    """The JobSpec of a simulated job: cards only (no host cores or memory, so no host power).

    Inference jobs become `count` one-card replicas serving their user region within the SLO;
    training and batch jobs are gangs with their dataset at `origin`. Durations beyond the
    spec's one-year ceiling are clipped for the engine only; the replay uses the real duration.
    """
    serving = job.kind == "inference"
    resources = Resources(
        accelerator=job.accelerator,
        count=min(job.count, 1) if serving else job.count,
        cpu_cores=0.0,
        memory_gb=0.0,
    )
    inference = None
    if serving:
        inference = InferenceSpec(
            user_regions=(RegionDemand(region=job.user_region, weight=1.0),),
            latency_slo_ms=job.latency_slo_ms or 1e4,
            replicas=max(job.count, 1),
        )
    dataset = None
    if not serving and job.origin:
        dataset = Dataset(origin=job.origin, size_gb=job.dataset_gb)
    return JobSpec(
        name=job.job_id[:128],
        kind=job.kind,
        resources=resources,
        gang=not serving,
        duration_hours=min(max(job.duration_h, 1e-6), MAX_DURATION_H),
        dataset=dataset,
        inference=inference,
        priority=max(-1000, min(1000, job.priority)),
        command=_COMMAND,
    )
