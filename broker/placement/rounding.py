"""Turning a fractional batch LP solution into whole jobs on whole pools, by fix-and-resolve diving.

Each round places the whole jobs the LP already agrees on (floors), rounds up the fractional
parts of at least one half, then re-solves the LP for the jobs left over in the capacity left
over. Bigger and higher-priority jobs are fixed first, since small jobs fit around them more
easily than the other way round. Whatever is left when the LP stops placing jobs, or time runs
out, is filled greedily.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from broker.placement.capacity import JobClass, Ledger, greedy_fill
from broker.placement.lp import LpModel, Problem, build_model, solve_lp
from broker.placement.tables import FloatArray, IntArray

_MAX_ROUNDS = 25
_ROUND_UP_FROM = 0.5
_TIERS_MIN_CARDS = (64, 8, 0)  # fix big jobs before small ones fill in around them


def dive(
    problem: Problem,
    columns: list[IntArray],
    model: LpModel,
    x: FloatArray,
    deadline: float,
) -> dict[str, int]:
    """An integral assignment of the problem's jobs following the LP solution `x` of `model`."""
    classes = problem.classes
    ledger = problem.ledger.copy()
    waiting = [deque(cls.jobs) for cls in classes]
    chosen: dict[str, int] = {}
    active = list(range(len(classes)))  # problem class index of each class in the current model
    tiers = _TIERS_MIN_CARDS
    tier = 0
    for _ in range(_MAX_ROUNDS):
        placed = _fix(classes, active, model, x, ledger, waiting, chosen, tiers[tier])
        left = [k for k in range(len(classes)) if waiting[k]]
        if not left or time.perf_counter() >= deadline:
            break
        if not placed:
            if tier + 1 == len(tiers):
                break
            tier += 1
            continue
        counts = np.asarray([len(waiting[k]) for k in left], dtype=np.float64)
        residual = Problem([classes[k] for k in left], counts, ledger, problem.n_sites)
        model = build_model(residual, [columns[k] for k in left])
        res = solve_lp(model, deadline)
        if res is None:
            break
        x, active = np.asarray(res.x), left  # type: ignore[attr-defined]
    _fill_rest(classes, waiting, ledger, chosen)
    return chosen


def _fix(
    classes: list[JobClass],
    active: list[int],
    model: LpModel,
    x: FloatArray,
    ledger: Ledger,
    waiting: list[deque[str]],
    chosen: dict[str, int],
    min_cards: int,
) -> int:
    """Place the LP's whole jobs of at least `min_cards`; if none, round up the largest fraction."""
    active_arr = np.asarray(active, dtype=np.int64)
    ks = active_arr[model.var_class]
    priority = np.asarray([c.priority for c in classes], dtype=np.float64)[ks]
    cards = np.asarray([c.demand.cards for c in classes], dtype=np.float64)[ks]
    penalty = np.asarray([c.penalty for c in classes], dtype=np.float64)[ks]
    values = x[: model.var_opt.size].copy()
    values[cards < min_cards] = 0.0
    whole = np.floor(values + 1e-6)
    live = np.flatnonzero(whole >= 1)
    order = live[np.lexsort((live, -values[live], -cards[live], -priority[live]))]
    placed = 0
    for v in order.tolist():
        k = int(ks[v])
        placed += _take(
            classes[k], waiting[k], int(model.var_opt[v]), int(whole[v]), ledger, chosen
        )
    if placed:
        return placed
    weight = values * cards * penalty
    live = np.flatnonzero(values > 1e-6)
    for v in live[np.lexsort((live, -weight[live]))].tolist():
        if values[v] >= _ROUND_UP_FROM or not placed:
            k = int(ks[v])
            placed += _take(classes[k], waiting[k], int(model.var_opt[v]), 1, ledger, chosen)
    return placed


def _take(
    cls: JobClass, waiting: deque[str], opt: int, count: int, ledger: Ledger, chosen: dict[str, int]
) -> int:
    taken = 0
    while taken < count and waiting and ledger.fits(cls.demand, opt):
        ledger.take(cls.demand, opt)
        chosen[waiting.popleft()] = opt
        taken += 1
    return taken


def _fill_rest(
    classes: list[JobClass], waiting: list[deque[str]], ledger: Ledger, chosen: dict[str, int]
) -> None:
    order = [(k, job) for k in range(len(classes)) for job in waiting[k]]
    order.sort(key=lambda item: (-classes[item[0]].priority, -classes[item[0]].demand.cards))
    greedy_fill(classes, order, ledger, chosen)
