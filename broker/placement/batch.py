"""Joint placement of the pending queue: the entry points, the order of the methods, the result."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from broker.placement.budget import SolveBudget
from broker.placement.capacity import JobClass, Ledger, objective_cny
from broker.placement.classes import job_classes
from broker.placement.greedy import greedy_assignment, regret_assignment
from broker.placement.headroom import ExpectedDemand
from broker.placement.optimise import Method, optimise
from broker.placement.policy import Policy
from broker.placement.repair import search
from broker.placement.snapshot import FederationSnapshot
from broker.placement.tables import EvalContext, context_for
from computenet.spec import JobSpec

log = logging.getLogger(__name__)

# share of the time budget by which local search stops; the rest builds the result
_SEARCH_BY = 0.92


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A joint placement of many jobs and how good it provably is.

    `objective_cny` counts placed jobs at their cost and jobs that could have run somewhere but
    were left pending at their penalty (see PolicyConfig.pending_penalty_hours); jobs no site
    could take are left out of both numbers. `lp_bound_cny` is a proven lower bound on the
    optimum: the batch LP's (with packing cuts, see broker/placement/cuts.py) if it was solved,
    else every job at its cheapest option. `gap` is (objective - lp_bound) / |lp_bound|.
    `method` says where the returned assignment started: "lp" (diving), "milp", "regret" or
    "greedy"; local search may have improved it since.
    """

    assignment: dict[str, str | None]
    objective_cny: float
    lp_bound_cny: float
    gap: float
    method: Method
    solve_s: float
    models: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def place_batch(
    specs: Sequence[tuple[str, JobSpec]],
    snapshot: FederationSnapshot,
    policy: Policy,
    *,
    time_budget_s: float = 2.0,
    budget: SolveBudget | None = None,
    pool_totals: Mapping[str, Mapping[str, int]] | None = None,
    expected: ExpectedDemand | None = None,
) -> BatchResult:
    """Place all `specs` jointly, never overcommitting a pool's cards or a site's cores and memory.

    Up to PolicyConfig.batch_lp_max_classes job classes, the LP over classes (with packing
    cuts) is dived to whole jobs, and small problems are also solved exactly as a MILP; with
    more classes, jobs are placed in order of what they lose when pushed off their cheapest
    options. Local search then improves the best assignment until the budget runs out: `budget`
    if given (SolveBudget.deterministic for a result that does not depend on machine load,
    broker/placement/budget.py), else `time_budget_s` seconds of wall clock.
    The greedy assignment is always computed too and the cheapest is returned, so the result
    is never worse than greedy. With the "delay" wait model (PolicyConfig.batch_wait_model)
    each option also costs the wait it imposes on the jobs the batch cannot start;
    `pool_totals` (site id -> model -> cards, busy or free) sizes the pools for that, the
    topology's declared counts if not given; `expected` (serving demand per user region and
    speed-scaled demand still to come) makes jobs pay for the headroom that demand needs in
    the pools they hold (broker/placement/headroom.py).
    """
    started = time.perf_counter()
    meter = (budget or SolveBudget(time_s=time_budget_s)).start()
    search_by = meter.share(_SEARCH_BY)
    ctx = context_for(snapshot, single_pool=True)
    classes, members = job_classes(specs, ctx, policy, pool_totals, expected)
    greedy = greedy_assignment(classes, members, ctx)
    best = _Best(classes, greedy, "greedy")
    bound = _trivial_bound(classes)
    placeable = [c for c in classes if c.placeable]
    if len(placeable) > policy.config.batch_lp_max_classes:
        best.offer(regret_assignment(classes, members, ctx), "regret")
    elif placeable:
        lp_bound, candidates = optimise(placeable, greedy, ctx, policy.config, search_by)
        bound = max(bound, lp_bound)
        for chosen, how in candidates:
            best.offer(chosen, how)
    if placeable and best.value > bound + 1e-9 * max(1.0, abs(bound)):
        ledger = _ledger_after(ctx, classes, best.chosen)
        best.offer(search(placeable, dict(best.chosen), ledger, search_by), best.method)
    solve_s = time.perf_counter() - started
    log.info(
        "batch placed jobs=%d classes=%d method=%s solve_s=%.3f work=%.0f",
        len(specs),
        len(classes),
        best.method,
        solve_s,
        meter.spent,
    )
    return _result(classes, members, ctx, best.chosen, best.value, bound, best.method, solve_s)


class _Best:
    """The cheapest assignment offered so far, and how it was found."""

    def __init__(self, classes: list[JobClass], chosen: dict[str, int], method: Method) -> None:
        self.classes = classes
        self.chosen, self.method = chosen, method
        self.value = objective_cny(classes, chosen)

    def offer(self, chosen: dict[str, int], method: Method) -> None:
        value = objective_cny(self.classes, chosen)
        if value < self.value - 1e-9 * max(1.0, abs(self.value)):
            self.chosen, self.method, self.value = chosen, method, value


def place_greedy(
    specs: Sequence[tuple[str, JobSpec]],
    snapshot: FederationSnapshot,
    policy: Policy,
    *,
    pool_totals: Mapping[str, Mapping[str, int]] | None = None,
) -> BatchResult:
    """Place jobs one at a time in priority order, each at its cheapest option that still fits."""
    started = time.perf_counter()
    ctx = context_for(snapshot, single_pool=True)
    classes, members = job_classes(specs, ctx, policy, pool_totals)
    chosen = greedy_assignment(classes, members, ctx)
    value = objective_cny(classes, chosen)
    solve_s = time.perf_counter() - started
    return _result(classes, members, ctx, chosen, value, _trivial_bound(classes), "greedy", solve_s)


def _ledger_after(ctx: EvalContext, classes: list[JobClass], chosen: dict[str, int]) -> Ledger:
    """The capacity left once every job in `chosen` holds its option."""
    ledger = Ledger(ctx)
    for cls in classes:
        for job in cls.jobs:
            pos = chosen.get(job)
            if pos is not None:
                ledger.take(cls.demand, int(cls.opts[pos]))
    return ledger


def _trivial_bound(classes: list[JobClass]) -> float:
    """Every job at its cheapest feasible option, capacity ignored: a valid lower bound."""
    return sum(len(c.jobs) * min(c.penalty, float(c.cost[0])) for c in classes if c.placeable)


def _result(
    classes: list[JobClass],
    members: list[tuple[int, str]],
    ctx: EvalContext,
    chosen: dict[str, int],
    value: float,
    bound: float,
    method: Method,
    solve_s: float,
) -> BatchResult:
    table = ctx.table
    assignment: dict[str, str | None] = {}
    models: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for k, job_id in members:
        pos = chosen.get(job_id)
        if pos is None:
            assignment[job_id] = None
            reasons[job_id] = classes[k].reason or "no capacity left at any feasible site"
        else:
            opt = int(classes[k].opts[pos])
            assignment[job_id] = table.site_ids[int(table.opt_site[opt])]
            models[job_id] = table.opt_model[opt]
    gap = (value - bound) / max(abs(bound), 1.0) if value > bound else 0.0
    return BatchResult(assignment, value, bound, gap, method, solve_s, models, reasons)
