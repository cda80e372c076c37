"""Turning a fractional batch LP solution into whole jobs on whole pools, by fix-and-resolve diving.

Each round places the whole jobs the LP already agrees on (floors), or if there are none rounds
up the fractional parts of at least one half, then re-solves the LP, warm, for the jobs left
over in the capacity left over. Bigger and higher-priority jobs are fixed first, since small
jobs fit around them more easily than the other way round. Whatever is left when the LP stops
placing jobs, or time runs out, is filled greedily.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from broker.placement.budget import COLUMN, Deadline
from broker.placement.capacity import JobClass, Ledger, greedy_fill
from broker.placement.master import MasterLp, MasterSolution
from broker.placement.tables import FloatArray, IntArray

_MAX_ROUNDS = 40
_ROUND_UP_FROM = 0.5
_TIERS_MIN_CARDS = (64, 8, 0)  # fix big jobs before small ones fill in around them


def dive(
    classes: list[JobClass],
    master: MasterLp,
    solution: MasterSolution,
    ledger: Ledger,
    deadline: Deadline,
) -> dict[str, int]:
    """An integral assignment of `classes`' jobs following the LP `solution` of `master`.

    `ledger` holds the capacity the jobs may use; neither it nor the master's bounds are
    restored afterwards (the master is left bounded to the capacity that was left).
    """
    ledger = ledger.copy()
    waiting = [deque(cls.jobs) for cls in classes]
    chosen: dict[str, int] = {}
    col_class, col_pos = master.col_class, master.col_pos
    # columns added after the solution was found hold no jobs in it
    x = np.concatenate([solution.x, np.zeros(col_class.size - solution.x.size)])
    tier = 0
    for _ in range(_MAX_ROUNDS):
        placed = _fix(classes, col_class, col_pos, x, ledger, waiting, chosen, tier)
        deadline.spend(col_class.size * COLUMN)
        if not any(waiting) or deadline.passed():
            break
        if not placed:
            if tier + 1 == len(_TIERS_MIN_CARDS):
                break
            tier += 1
            continue
        master.set_capacity(np.asarray([len(w) for w in waiting], dtype=np.float64), ledger)
        resolved = master.solve(deadline)
        if resolved is None:
            break
        x = resolved.x
    _fill_rest(classes, waiting, ledger, chosen)
    return chosen


def _fix(
    classes: list[JobClass],
    col_class: IntArray,
    col_pos: IntArray,
    x: FloatArray,
    ledger: Ledger,
    waiting: list[deque[str]],
    chosen: dict[str, int],
    tier: int,
) -> int:
    """Place the LP's whole jobs of the tier's size; if none, round up the largest fractions."""
    priority = np.asarray([c.priority for c in classes], dtype=np.float64)[col_class]
    cards = np.asarray([c.demand.cards for c in classes], dtype=np.float64)[col_class]
    penalty = np.asarray([c.penalty for c in classes], dtype=np.float64)[col_class]
    values = np.where(cards >= _TIERS_MIN_CARDS[tier], x, 0.0)
    whole = np.floor(values + 1e-6)
    live = np.flatnonzero(whole >= 1)
    order = live[np.lexsort((live, -values[live], -cards[live], -priority[live]))]
    placed = 0
    for v in order.tolist():
        k = int(col_class[v])
        placed += _take(classes[k], waiting[k], int(col_pos[v]), int(whole[v]), ledger, chosen)
    if placed:
        return placed
    weight = values * cards * penalty
    live = np.flatnonzero(values > 1e-6)
    for v in live[np.lexsort((live, -weight[live]))].tolist():
        if values[v] >= _ROUND_UP_FROM or not placed:
            k = int(col_class[v])
            placed += _take(classes[k], waiting[k], int(col_pos[v]), 1, ledger, chosen)
    return placed


def _take(
    cls: JobClass, waiting: deque[str], pos: int, count: int, ledger: Ledger, chosen: dict[str, int]
) -> int:
    opt = int(cls.opts[pos])
    taken = 0
    while taken < count and waiting and ledger.fits(cls.demand, opt):
        ledger.take(cls.demand, opt)
        chosen[waiting.popleft()] = pos
        taken += 1
    return taken


def _fill_rest(
    classes: list[JobClass], waiting: list[deque[str]], ledger: Ledger, chosen: dict[str, int]
) -> None:
    order = [(k, job) for k in range(len(classes)) for job in waiting[k]]
    order.sort(key=lambda item: (-classes[item[0]].priority, -classes[item[0]].demand.cards))
    greedy_fill(classes, order, ledger, chosen)


def assign_whole(
    classes: list[JobClass], col_class: IntArray, col_pos: IntArray, x: FloatArray, ledger: Ledger
) -> dict[str, int]:
    """The jobs of an integral solution `x`, big ones first; any that do not fit, greedily."""
    ledger = ledger.copy()
    waiting = [deque(cls.jobs) for cls in classes]
    chosen: dict[str, int] = {}
    every_size = len(_TIERS_MIN_CARDS) - 1
    whole = np.round(x[: col_class.size])  # x may go on with the pending counts
    _fix(classes, col_class, col_pos, whole, ledger, waiting, chosen, every_size)
    _fill_rest(classes, waiting, ledger, chosen)
    return chosen
