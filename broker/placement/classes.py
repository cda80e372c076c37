"""Job classes of a batch: jobs grouped by (demand, priority), their options priced in one pass.

Distinct demands are evaluated together, grouped by the accelerator they ask for so that the
jobs x options arrays only span the pools that could take them. Under the "delay" wait model
each option's cost also includes the wait it imposes on the jobs greedy cannot start (see
broker/placement/delay.py) and the headroom the demand expected over the next hours needs in
the pools it holds (broker/placement/headroom.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from broker.placement.capacity import JobClass, Ledger, greedy_order, pending_penalty
from broker.placement.delay import add_delay_costs, contention, pool_cards
from broker.placement.demand import DemandArrays, JobDemand
from broker.placement.engine import rejection_reasons
from broker.placement.headroom import ExpectedDemand, scaled_share, serving_share
from broker.placement.policy import Policy, evaluate_many
from broker.placement.runtime import run_hours_many, scales
from broker.placement.tables import EvalContext, FloatArray, IntArray
from computenet.spec import JobSpec

_SHOWN_REASONS = 3
_CHUNK_JOBS = 2048  # demands evaluated in one pass, bounding the jobs x options arrays
_NO_OPTS = np.zeros(0, dtype=np.int64)
_NO_COST = np.zeros(0)


@dataclass(slots=True)
class _Priced:
    """Costs of some demands over the options any of them may use (inf where one may not)."""

    ids: list[int]  # the demands' positions in the batch's list of distinct demands
    arrays: DemandArrays
    opts: IntArray
    cost: FloatArray  # demands x opts


def job_classes(
    specs: Sequence[tuple[str, JobSpec]],
    ctx: EvalContext,
    policy: Policy,
    pool_totals: Mapping[str, Mapping[str, int]] | None = None,
    expected: ExpectedDemand | None = None,
) -> tuple[list[JobClass], list[tuple[int, str]]]:
    """Group jobs by (demand, priority), evaluate each demand once; members in input order.

    `pool_totals` (site id -> model -> cards) sizes the pools for the delay model; `expected`
    is the demand still to come whose headroom jobs pay for under the delay model
    (broker/placement/headroom.py).
    """
    demand_ids: dict[JobDemand, int] = {}
    demands: list[JobDemand] = []
    index: dict[tuple[int, int], int] = {}  # (demand id, priority) -> class
    keys: list[tuple[int, int]] = []
    jobs: list[list[str]] = []
    members: list[tuple[int, str]] = []
    seen: set[str] = set()
    for job_id, spec in specs:
        if job_id in seen:
            raise ValueError(f"duplicate job id {job_id!r} in batch")
        seen.add(job_id)
        demand = JobDemand.from_spec(spec)
        d = demand_ids.setdefault(demand, len(demands))
        if d == len(demands):
            demands.append(demand)
        k = index.setdefault((d, spec.priority), len(keys))
        if k == len(keys):
            keys.append((d, spec.priority))
            jobs.append([])
        jobs[k].append(job_id)
        members.append((k, job_id))
    priced = _price(demands, ctx, policy)
    options = _feasible_options(priced, len(demands))
    classes = [
        JobClass(demands[d], priority, ids, *options[d])
        for (d, priority), ids in zip(keys, jobs, strict=True)
    ]
    _set_penalties(classes, policy)
    if policy.config.batch_wait_model == "delay":
        expected = expected or ExpectedDemand()
        _price_delay(priced, classes, members, ctx, policy, pool_totals, expected)
    options = _sorted_options(priced, len(demands))
    for cls, (d, _) in zip(classes, keys, strict=True):
        cls.opts, cls.cost = options[d]
    _explain_unplaceable(classes, ctx, policy)
    return classes, members


def _price(demands: list[JobDemand], ctx: EvalContext, policy: Policy) -> list[_Priced]:
    by_model: dict[tuple[str, bool], list[int]] = {}
    for d, demand in enumerate(demands):
        by_model.setdefault((demand.accelerator, demand.cards == 0), []).append(d)
    every = np.arange(ctx.table.n_options, dtype=np.int64)
    out = []
    for group in by_model.values():
        for start in range(0, len(group), _CHUNK_JOBS):
            ids = group[start : start + _CHUNK_JOBS]
            arrays = DemandArrays.of([demands[d] for d in ids])
            opts, mask, total = evaluate_many(policy, arrays, ctx, every)
            out.append(_Priced(ids, arrays, opts, np.where(mask, total, np.inf)))
    return out


def _sorted_options(priced: list[_Priced], n: int) -> list[tuple[IntArray, FloatArray]]:
    """Each of the `n` demands' feasible options, cheapest first (ties by option index), and
    their costs: views into one sorted copy per chunk."""
    out: list[tuple[IntArray, FloatArray]] = [(_NO_OPTS, _NO_COST)] * n
    for chunk in priced:
        order = np.argsort(chunk.cost, axis=1, kind="stable")
        opts = chunk.opts[order]
        cost = np.take_along_axis(chunk.cost, order, axis=1)
        feasible = np.isfinite(chunk.cost).sum(axis=1).tolist()
        for row, (d, m) in enumerate(zip(chunk.ids, feasible, strict=True)):
            out[d] = (opts[row, :m], cost[row, :m])
    return out


def _feasible_options(priced: list[_Priced], n: int) -> list[tuple[IntArray, FloatArray]]:
    """Each of the `n` demands' feasible options in option order, and their costs."""
    out: list[tuple[IntArray, FloatArray]] = [(_NO_OPTS, _NO_COST)] * n
    for chunk in priced:
        feasible = np.isfinite(chunk.cost)
        for row, d in enumerate(chunk.ids):
            out[d] = (chunk.opts[feasible[row]], chunk.cost[row, feasible[row]])
    return out


