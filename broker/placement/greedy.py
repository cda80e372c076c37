"""Greedy placements of a batch: priority order (the baseline), and regret order.

Both give each job, in turn, its cheapest option that still fits; they differ in the order.
"""

from __future__ import annotations

import numpy as np

from broker.placement.capacity import JobClass, Ledger, greedy_fill, greedy_order
from broker.placement.tables import EvalContext

_REGRET_RANK = 4  # regret: the cost of the fifth cheapest option over the cheapest


def greedy_assignment(
    classes: list[JobClass], members: list[tuple[int, str]], ctx: EvalContext
) -> dict[str, int]:
    """Each job in priority order (then largest first) at its cheapest option that still fits."""
    chosen: dict[str, int] = {}
    placeable = [m for m in members if classes[m[0]].placeable]
    greedy_fill(classes, greedy_order(classes, placeable), Ledger(ctx), chosen)
    return chosen


def regret_assignment(
    classes: list[JobClass], members: list[tuple[int, str]], ctx: EvalContext
) -> dict[str, int]:
    """Each job at its cheapest option that still fits, the jobs with most to lose first.

    What a job loses per card if it cannot have its cheapest option: the cost of its fifth
    cheapest instead (or of waiting, if it has one option). Jobs that are cheap anywhere
    yield the contended pools to those that are not.
    """
    regret = np.zeros(len(classes))
    for k, cls in enumerate(classes):
        if cls.placeable:
            other = cls.cost[_REGRET_RANK] if cls.opts.size > _REGRET_RANK else cls.cost[-1]
            lost = other - cls.cost[0] if cls.opts.size > 1 else cls.penalty - cls.cost[0]
            regret[k] = lost / max(cls.demand.cards, 1)
    placeable = [m for m in members if classes[m[0]].placeable]
    order = sorted(range(len(placeable)), key=lambda i: (-regret[placeable[i][0]], i))
    chosen: dict[str, int] = {}
    greedy_fill(classes, [placeable[i] for i in order], Ledger(ctx), chosen)
    return chosen
