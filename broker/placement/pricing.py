"""Column generation for the batch LP, with a lower bound on the integer optimum from every round.

Each round prices every feasible (class, option) pair with the duals of the restricted LP and
adds those of negative reduced cost. The same prices give a Lagrangian bound: relaxing the
capacity and cut rows with their duals leaves one small problem per class (place its jobs at
the cheapest adjusted options, each option capped, or leave them pending), whose optimum plus
the duals times the limits is below the optimum of the full LP with cuts, hence below the
integer optimum, however early the rounds stop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from broker.placement.budget import PAIR_PRICED, PRICING_ROUND, Deadline
from broker.placement.master import (
    CARDS_ROW,
    CPU_ROW,
    CUT_ROW,
    MEMORY_ROW,
    MasterLp,
    MasterSolution,
)
from broker.placement.option_index import OptionIndex
from broker.placement.tables import FloatArray, IntArray

log = logging.getLogger(__name__)

_RC_TOL = 1e-7
_CG_REL_GAP = 1e-3  # stop once new columns could lower the LP by less than this share


@dataclass(slots=True)
class LpOutcome:
    """The last LP solution of column generation and the best lower bound seen."""

    solved: bool
    value_cny: float
    bound_cny: float
    solution: MasterSolution | None


def column_generation(master: MasterLp, deadline: Deadline, per_round: int) -> LpOutcome:
    """Solve, price every pair, add the best `per_round` per class, until none prices out."""
    outcome = LpOutcome(False, np.inf, -np.inf, None)
    index = master.index
    caps = index.caps(np.arange(index.n_pairs), master.counts, master.ledger)
    while True:
        solution = master.solve(deadline, cut_rounds=0)
        if solution is None:
            return outcome
        bound, additions = price(master, solution, caps, per_round)
        deadline.spend(PRICING_ROUND + index.n_pairs * PAIR_PRICED)
        cut = master.add_violated_cuts(solution.x)
        best = max(outcome.bound_cny, bound)
        outcome = LpOutcome(True, solution.value_cny, best, solution)
        log.debug(
            "batch LP round value=%.2f bound=%.2f columns=%d",
            solution.value_cny,
            bound,
            master.col_flat.size,
        )
        if additions.size == 0 and not cut:
            if _nothing_past_windows(index, solution):
                outcome.bound_cny = max(best, solution.value_cny)  # the full LP's optimum
            return outcome
        if solution.value_cny - best <= _CG_REL_GAP * max(1.0, abs(solution.value_cny)):
            return outcome
        if deadline.passed():
            return outcome
        master.add_columns(additions)


def _nothing_past_windows(index: OptionIndex, solution: MasterSolution) -> bool:
    """True if no option past a class's window could price out at these duals."""
    mu = solution.class_dual
    return not np.any(index.next_cost < mu - _RC_TOL * np.maximum(1.0, np.abs(mu)))


def price(
    master: MasterLp, solution: MasterSolution, caps: FloatArray, per_round: int
) -> tuple[float, IntArray]:
    """Lagrangian bound at these duals, and up to `per_round` improving pairs per class.

    `caps` are the jobs each pair could hold on its own (OptionIndex.caps of every pair).
    """
    index = master.index
    bound, adjusted = lagrangian_bound(index, master, solution, caps)
    mu = solution.class_dual[index.cls]
    reduced = adjusted - mu
    tol = _RC_TOL * np.maximum(1.0, np.abs(mu))
    candidates = np.flatnonzero((reduced < -tol) & ~master.in_model & (caps >= 1))
    return bound, _best_per_class(index.cls, reduced, candidates, per_round)


def lagrangian_bound(
    index: OptionIndex, master: MasterLp, solution: MasterSolution, caps: FloatArray
) -> tuple[float, FloatArray]:
    """Lower bound on placing `index`'s classes, relaxing the master's rows at its duals.

    `index` may be other classes than the master's own (the jobs behind an aggregated LP):
    any duals of valid rows give a valid bound. Also returns the pairs' adjusted costs.
    """
    adjusted = adjusted_costs(index, master, solution.row_dual)
    limits = master.capacity_rows()[3][: solution.row_dual.size]
    bound = float(np.dot(solution.row_dual, limits))
    bound += class_bounds(index, adjusted, index.counts, caps)
    return bound, adjusted


def adjusted_costs(index: OptionIndex, master: MasterLp, row_dual: FloatArray) -> FloatArray:
    """Each pair's cost plus the capacity it uses at the duals' prices (duals are <= 0).

    `row_dual` holds the duals of the master's first rows (those it had when solved).
    """
    ledger = master.ledger
    n_rows = row_dual.size
    kind, key, level, _ = master.capacity_rows()
    kind, key, level = kind[:n_rows], key[:n_rows], level[:n_rows]
    sizes = index.sizes
    per_size = np.zeros((ledger.cards.size, sizes.size))
    at = kind == CARDS_ROW
    per_size[key[at]] += row_dual[at, None] * sizes[None, :]
    at = np.flatnonzero((kind == CUT_ROW) & (row_dual < 0))
    slots = sizes[None, :] // level[at, None]
    np.add.at(per_size, key[at], row_dual[at, None] * slots)
    site_dual = []
    for which in (CPU_ROW, MEMORY_ROW):
        dual = np.zeros(ledger.cpu.size)
        at = kind == which
        dual[key[at]] = row_dual[at]
        site_dual.append(dual[index.site])
    k = index.cls
    used = per_size[index.opt, index.size_of]
    used += index.cpu[k] * site_dual[0] + index.memory_gb[k] * site_dual[1]
    return index.cost - used


def class_bounds(
    index: OptionIndex, adjusted: FloatArray, counts: FloatArray, caps: FloatArray
) -> float:
    """Sum over classes of the cheapest way to place or leave their jobs at these prices.

    Options past a class's window are priced at its `next_cost`, without a cap: they cost at
    least that at any prices, so the sum stays a lower bound.
    """
    room = np.where(caps >= 1, adjusted, np.inf)
    best = np.minimum(np.minimum.reduceat(room, index.start[:-1]), index.next_cost)
    single = counts == 1
    total = float(np.minimum(best[single], index.penalty[single]).sum())
    for k in np.flatnonzero(counts > 1).tolist():
        span = slice(int(index.start[k]), int(index.start[k + 1]))
        prices = np.append(adjusted[span], index.next_cost[k])
        room_k = np.append(caps[span], np.inf if np.isfinite(index.next_cost[k]) else 0.0)
        total += _class_bound(float(index.penalty[k]), float(counts[k]), prices, room_k)
    return total


def _class_bound(penalty: float, count: float, adjusted: FloatArray, caps: FloatArray) -> float:
    """Cheapest way to place or leave pending `count` jobs at these prices, options capped."""
    order = np.argsort(adjusted, kind="stable")
    prices, room = adjusted[order], caps[order]
    useful = (prices < penalty) & (room > 0)
    prices, room = prices[useful], room[useful]
    before = np.concatenate([[0.0], np.cumsum(room)[:-1]])  # room may end in inf
    take = np.clip(count - before, 0.0, room)
    return float(np.dot(take, prices)) + (count - float(take.sum())) * penalty


def _best_per_class(
    cls: IntArray, reduced: FloatArray, candidates: IntArray, per_round: int
) -> IntArray:
    """The `per_round` candidates of least reduced cost in each class."""
    if candidates.size == 0:
        return candidates
    ordered = candidates[np.lexsort((reduced[candidates], cls[candidates]))]
    ks = cls[ordered]
    first = np.searchsorted(ks, ks, side="left")
    rank = np.arange(ks.size) - first
    return ordered[rank < per_round]
