"""Hard placement constraints: small filters that keep or reject options and say why they reject.

Each standard filter judges many jobs at once (`passes_many`: one row per job, or one row for
all when the verdict does not depend on the job); `passes` is that verdict for a single job.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from broker.placement.demand import DemandArrays, JobDemand
from broker.placement.shapes import multi_node, nodes_needed, plural, whole_nodes_wanted
from broker.placement.tables import (
    HOST_ONLY,
    BoolArray,
    EvalContext,
    FederationTable,
    FloatArray,
    IntArray,
)

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


class BatchFilter(Protocol):
    """A filter that also judges many jobs at once."""

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        """Jobs x `opts` verdicts, or 1 x `opts` if they hold for every job."""
        ...


class _Batched:
    """`passes` for one job through the filter's batch form."""

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        raise NotImplementedError

    def passes(self, job: JobDemand, ctx: EvalContext, opts: IntArray) -> BoolArray:
        verdict = self.passes_many(DemandArrays.of((job,)), ctx, opts)
        return np.broadcast_to(verdict, (1, len(opts)))[0]


class RequireSiteAccepting(_Batched):
    """The site is active: not lost, suspect, draining, offline or silent."""

    name = "site_accepting"

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        return ctx.avail.opt_accepting[opts][None, :]

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        return f"site is {ctx.avail.site_status[int(ctx.table.opt_site[opt])]}"


class RequireResidency(_Batched):
    """The site is allowed by the job's constraints (allowed provinces or sites, exclusions)."""

    name = "residency"

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        table = ctx.table
        out = np.ones((1, len(opts)), dtype=np.bool_)
        sites = table.opt_site[opts]
        for rules, rows in jobs.groups(_residency_rules):
            if not any(rules):
                continue
            if out.shape[0] == 1:
                out = np.ones((len(jobs), len(opts)), dtype=np.bool_)
            demand = jobs.demands[int(rows[0])]
            site_ok = np.asarray(
                [_residency_problem(demand, table, s) is None for s in range(len(table.site_ids))]
            )
            out[rows] = site_ok[sites][None, :]
        return out

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        problem = _residency_problem(job, ctx.table, int(ctx.table.opt_site[opt]))
        return problem or "allowed by residency constraints"


def _residency_rules(job: JobDemand) -> tuple[frozenset[str], ...]:
    return (job.allowed_provinces, job.allowed_sites, job.excluded_sites)


def _residency_problem(job: JobDemand, table: FederationTable, site: int) -> str | None:
    site_id, province = table.site_ids[site], table.provinces[site]
    if site_id in job.excluded_sites:
        return "site is excluded by the job's constraints"
    if job.allowed_sites and site_id not in job.allowed_sites:
        return "site is not in allowed_sites"
    if job.allowed_provinces and province not in job.allowed_provinces:
        return f"province {province} is not in allowed_provinces"
    return None


class RequireAccelerator(_Batched):
    """The option offers a model the job accepts, with at least its memory per card.

    Any pool if the job names no model; host only for CPU-only jobs.
    """

    name = "accelerator"

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        groups = jobs.groups(_model_key)
        if len(groups) == 1:
            return _acceptable(groups[0][0], ctx.table, opts)[None, :]
        out = np.empty((len(jobs), len(opts)), dtype=np.bool_)
        for key, rows in groups:
            out[rows] = _acceptable(key, ctx.table, opts)[None, :]
        return out

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        if job.cards == 0:
            return "CPU-only job runs on host cores"
        table = ctx.table
        if job.min_memory_gb:  # an accepted model that is there, but too small, says so
            site_opts = table.site_options[int(table.opt_site[opt])]
            offered = _acceptable((job.models, False, 0.0), table, site_opts)
            if offered.any():
                small = int(site_opts[offered][0])
                memory = float(table.opt_memory_gb[small])
                model = table.opt_model[small]
                return f"{model} has {memory:g} GB per card, the job needs {job.min_memory_gb:g} GB"
        return f"no {_either(job.models)} accelerators" if job.models else "no accelerators"


