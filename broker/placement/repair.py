"""Local search on an integral batch assignment: moves that lower its cost, and re-matching.

Rounding a fractional LP leaves holes: pools with a few free cards that no pending job fits,
while a large job waits. Two moves repair that, each kept only if the objective falls:

* **relocate**: a placed job moves to a cheaper option that has room now;
* **insert with ejection**: a pending job goes to an option after the placed jobs there that
  are cheapest to displace make room; each displaced job moves to the cheapest other option
  that has room, or waits (paying its pending penalty).

Between rounds of moves, the jobs of each size are re-matched to that size's places at least
total cost (broker/placement/rematch.py), which finds the swaps and cycles single moves miss.
Capacity is checked with the same ledger as greedy and rounding, so no move overcommits.
"""

from __future__ import annotations

import logging

import numpy as np

from broker.placement.budget import MOVE, Deadline
from broker.placement.capacity import JobClass, Ledger, objective_cny
from broker.placement.rematch import rematch
from broker.placement.tables import BoolArray

log = logging.getLogger(__name__)

_EPS = 1e-9
_MAX_OPTIONS_TRIED = 24  # per pending job and pass, the most promising options only
_MAX_PASSES = 4
_CHECK_EVERY = 16  # deadline checks, in moves tried


class _State:
    """The assignment being improved: what runs where, and the ledger of what is left.

    `chosen` maps a placed job to the position of its option in its class's options.
    """

    def __init__(self, classes: list[JobClass], chosen: dict[str, int], ledger: Ledger) -> None:
        self.classes = classes
        self.ledger = ledger
        self.chosen = chosen
        self.at: dict[int, dict[str, int]] = {}  # option -> placed job -> class
        for k, cls in enumerate(classes):
            for job in cls.jobs:
                pos = chosen.get(job)
                if pos is not None:
                    self.at.setdefault(int(cls.opts[pos]), {})[job] = k

    def cost(self, k: int, pos: int) -> float:
        return float(self.classes[k].cost[pos])

    def fitting(self, k: int) -> BoolArray:
        """Which of class k's options (cost order) can take one more job now."""
        cls = self.classes[k]
        return self.ledger.fitting(cls.demand, cls.opts)

    def place(self, job: str, k: int, pos: int) -> None:
        opt = int(self.classes[k].opts[pos])
        self.ledger.take(self.classes[k].demand, opt)
        self.chosen[job] = pos
        self.at.setdefault(opt, {})[job] = k

    def remove(self, job: str, k: int) -> int:
        pos = self.chosen.pop(job)
        opt = int(self.classes[k].opts[pos])
        del self.at[opt][job]
        self.ledger.release(self.classes[k].demand, opt)
        return pos


def search(
    classes: list[JobClass], chosen: dict[str, int], ledger: Ledger, deadline: Deadline
) -> dict[str, int]:
    """Re-matching each size's jobs to its places, and local moves, until neither helps.

    `ledger` must hold the capacity left after `chosen`; both are updated in place.
    """
    value = objective_cny(classes, chosen)
    for _ in range(_MAX_PASSES):
        rematch(classes, chosen, ledger, deadline)  # first: it finds the most, size by size
        rematched = objective_cny(classes, chosen)
        if deadline.passed():
            break
        chosen = improve(classes, chosen, ledger, deadline)
        now = objective_cny(classes, chosen)
        log.debug("batch search rematched=%.2f moves=%.2f", rematched, now)
        if now >= value - _EPS * max(1.0, abs(value)):
            break
        value = now
    return chosen


def improve(
    classes: list[JobClass], chosen: dict[str, int], ledger: Ledger, deadline: Deadline
) -> dict[str, int]:
    """A cheaper (never dearer) assignment reached from `chosen` by local moves before `deadline`.

    `ledger` must hold the capacity left after `chosen`; both are updated in place.
    """
    state = _State(classes, chosen, ledger)
    for _ in range(_MAX_PASSES):
        if deadline.passed():
            break
        gained = _relocate_all(state, deadline)
        gained += _insert_pending(state, deadline)
        if gained <= _EPS:
            break
    return state.chosen


