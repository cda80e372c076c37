"""The serving demand a replay expects per user region, from the workload's own arrival rates."""

from __future__ import annotations

from collections.abc import Sequence

from broker.placement.serving import ServingDemand
from computenet.offered_load import arrival_window, card_hours
from computenet.workload import DEFAULT_SLO_MS, WorkloadJob


def expected_serving(jobs: Sequence[WorkloadJob]) -> tuple[ServingDemand, ...]:
    """Cards the inference jobs keep busy on average, per (user region, SLO), over the window.

    The card-hours the region's inference would hold inside the arrival window (the offered
    load's measure, computenet/offered_load.py) over the window's hours: its mean arrival rate
    x cards x hours (Little's law). A forecast of the kind an operator would keep per region,
    not knowledge of when each job arrives. Empty without a window.
    """
    window = arrival_window(jobs)
    if window.hours <= 0:
        return ()
    held: dict[tuple[str, float], float] = {}
    for job in jobs:
        if job.kind != "inference" or not job.user_region:
            continue
        key = (job.user_region, job.latency_slo_ms or DEFAULT_SLO_MS)
        held[key] = held.get(key, 0.0) + card_hours(job, window)
    return tuple(
        ServingDemand(region, cards / window.hours, slo)
        for (region, slo), cards in sorted(held.items())
        if cards > 0
    )
