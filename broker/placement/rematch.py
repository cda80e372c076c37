"""Re-matching jobs of one size to places of that size, at least total cost, size after size.

Jobs that need the same cards, cores and memory can trade places without changing what any
pool or site holds. For one size, its jobs, the places they hold and the room left where one
more such job fits form a min-cost flow (job -> pool -> site, or pending); its LP has whole-
number optima, which HiGHS finds in a few milliseconds. Every job keeps its current place among
its columns, so no size gets dearer; the others are each job's cheapest candidates.
"""

from __future__ import annotations

import time
from collections import defaultdict

import highspy
import numpy as np

from broker.placement.capacity import JobClass, Ledger
from broker.placement.tables import FloatArray, IntArray

_CANDIDATES_PER_JOB = 8
_EPS = 1e-9
_INF = highspy.kHighsInf


def rematch(
    classes: list[JobClass], chosen: dict[str, int], ledger: Ledger, deadline: float
) -> None:
    """Improve `chosen` (job -> position in its class's options) and `ledger` in place."""
    by_size: dict[tuple[int, float, float], list[int]] = defaultdict(list)
    for k, cls in enumerate(classes):
        d = cls.demand
        by_size[(d.cards, d.cpu_cores, d.memory_gb)].append(k)
    for ks in sorted(by_size.values(), key=lambda ks: -sum(len(classes[k].jobs) for k in ks)):
        if time.perf_counter() >= deadline:
            return
        if sum(len(classes[k].jobs) for k in ks) > 1:
            _rematch_size(classes, ks, chosen, ledger)


def _rematch_size(
    classes: list[JobClass], ks: list[int], chosen: dict[str, int], ledger: Ledger
) -> None:
    jobs = [(k, job) for k in ks for job in classes[k].jobs]
    demand = classes[ks[0]].demand
    held = {job: chosen.pop(job) for _, job in jobs if job in chosen}
    for k, job in jobs:  # free this size's places; the flow hands them out again
        if job in held:
            ledger.release(demand, int(classes[k].opts[held[job]]))
    room = _room(classes, ks, ledger)
    cols = _columns(classes, jobs, held, room)
    x = _solve(classes, jobs, cols, room, ledger)
    if not np.all(np.abs(x - np.round(x)) <= 1e-6):  # not a vertex: keep the old places
        x = np.asarray([float(held.get(jobs[r][1]) == pos) for r, pos in cols])
    taken: list[tuple[str, int, int]] = []
    for (r, pos), value in zip(cols, x, strict=True):
        k, job = jobs[r]
        opt = int(classes[k].opts[pos])
        if value > 0.5:
            ledger.take(demand, opt)
            taken.append((job, k, pos))
    for job, _, pos in taken:
        chosen[job] = pos


def _room(classes: list[JobClass], ks: list[int], ledger: Ledger) -> IntArray:
    """Per option, how many more jobs of this size it could take on its own."""
    demand = classes[ks[0]].demand
    most = np.full(ledger.cards.size, np.iinfo(np.int64).max // 4, dtype=np.int64)
    sites = ledger.opt_site
    for need, free in (
        (demand.cards, ledger.cards),
        (demand.cpu_cores, ledger.cpu[sites]),
        (demand.memory_gb, ledger.memory_gb[sites]),
    ):
        if need > 0:
            most = np.minimum(most, np.floor(free / need + _EPS).astype(np.int64))
    return np.maximum(most, 0)


def _columns(
    classes: list[JobClass],
    jobs: list[tuple[int, str]],
    held: dict[str, int],
    room: IntArray,
) -> list[tuple[int, int]]:
    """(job row, position) pairs: each job's place and its cheapest options with room."""
    cols: list[tuple[int, int]] = []
    open_at: dict[int, list[int]] = {}
    for r, (k, job) in enumerate(jobs):
        if k not in open_at:
            open_at[k] = np.flatnonzero(room[classes[k].opts] > 0)[:_CANDIDATES_PER_JOB].tolist()
        here = held.get(job)
        these = open_at[k] if here is None or here in open_at[k] else [*open_at[k], here]
        cols.extend((r, p) for p in these)
    return cols


def _solve(
    classes: list[JobClass],
    jobs: list[tuple[int, str]],
    cols: list[tuple[int, int]],
    room: IntArray,
    ledger: Ledger,
) -> FloatArray:
    """The min-cost flow's LP: each job placed once or pending, options and sites within room."""
    demand = classes[jobs[0][0]].demand
    n_jobs = len(jobs)
    rows = np.asarray([r for r, _ in cols], dtype=np.int64)
    opt = np.empty(rows.size, dtype=np.int64)
    cost = np.empty(rows.size)
    for at, (r, p) in enumerate(cols):
        cls = classes[jobs[r][0]]
        opt[at], cost[at] = cls.opts[p], cls.cost[p]
    pools, pool_at = np.unique(opt, return_inverse=True)
    sites, site_at = np.unique(ledger.opt_site[pools], return_inverse=True)
    highs = highspy.Highs()
    highs.silent()
    highs.setOptionValue("solver", "simplex")  # a vertex: whole numbers, as the flow is unimodular
    pool_room = room[pools].astype(np.float64)
    site_room = _site_room(demand.cpu_cores, demand.memory_gb, sites, ledger)
    _add_rows(highs, np.ones(n_jobs), np.ones(n_jobs))
    _add_rows(highs, np.full(pools.size, -_INF), pool_room)
    _add_rows(highs, np.full(sites.size, -_INF), site_room)
    penalty = np.asarray([classes[k].penalty for k, _ in jobs])
    _add_unit_cols(highs, penalty, [np.arange(n_jobs)])
    pool_rows = n_jobs + pool_at
    site_rows = n_jobs + pools.size + site_at[pool_at]
    _add_unit_cols(highs, cost, [rows, pool_rows, site_rows])
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError("rematch flow not solved")  # cannot happen: pending is always open
    return np.asarray(highs.getSolution().col_value)[n_jobs:]


def _site_room(cpu: float, memory_gb: float, sites: IntArray, ledger: Ledger) -> FloatArray:
    most = np.full(sites.size, float(np.iinfo(np.int64).max // 4))
    for need, free in ((cpu, ledger.cpu[sites]), (memory_gb, ledger.memory_gb[sites])):
        if need > 0:
            most = np.minimum(most, np.floor(free / need + _EPS))
    return most


def _add_rows(highs: highspy.Highs, lower: FloatArray, upper: FloatArray) -> None:
    empty = np.zeros(0, dtype=np.int32)
    highs.addRows(lower.size, lower, upper, 0, empty, empty, np.zeros(0))


def _add_unit_cols(highs: highspy.Highs, cost: FloatArray, rows: list[IntArray]) -> None:
    """Columns in [0, 1] of `cost`, each with a 1 in the given rows (one array per entry)."""
    n = cost.size
    index = np.stack(rows, axis=1).reshape(-1).astype(np.int32)
    starts = (np.arange(n) * len(rows)).astype(np.int32)
    highs.addCols(n, cost, np.zeros(n), np.ones(n), index.size, starts, index, np.ones(index.size))
