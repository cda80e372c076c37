"""Job classes of a batch: jobs grouped by (demand, priority), their options priced in one pass.

Distinct demands are evaluated together, grouped by the accelerator they ask for so that the
jobs x options arrays only span the pools that could take them. Under the "delay" wait model
each option's cost also includes the wait it imposes on the jobs greedy cannot start (see
broker/placement/delay.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from broker.placement.capacity import JobClass, Ledger, greedy_fill, greedy_order, pending_penalty
from broker.placement.delay import add_delay_costs, contention, pool_cards
from broker.placement.demand import DemandArrays, JobDemand
from broker.placement.engine import rejection_reasons
from broker.placement.policy import Policy, evaluate_many
from broker.placement.tables import EvalContext, FloatArray, IntArray
from computenet.spec import JobSpec

_SHOWN_REASONS = 3
_CHUNK_JOBS = 2048  # demands evaluated in one pass, bounding the jobs x options arrays


def job_classes(
    specs: Sequence[tuple[str, JobSpec]],
    ctx: EvalContext,
    policy: Policy,
    pool_totals: Mapping[str, Mapping[str, int]] | None = None,
) -> tuple[list[JobClass], list[tuple[int, str]]]:
    """Group jobs by (demand, priority), evaluate each demand once; members in input order.

    `pool_totals` (site id -> model -> cards) sizes the pools for the delay model.
    """
    index: dict[tuple[JobDemand, int], int] = {}
    keys: list[tuple[JobDemand, int]] = []
    jobs: list[list[str]] = []
    members: list[tuple[int, str]] = []
    seen: set[str] = set()
    for job_id, spec in specs:
        if job_id in seen:
            raise ValueError(f"duplicate job id {job_id!r} in batch")
        seen.add(job_id)
        key = (JobDemand.from_spec(spec), spec.priority)
        k = index.get(key)
        if k is None:
            k = index[key] = len(keys)
            keys.append(key)
            jobs.append([])
        jobs[k].append(job_id)
        members.append((k, job_id))
    options = options_of(list(dict.fromkeys(d for d, _ in keys)), ctx, policy)
    classes = [
        _job_class(d, p, ids, options[d], ctx, policy)
        for (d, p), ids in zip(keys, jobs, strict=True)
    ]
    if policy.config.batch_wait_model == "delay":
        _price_delay(classes, greedy_assignment(classes, members, ctx), ctx, policy, pool_totals)
    return classes, members


def options_of(
    demands: list[JobDemand], ctx: EvalContext, policy: Policy
) -> dict[JobDemand, tuple[IntArray, FloatArray]]:
    """Each demand's feasible options, cheapest first (ties by option index), and their costs."""
    by_model: dict[tuple[str, bool], list[JobDemand]] = {}
    for demand in demands:
        by_model.setdefault((demand.accelerator, demand.cards == 0), []).append(demand)
    every = np.arange(ctx.table.n_options, dtype=np.int64)
    out: dict[JobDemand, tuple[IntArray, FloatArray]] = {}
    for group in by_model.values():
        for start in range(0, len(group), _CHUNK_JOBS):
            chunk = group[start : start + _CHUNK_JOBS]
            opts, mask, total = evaluate_many(policy, DemandArrays.of(chunk), ctx, every)
            priced = np.where(mask, total, np.inf)
            order = np.argsort(priced, axis=1, kind="stable")
            feasible = mask.sum(axis=1)
            for row, demand in enumerate(chunk):
                take = order[row, : feasible[row]]
                out[demand] = (opts[take], priced[row, take])
    return out


def greedy_assignment(
    classes: list[JobClass], members: list[tuple[int, str]], ctx: EvalContext
) -> dict[str, int]:
    """Each job in priority order (then largest first) at its cheapest option that still fits."""
    chosen: dict[str, int] = {}
    placeable = [m for m in members if classes[m[0]].placeable]
    greedy_fill(classes, greedy_order(classes, placeable), Ledger(ctx), chosen)
    return chosen


def _job_class(
    demand: JobDemand,
    priority: int,
    jobs: list[str],
    options: tuple[IntArray, FloatArray],
    ctx: EvalContext,
    policy: Policy,
) -> JobClass:
    config = policy.config
    opts, cost = options
    cls = JobClass(demand, priority, jobs, opts, cost)
    cls.penalty = pending_penalty(
        demand,
        priority,
        cost,
        config.pending_penalty_hours,
        config.accelerator_hour_value_cny,
        config.pending_penalty_base,
    )
    if not cls.placeable:
        shown = "; ".join(rejection_reasons(policy, demand, ctx, _SHOWN_REASONS))
        more = len(ctx.table.site_ids) - _SHOWN_REASONS
        cls.reason = f"no feasible site ({shown}{f'; {more} more' if more > 0 else ''})"
    return cls


def _price_delay(
    classes: list[JobClass],
    greedy: dict[str, int],
    ctx: EvalContext,
    policy: Policy,
    pool_totals: Mapping[str, Mapping[str, int]] | None,
) -> None:
    """Add delay costs where greedy leaves jobs waiting.

    The jobs greedy cannot start estimate the queue the batch leaves behind. Every pending
    penalty rises by the largest delay cost per card, so the difference between starting
    and leaving a job is still at least `pending_penalty_hours` of its cards' value.
    """
    queued = [
        float(sum(1 for j in cls.jobs if j not in greedy) * cls.demand.cards)
        if cls.placeable
        else 0.0
        for cls in classes
    ]
    if not any(queued):
        return
    value = policy.config.accelerator_hour_value_cny
    cards = pool_cards(ctx, pool_totals)
    rho = contention(classes, queued, cards)
    most = add_delay_costs(classes, rho, value)
    for cls in classes:
        cls.penalty += most * value * max(cls.demand.cards, 1)
