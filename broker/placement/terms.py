"""Placement cost terms: each prices one consequence of running a job at an option in CNY."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from broker.placement.config import PolicyConfig
from broker.placement.demand import JobDemand
from broker.placement.tables import EvalContext, FloatArray, IntArray

HOURS_PER_DAY = 24
BITS_PER_BYTE = 8.0
SECONDS_PER_HOUR = 3600.0
KG_PER_TONNE = 1000.0


class CostTerm(Protocol):
    """One explainable part of a placement's cost, vectorised over the options that passed."""

    name: str

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        """Cost in CNY of running the job at each option in `opts`."""
        ...


def power_kw(
    job: JobDemand, ctx: EvalContext, opts: IntArray, cpu_watts_per_core: float
) -> FloatArray:
    """Facility power of the job at each option: (card watts + host watts) x PUE / 1000."""
    table = ctx.table
    watts = table.opt_watts[opts] * job.cards + job.cpu_cores * cpu_watts_per_core
    return watts * table.opt_pue[opts] / 1000.0


def price_integral(ctx: EvalContext, opts: IntArray, start_hour: float, hours: float) -> FloatArray:
    """Integral of each option's hourly price over [start, start + hours) in CNY/kWh x h."""
    return _cumulative(ctx, opts, start_hour + hours) - _cumulative(ctx, opts, start_hour)


def _cumulative(ctx: EvalContext, opts: IntArray, hour: float) -> FloatArray:
    prefix, hourly = ctx.table.opt_prefix, ctx.table.opt_hourly
    days, rest = divmod(hour, HOURS_PER_DAY)
    whole = int(rest)
    daily = prefix[opts, HOURS_PER_DAY]
    if whole >= HOURS_PER_DAY:  # rest can round up to 24.0
        return (days + 1) * daily
    return days * daily + prefix[opts, whole] + (rest - whole) * hourly[opts, whole]


class EnergyCost:
    """Electricity over the run window starting now, priced by the site's hourly schedule (CST)."""

    name = "energy"

    def __init__(self, cpu_watts_per_core: float) -> None:
        self.cpu_watts_per_core = cpu_watts_per_core

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        kw = power_kw(job, ctx, opts, self.cpu_watts_per_core)
        return kw * price_integral(ctx, opts, ctx.start_hour, job.duration_h)


class CarbonCost:
    """Emissions kWh x grid factor x (1 - green share), priced at the carbon price per tonne."""

    name = "carbon"

    def __init__(self, cpu_watts_per_core: float, carbon_price_cny_per_t: float) -> None:
        self.cpu_watts_per_core = cpu_watts_per_core
        self.cny_per_kg = carbon_price_cny_per_t / KG_PER_TONNE

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        kwh = power_kw(job, ctx, opts, self.cpu_watts_per_core) * job.duration_h
        return kwh * ctx.table.opt_carbon_kg_per_kwh[opts] * self.cny_per_kg


class DataMovementCost:
    """Moving the dataset to the site: transfer fees plus the job's cards idling while it moves."""

    name = "data_movement"

    def __init__(self, value_cny_per_card_hour: float) -> None:
        self.value = value_cny_per_card_hour

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        if job.dataset_origin is None or job.dataset_gb <= 0:
            return np.zeros(len(opts))
        route = ctx.table.data_route(job.dataset_origin)
        if route is None:
            return np.full(len(opts), math.inf)
        sites = ctx.table.opt_site[opts]
        bottleneck = route.bottleneck_gbps[sites]
        with np.errstate(divide="ignore"):
            hours = job.dataset_gb * BITS_PER_BYTE / bottleneck / SECONDS_PER_HOUR
        fees = job.dataset_gb * route.cny_per_gb[sites]
        return fees + hours * job.cards * self.value


class QueueWaitCost:
    """The job's cards idling through the site's expected queue wait."""

    name = "queue_wait"

    def __init__(self, value_cny_per_card_hour: float) -> None:
        self.value = value_cny_per_card_hour

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        return ctx.avail.opt_wait_h[opts] * (job.cards * self.value)


class ReliabilityCost:
    """Expected work lost to interruptions of a gang job.

    Interruptions arrive at rate max(1, cards / reference_cards) / site MTBF: the site's figure
    holds for a job of reference size, and a larger gang spans proportionally more nodes, any
    of which stops it. Each interruption loses half a checkpoint interval of every card's work
    (half the run without checkpoints); an inference replica loses its restart time instead.
    """

    name = "reliability"

    def __init__(
        self, value_cny_per_card_hour: float, reference_cards: int, restart_h: float
    ) -> None:
        self.value = value_cny_per_card_hour
        self.reference_cards = reference_cards
        self.restart_h = restart_h

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        if not job.gang or job.cards == 0:
            return np.zeros(len(opts))
        scale = max(1.0, job.cards / self.reference_cards)
        failures = job.duration_h * scale / ctx.table.opt_mtbf_h[opts]
        return failures * (self.lost_hours(job) * job.cards * self.value)

    def lost_hours(self, job: JobDemand) -> float:
        """Hours of work one interruption costs each card of the job."""
        if job.serving:
            return self.restart_h
        if job.checkpoint_h is not None:
            return min(job.checkpoint_h, job.duration_h) / 2.0
        return job.duration_h / 2.0


class LatencyCost:
    """Demand-weighted RTT from the job's user regions, per replica-hour of serving."""

    name = "latency"

    def __init__(self, cny_per_ms_replica_hour: float) -> None:
        self.price = cny_per_ms_replica_hour

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        if not job.regions:
            return np.zeros(len(opts))
        table = ctx.table
        rows = [table.region_pos.get(region, -1) for region, _ in job.regions]
        if min(rows) < 0:
            return np.full(len(opts), math.inf)
        weights = np.asarray([w for _, w in job.regions])
        weighted_rtt = (weights / weights.sum()) @ table.opt_rtt_ms[rows][:, opts]
        return weighted_rtt * (self.price * job.replicas * job.duration_h)


def default_terms(config: PolicyConfig) -> tuple[CostTerm, ...]:
    """The standard cost terms priced by `config`."""
    value = config.accelerator_hour_value_cny
    return (
        EnergyCost(config.cpu_watts_per_core),
        CarbonCost(config.cpu_watts_per_core, config.carbon_price_cny_per_t),
        DataMovementCost(value),
        QueueWaitCost(value),
        ReliabilityCost(value, config.reliability_reference_cards, config.serving_restart_hours),
        LatencyCost(config.latency_cny_per_ms_replica_hour),
    )
