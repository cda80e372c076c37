"""Hard placement constraints: small filters that keep or reject options and say why they reject."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from broker.placement.demand import JobDemand
from broker.placement.tables import HOST_ONLY, BoolArray, EvalContext, FederationTable, IntArray

_EPS = 1e-9


class Filter(Protocol):
    """A hard constraint over options; `passes` is vectorised, `reason` explains one rejection.

    Filters run in policy order on the options earlier filters kept, so a filter may rely on
    its predecessors (RequireGangFit only sees pools of the right model).
    """

    name: str

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        """For each option in `opts`, whether the job may run there."""
        ...

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        """Why `opt` fails this filter, phrased for the user."""
        ...


class RequireSiteAccepting:
    """The site is active: not lost, suspect, draining, offline or silent."""

    name = "site_accepting"

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        return ctx.avail.opt_accepting[opts]

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        return f"site is {ctx.avail.site_status[int(ctx.table.opt_site[opt])]}"


class RequireResidency:
    """The site is allowed by the job's constraints (allowed provinces or sites, exclusions)."""

    name = "residency"

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        if not job.has_residency_rules:
            return np.ones(len(opts), dtype=np.bool_)
        table = ctx.table
        site_ok = np.asarray(
            [_residency_problem(job, table, s) is None for s in range(len(table.site_ids))]
        )
        return site_ok[table.opt_site[opts]]

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        problem = _residency_problem(job, ctx.table, int(ctx.table.opt_site[opt]))
        return problem or "allowed by residency constraints"


def _residency_problem(job: JobDemand, table: FederationTable, site: int) -> str | None:
    site_id, province = table.site_ids[site], table.provinces[site]
    if site_id in job.excluded_sites:
        return "site is excluded by the job's constraints"
    if job.allowed_sites and site_id not in job.allowed_sites:
        return "site is not in allowed_sites"
    if job.allowed_provinces and province not in job.allowed_provinces:
        return f"province {province} is not in allowed_provinces"
    return None


class RequireAccelerator:
    """The option offers the requested model (any pool if unnamed; host only for CPU-only jobs)."""

    name = "accelerator"

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        return _acceptable(job, ctx.table, opts)

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        if job.cards == 0:
            return "CPU-only job runs on host cores"
        return f"no {job.accelerator} accelerators" if job.accelerator else "no accelerators"


def _acceptable(job: JobDemand, table: FederationTable, opts: IntArray) -> BoolArray:
    if job.cards == 0:
        return table.model_mask[HOST_ONLY][opts]
    if job.accelerator:
        mask = table.model_mask.get(job.accelerator)
        return np.zeros(len(opts), dtype=np.bool_) if mask is None else mask[opts]
    return ~table.model_mask[HOST_ONLY][opts]


class RequireGangFit:
    """Enough cards are free now: in one pool for gang jobs, over the site's pools otherwise."""

    name = "gang_fit"

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        free = ctx.avail.opt_free
        if job.gang or ctx.single_pool or job.cards == 0:
            return free[opts] >= job.cards
        table = ctx.table
        sites = table.opt_site[opts]
        total = np.bincount(sites, weights=free[opts], minlength=len(table.site_ids))
        return total[sites] >= job.cards

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        table, free = ctx.table, ctx.avail.opt_free
        model = table.opt_model[opt] or "cards"
        if job.gang or ctx.single_pool:
            return f"gang of {job.cards} {model} needs one pool, {int(free[opt])} free"
        site_opts = table.site_options[int(table.opt_site[opt])]
        total = int(free[site_opts[_acceptable(job, table, site_opts)]].sum())
        return f"needs {job.cards} {job.accelerator or 'accelerators'}, {total} free"


class RequireHostResources:
    """The site has the CPU cores and memory the job asks for free."""

    name = "host_resources"

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        sites = ctx.table.opt_site[opts]
        cpu_ok = ctx.avail.site_cpu_free[sites] + _EPS >= job.cpu_cores
        return cpu_ok & (ctx.avail.site_memory_gb_free[sites] + _EPS >= job.memory_gb)

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        site = int(ctx.table.opt_site[opt])
        cpu_free = float(ctx.avail.site_cpu_free[site])
        if cpu_free + _EPS < job.cpu_cores:
            return f"needs {job.cpu_cores:g} cpu cores, {cpu_free:g} free"
        free_gb = float(ctx.avail.site_memory_gb_free[site])
        return f"needs {job.memory_gb:g} GB memory, {free_gb:g} free"


class RequireDataReachable:
    """The job's dataset origin is a known node with a route to the site."""

    name = "data_reachable"

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        if job.dataset_origin is None:
            return np.ones(len(opts), dtype=np.bool_)
        route = ctx.table.data_route(job.dataset_origin)
        if route is None:
            return np.zeros(len(opts), dtype=np.bool_)
        return route.bottleneck_gbps[ctx.table.opt_site[opts]] > 0

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        origin = job.dataset_origin
        if origin is None or ctx.table.data_route(origin) is None:
            return f"unknown dataset origin {origin!r}"
        return f"no route for the dataset from {origin}"


class RespectLatencySLO:
    """Every user region of an inference job reaches the site within the latency SLO.

    The SLO bounds the worst region, not the demand-weighted mean: a user in a light region
    was promised the same RTT as one in a heavy region.
    """

    name = "latency_slo"

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        if job.slo_ms is None:
            return np.ones(len(opts), dtype=np.bool_)
        rows = _region_rows(job, ctx.table)
        if rows is None:
            return np.zeros(len(opts), dtype=np.bool_)
        worst = ctx.table.opt_rtt_ms[rows][:, opts].max(axis=0)
        return worst <= job.slo_ms + _EPS

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        table = ctx.table
        unknown = [r for r, _ in job.regions if r not in table.region_pos]
        if unknown:
            return f"unknown user region {unknown[0]!r}"
        rtts = [(float(table.opt_rtt_ms[table.region_pos[r], opt]), r) for r, _ in job.regions]
        rtt, region = max(rtts)
        if math.isinf(rtt):
            return f"no route from {region}"
        return f"rtt {rtt:.1f} ms > slo {job.slo_ms:g} ms (from {region})"


def _region_rows(job: JobDemand, table: FederationTable) -> list[int] | None:
    try:
        return [table.region_pos[region] for region, _ in job.regions]
    except KeyError:
        return None


def default_filters() -> tuple[Filter, ...]:
    """The standard filters, cheapest and most selective first."""
    return (
        RequireSiteAccepting(),
        RequireResidency(),
        RequireAccelerator(),
        RequireGangFit(),
        RequireHostResources(),
        RequireDataReachable(),
        RespectLatencySLO(),
    )