def _either(models: tuple[str, ...]) -> str:
    return models[0] if len(models) == 1 else f"{', '.join(models[:-1])} or {models[-1]}"


_ModelKey = tuple[tuple[str, ...], bool, float]


def _model_key(job: JobDemand) -> _ModelKey:
    """What decides which options offer the job's accelerator: the models, CPU-only, memory."""
    return job.models, job.cards == 0, job.min_memory_gb


def _acceptable(key: _ModelKey, table: FederationTable, opts: IntArray) -> BoolArray:
    models, cpu_only, min_memory_gb = key
    if cpu_only:
        return table.model_mask[HOST_ONLY][opts]
    if models:
        mask = np.zeros(len(opts), dtype=np.bool_)
        for model in models:
            offered = table.model_mask.get(model)
            if offered is not None:
                mask |= offered[opts]
    else:
        mask = ~table.model_mask[HOST_ONLY][opts]
    if min_memory_gb > 0:
        mask &= table.opt_memory_gb[opts] + _EPS >= min_memory_gb
    return mask


class RequireGangFit(_Batched):
    """Enough capacity is free now: in one pool for gang jobs, over the site's pools otherwise.

    "The site's pools" are those offering the job's accelerator. In a pool of known node shape
    a job that fits on one node needs only free cards, and one that outgrows a node needs
    ceil(cards / cards per node) whole free nodes (broker/placement/shapes.py).
    """

    name = "gang_fit"

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        out = _room(jobs.cards, ctx, opts) >= jobs.cards[:, None]
        if ctx.single_pool:
            return out
        table = ctx.table
        spread = ~jobs.gang & (jobs.cards > 0)
        sites = table.opt_site[opts]
        every = np.arange(table.n_options)
        for key, rows in jobs.groups(_model_key):
            rows = rows[spread[rows]]
            if rows.size:
                pools = _acceptable(key, table, every)
                total = _site_room(jobs.cards[rows], ctx, pools)
                out[rows] = total[:, sites] >= jobs.cards[rows, None]
        return out

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        table, free = ctx.table, ctx.avail.opt_free
        model = table.opt_model[opt] or "cards"
        if job.gang or ctx.single_pool:
            per_node = int(ctx.avail.opt_cards_per_node[opt])
            if multi_node(job.cards, per_node):
                return _whole_nodes_reason(job, model, per_node, ctx, opt)
            return f"gang of {job.cards} {model} needs one pool, {int(free[opt])} free"
        site = int(table.opt_site[opt])
        site_opts = table.site_options[site]
        pools = np.zeros(table.n_options, dtype=np.bool_)
        pools[site_opts[_acceptable(_model_key(job), table, site_opts)]] = True
        total = int(_site_room(np.asarray([float(job.cards)]), ctx, pools)[0, site])
        wanted = _either(job.models) if job.models else "accelerators"
        return f"needs {job.cards} {wanted}, {total} free"


