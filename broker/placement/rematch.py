"""Re-matching jobs of one size to places of that size, at least total cost, size after size.

Jobs that need the same cards, cores and memory can trade places without changing what any
pool or site holds. For one size, its jobs, the places they hold and the room left where one
more such job fits form a min-cost flow (job -> pool -> site, or pending); its LP has whole-
number optima. HiGHS starts from the current places (a feasible basis), so it only makes the
improving pivots. Every job keeps its current place among its columns, so no size gets
dearer; the others are each job's cheapest options with room.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import highspy
import numpy as np

from broker.placement.capacity import JobClass, Ledger
from broker.placement.tables import BoolArray, FloatArray, IntArray

_CANDIDATES_PER_JOB = 24
_EPS = 1e-9
_INF = highspy.kHighsInf
_BIG = np.iinfo(np.int64).max // 4


@dataclass(frozen=True, slots=True)
class _Flow:
    """One size's jobs and their columns: (job row, position in its class's options)."""

    jobs: list[tuple[int, str]]  # (class, job)
    row: IntArray
    pos: IntArray
    opt: IntArray
    cost: FloatArray
    held: BoolArray  # the column is the job's current place


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
    demand = classes[ks[0]].demand
    jobs = [(k, job) for k in ks for job in classes[k].jobs]
    held = {job: chosen.pop(job) for _, job in jobs if job in chosen}
    for k, job in jobs:  # free this size's places; the flow hands them out again
        if job in held:
            ledger.release(demand, int(classes[k].opts[held[job]]))
    flow = _columns(classes, jobs, held, _room(classes[ks[0]], ledger))
    x = _solve(classes, flow, ledger)
    if not np.all(np.abs(x - np.round(x)) <= 1e-6):  # not a vertex: keep the old places
        x = flow.held.astype(np.float64)
    for c in np.flatnonzero(x > 0.5).tolist():
        ledger.take(demand, int(flow.opt[c]))
        chosen[flow.jobs[int(flow.row[c])][1]] = int(flow.pos[c])


def _room(cls: JobClass, ledger: Ledger) -> IntArray:
    """Per option, how many more jobs of this class's size it could take on its own."""
    demand = cls.demand
    most = np.full(ledger.cards.size, _BIG, dtype=np.int64)
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
    classes: list[JobClass], jobs: list[tuple[int, str]], held: dict[str, int], room: IntArray
) -> _Flow:
    """Each job's place and its cheapest options with room."""
    open_at: dict[int, IntArray] = {}
    rows, positions = [], []
    for r, (k, job) in enumerate(jobs):
        if k not in open_at:
            open_at[k] = np.flatnonzero(room[classes[k].opts] > 0)[:_CANDIDATES_PER_JOB]
        these = open_at[k]
        here = held.get(job)
        if here is not None and not np.any(these == here):
            these = np.append(these, here)
        rows.append(np.full(these.size, r, dtype=np.int64))
        positions.append(these)
    row, pos = np.concatenate(rows), np.concatenate(positions).astype(np.int64)
    pairs = list(zip(jobs, positions, strict=True))
    opt = np.concatenate([classes[k].opts[p] for (k, _), p in pairs])
    cost = np.concatenate([classes[k].cost[p] for (k, _), p in pairs])
    at_place = np.asarray([held.get(job, -1) for _, job in jobs], dtype=np.int64)[row] == pos
    return _Flow(jobs, row, pos, opt.astype(np.int64), cost, at_place)


def _solve(classes: list[JobClass], flow: _Flow, ledger: Ledger) -> FloatArray:
    """The min-cost flow's LP: each job placed once or pending, options and sites within room."""
    demand = classes[flow.jobs[0][0]].demand
    n_jobs = len(flow.jobs)
    pools, pool_at = np.unique(flow.opt, return_inverse=True)
    sites, site_at = np.unique(ledger.opt_site[pools], return_inverse=True)
    highs = highspy.Highs()
    highs.silent()
    highs.setOptionValue("solver", "simplex")  # a vertex: whole numbers, as the flow is unimodular
    _add_rows(highs, np.ones(n_jobs), np.ones(n_jobs))
    room = _room(classes[flow.jobs[0][0]], ledger)
    _add_rows(highs, np.full(pools.size, -_INF), room[pools].astype(np.float64))
    site_room = _site_room(demand.cpu_cores, demand.memory_gb, sites, ledger)
    _add_rows(highs, np.full(sites.size, -_INF), site_room)
    penalty = np.asarray([classes[k].penalty for k, _ in flow.jobs])
    _add_unit_cols(highs, penalty, [np.arange(n_jobs)])
    pool_rows = n_jobs + pool_at
    site_rows = n_jobs + pools.size + site_at[pool_at]
    _add_unit_cols(highs, flow.cost, [flow.row, pool_rows, site_rows])
    _start_from(highs, flow, n_jobs, pools.size + sites.size)
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError("rematch flow not solved")  # cannot happen: pending is always open
    return np.asarray(highs.getSolution().col_value)[n_jobs:]


def _start_from(highs: highspy.Highs, flow: _Flow, n_jobs: int, n_capacity_rows: int) -> None:
    """Start from the current places: a feasible basis, so only improving pivots remain.

    Each job's basic column is its place (or its pending column), every capacity row's slack
    is basic; the basis matrix is then triangular with a unit diagonal.
    """
    basic, lower = highspy.HighsBasisStatus.kBasic, highspy.HighsBasisStatus.kLower
    placed = np.zeros(n_jobs, dtype=np.bool_)
    placed[flow.row[flow.held]] = True
    basis = highspy.HighsBasis()
    basis.col_status = [lower if p else basic for p in placed.tolist()] + [
        basic if h else lower for h in flow.held.tolist()
    ]
    basis.row_status = [lower] * n_jobs + [basic] * n_capacity_rows
    highs.setBasis(basis)


def _site_room(cpu: float, memory_gb: float, sites: IntArray, ledger: Ledger) -> FloatArray:
    most = np.full(sites.size, float(_BIG))
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
