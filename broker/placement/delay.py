"""The delay a batch's placements impose on the jobs left waiting, priced per job class and option.

Waiting is paid per card-hour, so how long a started job holds its cards matters as much as
where it runs: every card-hour it takes from a pool is a card-hour the jobs queued for that
pool wait longer. A job queued for a market of pools (its feasible options) holding C cards
in all waits about 1/C hours longer per card-hour placed in that market. Summed over the
queued jobs' cards, placing a job of `cards` x `duration_h` at option o costs

    cards x duration_h x value x rho[o],  rho[o] = sum over queued classes q using o of
                                                   queued cards of q / pool cards of q's market

which starts short jobs before long ones on a contended pool (the shortest-processing-time
rule for total waiting) and steers jobs away from the pools the queue waits for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from broker.placement.capacity import JobClass
from broker.placement.tables import HOST_ONLY, EvalContext, FloatArray


def pool_cards(
    ctx: EvalContext, totals: Mapping[str, Mapping[str, int]] | None = None
) -> FloatArray:
    """Cards each option's pool holds in all (busy or free); 0 for host-only options.

    `totals` (site id -> model -> cards) overrides the topology's declared counts, e.g. for a
    scaled federation; a site's total of a model is shared among its pools of that model in
    proportion to their declared sizes.
    """
    table = ctx.table
    declared = np.zeros(table.n_options)
    for i, site in enumerate(table.topology.sites):
        opts = table.site_options[i]
        pools = [int(o) for o in opts if table.opt_model[int(o)] != HOST_ONLY]
        for opt, pool in zip(pools, site.pools, strict=True):
            declared[opt] = float(pool.count)
        if totals is None or site.id not in totals:
            continue
        given = totals[site.id]
        for model in {table.opt_model[o] for o in pools}:
            same = [o for o in pools if table.opt_model[o] == model]
            size = float(sum(declared[o] for o in same))
            total = float(given.get(model, 0))
            for o in same:
                declared[o] = total * declared[o] / size if size > 0 else total / len(same)
    return declared


def contention(
    classes: Sequence[JobClass], queued: Sequence[float], cards: FloatArray
) -> FloatArray:
    """rho per option: queued cards per pool card of the market each queued class waits for.

    `queued[k]` is how many cards of class k wait (jobs left pending x cards per job).
    """
    rho = np.zeros(cards.size)
    for cls, waiting in zip(classes, queued, strict=True):
        if waiting <= 0 or cls.opts.size == 0:
            continue
        market = float(cards[cls.opts].sum())
        if market > 0:
            rho[cls.opts] += waiting / market
    return rho


def add_delay_costs(
    cost: FloatArray, duration_h: FloatArray, cards: FloatArray, rho: FloatArray, value: float
) -> float:
    """Add each option's delay cost to `cost` (jobs x options, inf where infeasible), in place.

    `rho` holds the options' contention (columns of `cost`); `duration_h` is each job's run
    time, one per job or one per job and option (on the option's model). Returns the largest
    delay cost per card of any feasible option (in hours of a card's value), which the caller
    adds to every pending penalty so that starting a job still beats leaving cards idle, while
    the job imposing the least delay per card is started first.
    """
    run_h = duration_h if duration_h.ndim == 2 else duration_h[:, None]
    hours = run_h * rho[None, :]
    hours = np.where((cards[:, None] > 0) & np.isfinite(cost), hours, 0.0)
    cost += hours * (cards[:, None] * value)
    return float(hours.max(initial=0.0))