def _room(cards: FloatArray, ctx: EvalContext, opts: IntArray) -> FloatArray:
    """Jobs x `opts`: the cards each option offers a job of `cards` in one pool.

    Free cards, or where a job outgrows a node of a shaped pool, the cards of its surely
    free whole nodes: that covers the job exactly when its nodes (and their cards) are free.
    """
    avail = ctx.avail
    free = avail.opt_free[opts].astype(np.float64)[None, :]
    per_node = avail.opt_cards_per_node[opts]
    if not per_node.any():
        return np.broadcast_to(free, (len(cards), len(opts)))
    wanted = whole_nodes_wanted(np.ceil(cards).astype(np.int64)[:, None], per_node[None, :])
    whole = np.minimum(avail.opt_whole_nodes[opts], free[0] // np.maximum(per_node, 1))
    offered = np.maximum(whole, 0) * per_node
    return np.where(wanted > 0, offered[None, :], free)


def _site_room(cards: FloatArray, ctx: EvalContext, pools: BoolArray) -> FloatArray:
    """Jobs x sites: what the acceptable `pools` of each site offer a job of `cards`."""
    table = ctx.table
    every = np.arange(table.n_options)
    room = _room(cards, ctx, every) * pools[None, :]
    out = np.zeros((len(cards), len(table.site_ids)))
    for row in range(len(cards)):
        out[row] = np.bincount(table.opt_site, weights=room[row], minlength=len(table.site_ids))
    return out


def _whole_nodes_reason(
    job: JobDemand, model: str, per_node: int, ctx: EvalContext, opt: int
) -> str:
    """Why a pool of known node shape cannot give a multi-node job its whole nodes."""
    needed = nodes_needed(job.cards, per_node)
    kind = "gang" if job.gang else "job"
    wanted = f"{kind} of {job.cards} {model} needs {plural(needed, 'node')} of {per_node} cards"
    nodes = int(ctx.avail.opt_nodes[opt])
    if needed > nodes:
        return f"{wanted}, the pool has {plural(nodes, 'node')}"
    whole = min(int(ctx.avail.opt_whole_nodes[opt]), int(ctx.avail.opt_free[opt]) // per_node)
    return f"{wanted}, {max(0, whole)} of {nodes} wholly free"


class RequireHostResources(_Batched):
    """The site has the CPU cores and memory the job asks for free."""

    name = "host_resources"

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        sites = ctx.table.opt_site[opts]
        cpu_ok = ctx.avail.site_cpu_free[sites][None, :] + _EPS >= jobs.cpu_cores[:, None]
        memory_free = ctx.avail.site_memory_gb_free[sites][None, :]
        return cpu_ok & (memory_free + _EPS >= jobs.memory_gb[:, None])

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        site = int(ctx.table.opt_site[opt])
        cpu_free = float(ctx.avail.site_cpu_free[site])
        if cpu_free + _EPS < job.cpu_cores:
            return f"needs {job.cpu_cores:g} cpu cores, {cpu_free:g} free"
        free_gb = float(ctx.avail.site_memory_gb_free[site])
        return f"needs {job.memory_gb:g} GB memory, {free_gb:g} free"


class RequireDataReachable(_Batched):
    """The job's dataset origin is a known node with a route to the site."""

    name = "data_reachable"

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        out = np.ones((1, len(opts)), dtype=np.bool_)
        sites = ctx.table.opt_site[opts]
        for origin, rows in jobs.groups(lambda d: d.dataset_origin):
            if origin is None:
                continue
            if out.shape[0] == 1:
                out = np.ones((len(jobs), len(opts)), dtype=np.bool_)
            route = ctx.table.data_route(origin)
            reachable = False if route is None else route.bottleneck_gbps[sites] > 0
            out[rows] = reachable
        return out

    def reason(self, job: JobDemand, ctx: EvalContext, opt: int) -> str:
        origin = job.dataset_origin
        if origin is None or ctx.table.data_route(origin) is None:
            return f"unknown dataset origin {origin!r}"
        return f"no route for the dataset from {origin}"


class RespectLatencySLO(_Batched):
    """Every user region of an inference job reaches the site within the latency SLO.

    The SLO bounds the worst region, not the demand-weighted mean: a user in a light region
    was promised the same RTT as one in a heavy region.
    """

    name = "latency_slo"

    def passes_many(self, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
        bounded = np.flatnonzero(~np.isnan(jobs.slo_ms))
        if bounded.size == 0:
            return np.ones((1, len(opts)), dtype=np.bool_)
        table = ctx.table
        where = [
            [table.region_pos.get(r, -1) for r, _ in jobs.demands[i].regions] or [-1]
            for i in bounded
        ]
        width = max(len(w) for w in where)
        rows = np.asarray([w + w[-1:] * (width - len(w)) for w in where], dtype=np.int64)
        known: BoolArray = np.all(rows >= 0, axis=1)
        rtt = table.opt_rtt_ms[:, opts]
        worst = rtt[np.maximum(rows[:, 0], 0)]
        for slot in range(1, width):  # repeating a job's last region leaves its worst unchanged
            worst = np.maximum(worst, rtt[np.maximum(rows[:, slot], 0)])
        out = np.ones((len(jobs), len(opts)), dtype=np.bool_)
        out[bounded] = (worst <= jobs.slo_ms[bounded, None] + _EPS) & known[:, None]
        return out

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
