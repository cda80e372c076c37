"""Single-job placement: the cheapest feasible site, with a verdict and costs for every site."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from broker.placement.demand import DemandArrays, JobDemand
from broker.placement.policy import Evaluation, Policy, evaluate, first_failures_many
from broker.placement.runtime import run_hours
from broker.placement.snapshot import FederationSnapshot
from broker.placement.tables import EvalContext, context_for
from computenet.spec import JobSpec
from computenet.types import CandidateSite, Placement, SiteId

_REASON_CHUNK = 256  # unplaceable jobs whose reasons are found in one pass


def place(
    spec: JobSpec,
    snapshot: FederationSnapshot,
    policy: Policy,
    *,
    explain_limit: int | None = None,
) -> Placement:
    """Choose the feasible site of least total cost for `spec`, or None if no site passes.

    Candidates list feasible sites cheapest first, then rejected sites in topology order with
    the first filter they failed. Ties go to the site defined first in the topology. A job
    that accepts several models lists each feasible (site, model) pair. With
    `explain_limit`, at most that many feasible and that many rejected sites are listed (the
    choice is the same), which keeps explanations small on federations of many sites.
    """
    started = time.perf_counter()
    job = JobDemand.from_spec(spec)
    ctx = context_for(snapshot)
    evaluation = evaluate(policy, job, ctx)
    candidates = explain(policy, job, ctx, evaluation, explain_limit)
    chosen = candidates[0].site if candidates and candidates[0].feasible else None
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return Placement(chosen=chosen, candidates=candidates, decision_ms=elapsed_ms)


def explain(
    policy: Policy,
    job: JobDemand,
    ctx: EvalContext,
    evaluation: Evaluation,
    limit: int | None = None,
) -> tuple[CandidateSite, ...]:
    """Per site its best feasible option's costs (each feasible option's for a job accepting
    several models), or why its options failed.

    With `limit`, the cheapest `limit` feasible candidates and the first `limit` rejected sites.
    """
    table = ctx.table
    feasible_sites = table.opt_site[evaluation.feasible]
    best = _cheapest_per_site(feasible_sites, evaluation.total_cny, len(table.site_ids))
    names = policy.term_names
    columns = range(len(evaluation.feasible)) if len(job.models) > 1 else best
    ranked = sorted(
        (float(evaluation.total_cny[column]), int(feasible_sites[column]), column)
        for column in columns
        if column >= 0
    )
    accepted: list[CandidateSite] = []
    for total, site, column in ranked[:limit]:
        terms = {
            name: _cny(float(v))
            for name, v in zip(names, evaluation.term_cny[:, column], strict=True)
        }
        model = table.opt_model[int(evaluation.feasible[column])]
        hours = run_hours(job, table.topology, model)
        candidate = CandidateSite(
            SiteId(table.site_ids[site]), True, "", terms, _cny(total), model, hours
        )
        accepted.append(candidate)
    rejected: list[CandidateSite] = []
    for site, site_id in enumerate(table.site_ids):
        if limit is not None and len(rejected) >= limit:
            break
        if best[site] < 0:
            reason = _why_not(policy, job, ctx, evaluation, site)
            rejected.append(CandidateSite(SiteId(site_id), False, reason))
    return tuple(accepted) + tuple(rejected)


def _cheapest_per_site(sites: np.ndarray, totals: np.ndarray, n_sites: int) -> list[int]:
    """Column of the cheapest feasible option of each site (-1 if none); first wins ties."""
    best = np.full(n_sites, -1, dtype=np.int64)
    if sites.size:
        # stable sort by (site, total): the first column of each site is its cheapest
        order = np.lexsort((np.arange(sites.size), totals, sites))
        first = np.ones(order.size, dtype=bool)
        first[1:] = sites[order][1:] != sites[order][:-1]
        best[sites[order][first]] = order[first]
    return best.tolist()


def rejection_reasons(
    policy: Policy, jobs: Sequence[JobDemand], ctx: EvalContext, limit: int
) -> list[list[str]]:
    """`site: reason` for up to `limit` sites per job no site can take, closest sites first.

    A site is closer the further its best option got through the filters (ties in topology
    order), so a gang too big for any site's nodes shows those sites before ones that are not
    reporting. Jobs go through the filters in chunks, to bound the jobs x options arrays.
    """
    table = ctx.table
    opts = np.arange(table.n_options, dtype=np.int64)
    starts = np.asarray([int(o[0]) for o in table.site_options], dtype=np.int64)
    shown = min(limit, len(table.site_ids))
    out = []
    for at in range(0, len(jobs), _REASON_CHUNK):
        chunk = list(jobs[at : at + _REASON_CHUNK])
        failed = first_failures_many(policy, DemandArrays.of(chunk), ctx, opts)
        furthest = np.maximum.reduceat(failed, starts, axis=1)
        for job, row, reached in zip(chunk, failed, furthest, strict=True):
            evaluation = Evaluation(row, np.zeros(0, np.int64), np.zeros((0, 0)), np.zeros(0))
            closest = np.lexsort((np.arange(reached.size), -reached))[:shown]
            out.append(
                [
                    f"{table.site_ids[i]}: {_why_not(policy, job, ctx, evaluation, i)}"
                    for i in closest.tolist()
                ]
            )
    return out


def _why_not(
    policy: Policy, job: JobDemand, ctx: EvalContext, evaluation: Evaluation, site: int
) -> str:
    """The reason of the site's option that got furthest through the filters."""
    options = ctx.table.site_options[site]
    furthest = options[int(np.argmax(evaluation.failed_at[options]))]
    rule = policy.filters[int(evaluation.failed_at[furthest])]
    return rule.reason(job, ctx, int(furthest))


def _cny(value: float) -> float:
    # explanations show fen; the decision itself used the unrounded totals
    return round(value, 2)