def _queued_cards(
    classes: list[JobClass], members: list[tuple[int, str]], ctx: EvalContext
) -> list[float]:
    """Cards of each class greedy leaves waiting: jobs in greedy order at their cheapest fit.

    The classes' options need not be sorted: a class of one job takes the cheapest option it
    fits (ties to the first, as in cost order); a larger class sorts its options once and
    keeps a cursor, as greedy_fill does.
    """
    ledger = Ledger(ctx)
    queued = [0.0] * len(classes)
    cursors: dict[int, tuple[IntArray, int]] = {}
    placeable = [m for m in members if classes[m[0]].placeable]
    for k, _ in greedy_order(classes, placeable):
        cls = classes[k]
        if len(cls.jobs) == 1:
            opt = _cheapest_fit(cls, ledger)
        else:
            ordered, cursor = cursors.get(k) or (cls.opts[np.argsort(cls.cost, kind="stable")], 0)
            cursor = ledger.first_fit(cls.demand, ordered, cursor)
            cursors[k] = (ordered, cursor)
            opt = int(ordered[cursor]) if cursor < ordered.size else -1
        if opt < 0:
            queued[k] += cls.demand.cards
        else:
            ledger.take(cls.demand, opt)
    return queued


def _cheapest_fit(cls: JobClass, ledger: Ledger) -> int:
    """The cheapest of the class's options where one more job fits, or -1."""
    opts = cls.opts
    ok = ledger.fitting(cls.demand, opts)
    at = int(np.argmin(np.where(ok, cls.cost, np.inf)))
    return int(opts[at]) if ok[at] else -1


def _price_delay(
    priced: list[_Priced],
    classes: list[JobClass],
    members: list[tuple[int, str]],
    ctx: EvalContext,
    policy: Policy,
    pool_totals: Mapping[str, Mapping[str, int]] | None,
    expected: ExpectedDemand,
) -> None:
    """Add delay costs where greedy leaves jobs waiting, and the headroom for `expected`.

    The jobs greedy cannot start estimate the queue the batch leaves behind; `expected` the
    demand still to come: serving demand, paid by jobs that do not serve, and speed-scaled
    demand, paid by jobs that do not scale (broker/placement/headroom.py). Every
    pending penalty rises by the largest delay cost per card, so the difference between
    starting and leaving a job is still at least `pending_penalty_hours` of its cards' value.
    """
    queued = _queued_cards(classes, members, ctx)
    if not any(queued) and not expected:
        return
    value = policy.config.accelerator_hour_value_cny
    cards = pool_cards(ctx, pool_totals)
    rho = contention(classes, queued, cards)
    sigma = serving_share(ctx, expected.serving, cards)
    omega = scaled_share(ctx, expected.scaled, cards)
    most = 0.0
    for chunk in priced:
        arrays, opts = chunk.arrays, chunk.opts
        run_h = run_hours_many(arrays, ctx, opts)
        delay = add_delay_costs(chunk.cost, run_h, arrays.cards, rho[opts], value)
        tolerant = np.where(arrays.serving, 0.0, arrays.cards)
        delay += add_delay_costs(chunk.cost, run_h, tolerant, sigma[opts], value)
        fixed = np.asarray([not scales(d) for d in arrays.demands], dtype=bool)
        unscaled = np.where(fixed, arrays.cards, 0.0)
        delay += add_delay_costs(chunk.cost, run_h, unscaled, omega[opts], value)
        most = max(most, delay)
    for cls in classes:
        cls.penalty += most * value * max(cls.demand.cards, 1)


def _set_penalties(classes: list[JobClass], policy: Policy) -> None:
    """What leaving one job of each class pending costs (see capacity.pending_penalty)."""
    config = policy.config
    for cls in classes:
        cls.penalty = pending_penalty(
            cls.demand,
            cls.priority,
            cls.cost,
            config.pending_penalty_hours,
            config.accelerator_hour_value_cny,
            config.pending_penalty_base,
        )


def _explain_unplaceable(classes: list[JobClass], ctx: EvalContext, policy: Policy) -> None:
    """Say why each class no site can take was rejected, from the first few sites."""
    unplaceable = [cls for cls in classes if not cls.placeable]
    if not unplaceable:
        return
    reasons = rejection_reasons(policy, [c.demand for c in unplaceable], ctx, _SHOWN_REASONS)
    more = len(ctx.table.site_ids) - _SHOWN_REASONS
    for cls, shown in zip(unplaceable, reasons, strict=True):
        cls.reason = f"no feasible site ({'; '.join(shown)}{f'; {more} more' if more > 0 else ''})"