def _relocate_all(state: _State, deadline: Deadline) -> float:
    """Move placed jobs to cheaper options with room, dearest savings first per class."""
    gained = 0.0
    for k, cls in enumerate(state.classes):
        if deadline.passed():
            break
        placed = [j for j in cls.jobs if j in state.chosen]
        if not placed or cls.opts.size < 2:
            continue
        placed.sort(key=lambda j: -state.chosen[j])
        for job in placed:
            here = state.chosen[job]
            if here == 0:
                break
            deadline.spend(MOVE)
            ok = state.fitting(k)[:here]
            if not ok.any():
                break
            better = int(np.argmax(ok))
            gained += float(cls.cost[here] - cls.cost[better])
            state.remove(job, k)
            state.place(job, k, better)
    return gained


def _insert_pending(state: _State, deadline: Deadline) -> float:
    """Place pending jobs, largest value first, displacing cheaper placed jobs where it pays."""
    classes = state.classes
    pending = [
        (k, job) for k, cls in enumerate(classes) for job in cls.jobs if job not in state.chosen
    ]
    pending.sort(key=lambda kj: (-classes[kj[0]].penalty, kj[1]))
    gained = 0.0
    for n, (k, job) in enumerate(pending):
        if n % _CHECK_EVERY == 0 and deadline.passed():
            break
        step = _try_insert(state, k, job, deadline)
        gained += step
    return gained


def _try_insert(state: _State, k: int, job: str, deadline: Deadline) -> float:
    cls = state.classes[k]
    deadline.spend(MOVE)
    ok = state.fitting(k)
    if ok.any():
        i = int(np.argmax(ok))
        state.place(job, k, i)
        return float(cls.penalty - cls.cost[i])
    d = cls.demand
    ledger = state.ledger
    opts = cls.opts
    held = np.asarray([_held_cards(state, int(o)) for o in opts.tolist()], dtype=np.float64)
    room = ledger.cards[opts].astype(np.float64) + held
    value = cls.penalty - cls.cost
    # options whose cards could make room, most room relative to the need first
    usable = np.flatnonzero((room >= ledger.needs(d.cards, opts)) & (value > 0))
    if usable.size == 0:
        return 0.0
    usable = usable[np.argsort(-value[usable] + 1e-3 * room[usable], kind="stable")]
    for i in usable[:_MAX_OPTIONS_TRIED].tolist():
        deadline.spend(MOVE)
        delta = _eject_and_insert(state, k, job, i)
        if delta > _EPS:
            return delta
    return 0.0


def _held_cards(state: _State, opt: int) -> int:
    jobs = state.at.get(opt)
    if not jobs:
        return 0
    return sum(state.ledger.need(state.classes[c].demand.cards, opt) for c in jobs.values())


def _eject_and_insert(state: _State, k: int, job: str, i: int) -> float:
    """Make room at class k's option i by displacing jobs; keep it if the objective falls."""
    cls = state.classes[k]
    opt = int(cls.opts[i])
    d = cls.demand
    ledger = state.ledger
    residents = [(other, c, state.chosen[other]) for other, c in state.at.get(opt, {}).items()]
    # cheapest to displace first: least lost per card if it had to wait
    residents.sort(
        key=lambda r: (
            (state.classes[r[1]].penalty - state.cost(r[1], r[2]))
            / max(state.classes[r[1]].demand.cards, 1),
            r[0],
        )
    )
    gain = float(cls.penalty - cls.cost[i])
    ejected: list[tuple[str, int, int]] = []
    for other, c, pos in residents:
        if ledger.fits(d, opt):
            break
        state.remove(other, c)
        ejected.append((other, c, pos))
        gain -= state.classes[c].penalty - state.cost(c, pos)
        if gain <= _EPS:
            break
    if gain <= _EPS or not ledger.fits(d, opt):
        _undo(state, ejected)
        return 0.0
    state.place(job, k, i)
    moved: list[tuple[str, int]] = []
    for other, c, _ in sorted(ejected, key=lambda r: -state.classes[r[1]].demand.cards):
        ok = state.fitting(c)
        if ok.any():
            j = int(np.argmax(ok))
            state.place(other, c, j)
            moved.append((other, c))
            gain += state.classes[c].penalty - float(state.classes[c].cost[j])
    if gain <= _EPS:
        for other, c in moved:
            state.remove(other, c)
        state.remove(job, k)
        _undo(state, ejected)
        return 0.0
    return gain


def _undo(state: _State, ejected: list[tuple[str, int, int]]) -> None:
    for other, c, pos in ejected:
        state.place(other, c, pos)
