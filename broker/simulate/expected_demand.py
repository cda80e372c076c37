"""The demand a replay expects over its window, from the workload's own arrival rates."""

from __future__ import annotations

from collections.abc import Sequence

from broker.placement.headroom import ExpectedDemand, ScaledDemand, ServingDemand
from computenet.offered_load import arrival_window, card_hours
from computenet.workload import DEFAULT_SLO_MS, WorkloadJob

DEFAULT_WORKLOAD = "generic"


def expected_demand(jobs: Sequence[WorkloadJob]) -> ExpectedDemand:
    """Cards the jobs keep busy on average over the arrival window, per kind of demand.

    Each job counts the card-hours it would hold inside the window from its arrival (the
    offered load's measure, computenet/offered_load.py) over the window's hours: its mean
    arrival rate x cards x hours (Little's law). Inference counts per (user region, SLO);
    training and batch jobs with a reference model per (reference, workload class, accepted
    models), on their reference. A forecast of the kind an operator keeps per region and class,
    not knowledge of when each job arrives. Empty without a window.
    """
    window = arrival_window(jobs)
    if window.hours <= 0:
        return ExpectedDemand()
    serving: dict[tuple[str, float], float] = {}
    scaled: dict[tuple[str, str, tuple[str, ...]], float] = {}
    for job in jobs:
        if job.kind == "inference":
            if job.user_region:
                key = (job.user_region, job.latency_slo_ms or DEFAULT_SLO_MS)
                serving[key] = serving.get(key, 0.0) + card_hours(job, window)
        elif job.reference:
            models = tuple(job.accelerators) or ((job.accelerator,) if job.accelerator else ())
            work = (job.reference, job.workload or DEFAULT_WORKLOAD, models)
            scaled[work] = scaled.get(work, 0.0) + card_hours(job, window)
    hours = window.hours
    return ExpectedDemand(
        serving=tuple(
            ServingDemand(region, held / hours, slo)
            for (region, slo), held in sorted(serving.items())
            if held > 0
        ),
        scaled=tuple(
            ScaledDemand(reference, workload, models, held / hours)
            for (reference, workload, models), held in sorted(scaled.items())
            if held > 0
        ),
    )
