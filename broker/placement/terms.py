"""Placement cost terms: each prices one consequence of running a job at an option in CNY.

Each standard term prices many jobs at once (`cost_many`: jobs x options); `cost_cny` is that
price for a single job.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from broker.placement.config import PolicyConfig
from broker.placement.demand import DemandArrays, JobDemand
from broker.placement.runtime import run_hours_many
from broker.placement.tables import EvalContext, FloatArray, IntArray
from topology.energy import EnergyModel, facility_kw

HOURS_PER_DAY = 24
BITS_PER_BYTE = 8.0
SECONDS_PER_HOUR = 3600.0
KG_PER_TONNE = 1000.0
_ROWS_PER_GATHER = 32  # above this many run windows, price tables are gathered per hour


class CostTerm(Protocol):
    """One explainable part of a placement's cost, vectorised over the options that passed."""

    name: str

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        """Cost in CNY of running the job at each option in `opts`."""
        ...


class BatchCostTerm(Protocol):
    """A cost term that also prices many jobs at once."""

    def cost_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
        """Jobs x `opts` costs in CNY."""
        ...


class _Batched:
    """`cost_cny` for one job through the term's batch form."""

    def cost_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
        raise NotImplementedError

    def cost_cny(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> FloatArray:
        return self.cost_many(DemandArrays.of((job,)), ctx, opts)[0]


def power_kw(
    job: JobDemand, ctx: EvalContext, opts: IntArray, model: EnergyModel | float
) -> FloatArray:
    """Facility power of the job at each option by the energy model (topology.energy).

    A bare number is taken as the model's CPU watts per core, all else at its defaults.
    """
    return power_kw_many(DemandArrays.of((job,)), ctx, opts, model)[0]


def power_kw_many(
    jobs: DemandArrays, ctx: EvalContext, opts: IntArray, model: EnergyModel | float
) -> FloatArray:
    """`power_kw` of each job (rows) at each option (columns): IT watts x PUE / 1000."""
    if not isinstance(model, EnergyModel):
        model = EnergyModel(cpu_watts_per_core=model)
    table = ctx.table
    out = np.empty((len(jobs), opts.size))
    board_w = table.opt_watts[opts][None, :] * jobs.cards[:, None]
    for workload, rows in jobs.groups(lambda d: d.workload):
        it_w = model.it_watts(
            board_w[rows], jobs.cards[rows, None], jobs.cpu_cores[rows, None], workload
        )
        out[rows] = facility_kw(it_w, table.opt_pue[opts][None, :])
    return out


def price_integral(
    ctx: EvalContext, opts: IntArray, start_hour: float, hours: FloatArray
) -> FloatArray:
    """Integral of each option's hourly price over [start, start + hours) in CNY/kWh x h.

    One row per entry of `hours`, one column per option.
    """
    ends = np.append(start_hour + np.asarray(hours, dtype=np.float64), start_hour)
    cumulative = _cumulative(ctx, opts, ends)
    return cumulative[:-1] - cumulative[-1:]


def price_integral_each(
    ctx: EvalContext, opts: IntArray, start_hour: float, hours: FloatArray
) -> FloatArray:
    """`price_integral` with its own run length per job and option (`hours`: jobs x opts)."""
    prefix, hourly = ctx.table.opt_prefix[opts], ctx.table.opt_hourly[opts]

    def cumulative(hour: FloatArray) -> FloatArray:
        days, rest = np.divmod(hour, HOURS_PER_DAY)
        whole = rest.astype(np.int64)
        full = whole >= HOURS_PER_DAY  # rest can round up to 24.0
        days, whole = days + full, np.where(full, 0, whole)
        rest = np.where(full, 0.0, rest)
        cols = np.broadcast_to(np.arange(opts.size)[None, :], whole.shape)
        daily = prefix[:, HOURS_PER_DAY][None, :]
        return days * daily + prefix[cols, whole] + (rest - whole) * hourly[cols, whole]

    start = np.full((1, opts.size), float(start_hour))
    return cumulative(start + np.asarray(hours, dtype=np.float64)) - cumulative(start)


def _cumulative(ctx: EvalContext, opts: IntArray, hour: FloatArray) -> FloatArray:
    prefix, hourly = ctx.table.opt_prefix, ctx.table.opt_hourly
    days, rest = np.divmod(hour, HOURS_PER_DAY)
    whole = rest.astype(np.int64)
    full = whole >= HOURS_PER_DAY  # rest can round up to 24.0
    days, whole = days + full, np.where(full, 0, whole)
    rest = np.where(full, 0.0, rest)
    daily = prefix[opts, HOURS_PER_DAY][None, :]
    if hour.size > _ROWS_PER_GATHER:  # many rows: gather whole hour rows of the options' tables
        by_hour, hourly_by_hour = prefix[opts].T, hourly[opts].T
        return (
            days[:, None] * daily + by_hour[whole] + (rest - whole)[:, None] * hourly_by_hour[whole]
        )
    at = (opts[None, :], whole[:, None])
    return days[:, None] * daily + prefix[at] + (rest - whole)[:, None] * hourly[at]


class EnergyCost(_Batched):
    """Electricity of the run starting now (topology.energy's model: cards at their utilisation
    plus host share, x PUE), priced by the site's hourly schedule (CST) over its run time on the
    option's model."""

    name = "energy"

    def __init__(self, model: EnergyModel | float) -> None:
        self.model = (
            model if isinstance(model, EnergyModel) else EnergyModel(cpu_watts_per_core=model)
        )

    def cost_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
        kw = power_kw_many(jobs, ctx, opts, self.model)
        return kw * price_integral_each(ctx, opts, ctx.start_hour, run_hours_many(jobs, ctx, opts))


class CarbonCost(_Batched):
    """Emissions kWh x grid factor x (1 - green share), priced at the carbon price per tonne."""

    name = "carbon"

    def __init__(self, model: EnergyModel | float, carbon_price_cny_per_t: float) -> None:
        self.model = (
            model if isinstance(model, EnergyModel) else EnergyModel(cpu_watts_per_core=model)
        )
        self.cny_per_kg = carbon_price_cny_per_t / KG_PER_TONNE

    def cost_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
        kw = power_kw_many(jobs, ctx, opts, self.model)
        kwh = kw * run_hours_many(jobs, ctx, opts)
        return kwh * ctx.table.opt_carbon_kg_per_kwh[opts][None, :] * self.cny_per_kg


class DataMovementCost(_Batched):
    """Moving the dataset to the site: transfer fees plus the job's cards idling while it moves."""

    name = "data_movement"

    def __init__(self, value_cny_per_card_hour: float) -> None:
        self.value = value_cny_per_card_hour

    def cost_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
        out = np.zeros((len(jobs), len(opts)))
        sites = ctx.table.opt_site[opts]
        for origin, rows in jobs.groups(lambda d: d.dataset_origin):
            rows = rows[jobs.dataset_gb[rows] > 0]
            if origin is None or rows.size == 0:
                continue
            route = ctx.table.data_route(origin)
            if route is None:
                out[rows] = np.inf
                continue
            size_gb = jobs.dataset_gb[rows, None]
            with np.errstate(divide="ignore"):
                hours = size_gb * BITS_PER_BYTE / route.bottleneck_gbps[sites] / SECONDS_PER_HOUR
            fees = size_gb * route.cny_per_gb[sites]
            out[rows] = fees + hours * (jobs.cards[rows, None] * self.value)
        return out


class QueueWaitCost(_Batched):
    """The job's cards idling through the site's expected queue wait."""

    name = "queue_wait"

    def __init__(self, value_cny_per_card_hour: float) -> None:
        self.value = value_cny_per_card_hour

    def cost_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
        return ctx.avail.opt_wait_h[opts][None, :] * (jobs.cards[:, None] * self.value)


class ReliabilityCost(_Batched):
    """Expected work lost to interruptions of a gang job.

    Interruptions arrive at rate max(1, cards / reference_cards) / site MTBF over the run time
    on the option's model: the site's figure holds for a job of reference size, and a larger
    gang spans proportionally more nodes, any of which stops it. Each interruption loses half a
    checkpoint interval of every card's work (half the run without checkpoints); an inference
    replica loses its restart time instead.
    """

    name = "reliability"

    def __init__(
        self, value_cny_per_card_hour: float, reference_cards: int, restart_h: float
    ) -> None:
        self.value = value_cny_per_card_hour
        self.reference_cards = reference_cards
        self.restart_h = restart_h

    def cost_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
        cards, run_h = jobs.cards, run_hours_many(jobs, ctx, opts)
        scale = np.maximum(1.0, cards / self.reference_cards)
        failures = run_h * scale[:, None] / ctx.table.opt_mtbf_h[opts][None, :]
        checkpointed = np.minimum(jobs.checkpoint_h[:, None], run_h) / 2.0
        lost_h = np.where(jobs.serving[:, None], self.restart_h, checkpointed)
        gang = (jobs.gang & (cards > 0))[:, None]
        per_failure = np.where(gang, lost_h * (cards * self.value)[:, None], 0.0)
        return failures * per_failure

    def lost_hours(self, job: JobDemand) -> float:
        """Hours of work one interruption costs each card of the job."""
        if job.serving:
            return self.restart_h
        if job.checkpoint_h is not None:
            return min(job.checkpoint_h, job.duration_h) / 2.0
        return job.duration_h / 2.0


class LatencyCost(_Batched):
    """Demand-weighted RTT from the job's user regions, per replica-hour of serving."""

    name = "latency"

    def __init__(self, cny_per_ms_replica_hour: float) -> None:
        self.price = cny_per_ms_replica_hour

    def cost_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
        table = ctx.table
        out = np.zeros((len(jobs), len(opts)))
        for i, demand in enumerate(jobs.demands):
            if not demand.regions:
                continue
            rows = [table.region_pos.get(region, -1) for region, _ in demand.regions]
            if min(rows) < 0:
                out[i] = np.inf
                continue
            weights = np.asarray([w for _, w in demand.regions])
            out[i] = (weights / weights.sum()) @ table.opt_rtt_ms[rows][:, opts]
        return out * (self.price * jobs.replicas * jobs.duration_h)[:, None]


def default_terms(config: PolicyConfig) -> tuple[CostTerm, ...]:
    """The standard cost terms priced by `config`."""
    value = config.accelerator_hour_value_cny
    energy = config.energy_model()
    return (
        EnergyCost(energy),
        CarbonCost(energy, config.carbon_price_cny_per_t),
        DataMovementCost(value),
        QueueWaitCost(value),
        ReliabilityCost(value, config.reliability_reference_cards, config.serving_restart_hours),
        LatencyCost(config.latency_cny_per_ms_replica_hour),
    )
