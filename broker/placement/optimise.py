"""From job classes to assignments through the batch LP: columns, cuts, diving, small MILPs.

With many classes (distinct jobs) the LP starts from fewer columns per class and prices only
each class's cheapest options (a window); its bound then charges options past the window at
their least possible price, so it stays valid.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from broker.placement.budget import Deadline
from broker.placement.capacity import JobClass, Ledger
from broker.placement.config import PolicyConfig
from broker.placement.lp import Problem, build_model, solve_milp
from broker.placement.master import MasterLp
from broker.placement.option_index import OptionIndex
from broker.placement.pricing import column_generation
from broker.placement.rounding import assign_whole, dive
from broker.placement.tables import EvalContext, FloatArray, IntArray

Method = Literal["lp", "milp", "greedy", "regret"]
Candidate = tuple[dict[str, int], Method]

_CG_SHARE = 0.5  # of the time left: column generation, then diving until _DIVE_SHARE
_DIVE_SHARE = 0.85
_PAIRS_PER_LP = 400_000  # (class, option) pairs the LP prices; fewer options per class beyond
_MIN_WINDOW = 16
_SEED_COLUMNS = 40_000  # first-round columns; classes get fewer than configured beyond this


def optimise(
    placeable: list[JobClass],
    greedy: dict[str, int],
    ctx: EvalContext,
    config: PolicyConfig,
    until: Deadline,
) -> tuple[float, list[Candidate]]:
    """A lower bound on the optimum and the assignments found from the LP well before `until`.

    Of the time left, column generation may take the first _CG_SHARE and diving (then a small
    problem's MILP) runs until _DIVE_SHARE, so a slow LP still leaves time to dive and for the
    local search after. `greedy` (job -> position in its class's options) seeds the columns.
    """
    generate_by = until.share(_CG_SHARE)
    deadline = until.share(_DIVE_SHARE)
    counts = np.asarray([len(c.jobs) for c in placeable], dtype=np.float64)
    ledger = Ledger(ctx)
    index = OptionIndex(placeable, ledger, counts, window(placeable, greedy))
    master = MasterLp(index, ledger)
    per_class = max(2, min(config.batch_candidates_per_class, _SEED_COLUMNS // len(placeable)))
    master.add_columns(seed_columns(index, placeable, greedy, per_class))
    lp = column_generation(master, generate_by, per_class)
    if not lp.solved or lp.solution is None:
        return lp.bound_cny, []
    integral = _integral(lp.solution.x)
    columns = _columns_by_class(master, len(placeable))
    candidates: list[Candidate] = [(dive(placeable, master, lp.solution, ledger, deadline), "lp")]
    if _small(master, counts, config) and not integral:
        exact = _milp(placeable, counts, ledger, columns, ctx, deadline)
        if exact is not None:
            candidates.append((exact, "milp"))
    return lp.bound_cny, candidates


def window(classes: list[JobClass], greedy: dict[str, int]) -> IntArray | None:
    """Options per class the LP considers: all, unless that makes more than _PAIRS_PER_LP pairs.

    Then the same number for every class, at least _MIN_WINDOW and at least enough for the
    options greedy chose, so the LP can still do what greedy did.
    """
    sizes = np.asarray([c.opts.size for c in classes], dtype=np.int64)
    if int(sizes.sum()) <= _PAIRS_PER_LP:
        return None
    ordered = np.sort(sizes)
    below = np.concatenate([[0], np.cumsum(ordered)])
    # the largest w with sum(min(size, w)) <= _PAIRS_PER_LP, by bisection on w
    low, high = _MIN_WINDOW, int(ordered[-1])
    while low < high:
        w = (low + high + 1) // 2
        n_small = int(np.searchsorted(ordered, w))
        if int(below[n_small]) + w * (ordered.size - n_small) <= _PAIRS_PER_LP:
            low = w
        else:
            high = w - 1
    needed = np.zeros(len(classes), dtype=np.int64)
    for k, cls in enumerate(classes):
        for job in cls.jobs:
            if job in greedy:
                needed[k] = max(needed[k], greedy[job] + 1)
    return np.maximum(needed, low)


def seed_columns(
    index: OptionIndex, classes: list[JobClass], greedy: dict[str, int], per_class: int
) -> IntArray:
    """Each class's cheapest options plus those greedy used, so the LP can reproduce greedy."""
    sizes = np.diff(index.start)
    first = np.minimum(sizes, per_class)
    cheapest = np.repeat(index.start[:-1], first) + (
        np.arange(int(first.sum())) - np.repeat(np.cumsum(first) - first, first)
    )
    used = [
        int(index.start[k]) + greedy[job]
        for k, cls in enumerate(classes)
        for job in cls.jobs
        if job in greedy
    ]
    return np.union1d(cheapest, np.asarray(used, dtype=np.int64)).astype(np.int64)


def _milp(
    classes: list[JobClass],
    counts: FloatArray,
    ledger: Ledger,
    columns: list[IntArray],
    ctx: EvalContext,
    deadline: Deadline,
) -> dict[str, int] | None:
    """The problem restricted to `columns` (per class) solved exactly, if in time."""
    model = build_model(Problem(classes, counts, ledger, len(ctx.table.site_ids)), columns)
    exact = solve_milp(model, deadline)
    if exact is None:
        return None
    return assign_whole(classes, model.var_class, model.var_pos, exact, ledger)


def _columns_by_class(master: MasterLp, n_classes: int) -> list[IntArray]:
    """Positions into each class's options of the master's columns."""
    index = master.index
    flat = np.sort(master.col_flat)
    ks = index.cls[flat]
    cuts = np.searchsorted(ks, np.arange(n_classes + 1))
    positions = flat - index.start[ks]
    return [positions[cuts[k] : cuts[k + 1]] for k in range(n_classes)]


def _small(master: MasterLp, counts: FloatArray, config: PolicyConfig) -> bool:
    return master.col_flat.size + counts.size <= config.batch_milp_max_variables


def _integral(x: FloatArray) -> bool:
    return bool(np.all(np.abs(x - np.round(x)) <= 1e-6))
