"""The demo federation's size: every topology pool scaled so the slice is short of cards."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from computenet.offered_load import (
    OfferedLoad,
    PoolCards,
    fits_somewhere,
    offered_load,
    scale_arrivals,
)
from computenet.workload import WorkloadJob
from topology import Topology
from topology.pool_fit import pools_by_watts

SCALE_RANGE = (1e-4, 1.0)
SCALE_STEP = 0.8
SCALE_BISECTIONS = 20
ARRIVAL_RANGE = (0.01, 100.0)
MIN_SITES = 2


def scaled_pools(topology: Topology, scale: float) -> dict[str, list[tuple[str, int]]]:
    """(model, cards) of every pool by site at a capacity scale, by the simulator's rounding
    (topology.pool_fit), so the agents and the simulator's baseline offer the same cards."""
    return {s.id: [(p.model, p.cards) for p in pools_by_watts(s, scale)] for s in topology.sites}


def _cards_by_model(pools: PoolCards) -> dict[str, int]:
    out: dict[str, int] = {}
    for site_pools in pools.values():
        for model, cards in site_pools:
            out[model] = out.get(model, 0) + cards
    return out


def too_large(jobs: Sequence[WorkloadJob], pools: PoolCards) -> list[WorkloadJob]:
    """Jobs no site could hold even with every card free (the simulator's "too large")."""
    models = frozenset(m for site_pools in pools.values() for m, _ in site_pools)
    return [job for job in jobs if not fits_somewhere(job, pools, models)]


@dataclass(frozen=True, slots=True)
class DemoLoad:
    """The federation the demo runs on and the load its slice offers it."""

    scale: float
    cards: int
    offered: OfferedLoad
    too_large: tuple[str, ...]
    """Trace job ids no pool can hold at this scale."""

    def to_json(self) -> dict[str, object]:
        """The `offered_load` object of the demo's JSON summary."""
        return {
            **self.offered.to_json(),
            "capacity_scale": self.scale,
            "cards": self.cards,
            "too_large": len(self.too_large),
        }


def slice_load(jobs: Sequence[WorkloadJob], topology: Topology, scale: float) -> DemoLoad:
    """The offered load of the jobs that fit some pool, on the pools at `scale` (the
    simulator's definition, computenet.offered_load)."""
    pools = scaled_pools(topology, scale)
    large = too_large(jobs, pools)
    skip = {job.job_id for job in large}
    servable = [job for job in jobs if job.job_id not in skip]
    return DemoLoad(
        scale=scale,
        cards=sum(cards for site_pools in pools.values() for _, cards in site_pools),
        offered=offered_load(servable, _cards_by_model(pools)),
        too_large=tuple(sorted(skip)),
    )


def _cramped(jobs: Sequence[WorkloadJob], topology: Topology, scale: float) -> bool:
    """True if some job fits the pools of fewer than MIN_SITES sites at this scale."""
    pools = scaled_pools(topology, scale)
    models = frozenset(m for site_pools in pools.values() for m, _ in site_pools)
    for job in jobs:
        holding = sum(fits_somewhere(job, {s: ps}, models) for s, ps in pools.items())
        if holding < MIN_SITES:
            return True
    return False


def smallest_scale(jobs: Sequence[WorkloadJob], topology: Topology) -> float:
    """The smallest capacity scale at which every job fits the pools of MIN_SITES sites (so the
    largest gangs do not queue behind one pool for the whole demo).

    Walking down from the full federation in steps of SCALE_STEP to the first scale at which a
    job no longer does, then bisecting against the step above it.
    """
    scale = SCALE_RANGE[1]
    if _cramped(jobs, topology, scale):
        return scale
    while scale * SCALE_STEP >= SCALE_RANGE[0]:
        lower = scale * SCALE_STEP
        if _cramped(jobs, topology, lower):
            for _ in range(SCALE_BISECTIONS):
                middle = math.sqrt(lower * scale)
                if _cramped(jobs, topology, middle):
                    lower = middle
                else:
                    scale = middle
            return scale
        scale = lower
    return scale


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """The slice as both arms run it, the pace it is played at and the federation it runs on."""

    jobs: tuple[WorkloadJob, ...]
    compression: float
    """Trace seconds per wall second."""
    arrival_factor: float
    """How much the slice's trace arrivals were compressed to reach the load."""
    load: DemoLoad


Prepare = Callable[[Sequence[WorkloadJob]], tuple[list[WorkloadJob], float]]
"""Turns arrival-scaled jobs into the jobs both arms run, with the compression they play at."""


def plan_at_load(
    jobs: Sequence[WorkloadJob], topology: Topology, target: float, prepare: Prepare
) -> DemoPlan:
    """The slice on the smallest federation that holds all its jobs, with its trace arrivals
    compressed (or stretched) until it offers `target`.

    `prepare` caps durations at the wall-clock limit for the compression the scaled arrivals
    play at, so the load is measured on exactly what the agents and the simulator will run. The
    load grows with the arrival factor until every job is capped; a target beyond that is not
    reached and the most loaded plan (factor ARRIVAL_RANGE[1]) is run instead.
    """
    scale = smallest_scale(prepare(jobs)[0], topology)

    def plan(factor: float) -> DemoPlan:
        ready, compression = prepare(scale_arrivals(jobs, factor))
        load = slice_load(ready, topology, scale)
        return DemoPlan(tuple(ready), compression, factor, load)

    def reaches(candidate: DemoPlan) -> bool:
        return (candidate.load.offered.peak or 0.0) >= target

    low, high = ARRIVAL_RANGE
    best = plan(high)
    if not reaches(best):
        return best
    if reaches(lower := plan(low)):
        return lower
    for _ in range(SCALE_BISECTIONS):
        middle = math.sqrt(low * high)
        trial = plan(middle)
        if reaches(trial):
            best, high = trial, middle
        else:
            low = middle
    return best
