"""Re-matching jobs of one size to places of that size, at least total cost, size after size.

Jobs that need the same cards, cores and memory can trade places without changing what any
pool or site holds. For one size, its jobs, the places they hold and the room left where one
more such job fits form a min-cost flow (job -> pool -> site, or pending); its LP has whole-
number optima. HiGHS starts from the current places (a feasible basis), so it only makes the
improving pivots. Every job keeps its current place among its columns, so no size gets
dearer; the others are each job's cheapest options with room.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import highspy
import numpy as np

from broker.placement.budget import COLUMN, Deadline
from broker.placement.capacity import JobClass, Ledger
from broker.placement.highs import new_highs
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
    classes: list[JobClass], chosen: dict[str, int], ledger: Ledger, deadline: Deadline
) -> None:
    """Improve `chosen` (job -> position in its class's options) and `ledger` in place."""
    by_size: dict[tuple[int, float, float], list[int]] = defaultdict(list)
    for k, cls in enumerate(classes):
        d = cls.demand
        by_size[(d.cards, d.cpu_cores, d.memory_gb)].append(k)
    for ks in sorted(by_size.values(), key=lambda ks: -sum(len(classes[k].jobs) for k in ks)):
        if deadline.passed():
            return
        if sum(len(classes[k].jobs) for k in ks) > 1:
            _rematch_size(classes, ks, chosen, ledger, deadline)


def _rematch_size(
    classes: list[JobClass],
    ks: list[int],
    chosen: dict[str, int],
    ledger: Ledger,
    deadline: Deadline,
) -> None:
    demand = classes[ks[0]].demand
    jobs = [(k, job) for k in ks for job in classes[k].jobs]
    held = {job: chosen.pop(job) for _, job in jobs if job in chosen}
    for k, job in jobs:  # free this size's places; the flow hands them out again
        if job in held:
            ledger.release(demand, int(classes[k].opts[held[job]]))
    flow = _columns(classes, jobs, held, _room(classes[ks[0]], ledger))
    x = _solve(classes, flow, ledger, deadline)
    deadline.spend(flow.row.size * COLUMN)
    if not np.all(np.abs(x - np.round(x)) <= 1e-6):  # not a vertex: keep the old places
        x = flow.held.astype(np.float64)
    for c in np.flatnonzero(x > 0.5).tolist():
        ledger.take(demand, int(flow.opt[c]))
        chosen[flow.jobs[int(flow.row[c])][1]] = int(flow.pos[c])


def _room(cls: JobClass, ledger: Ledger) -> IntArray:
    """Per option, how many more jobs of this class's size it could take on its own."""
    every = np.arange(ledger.cards.size, dtype=np.int64)
    return ledger.caps(cls.demand, every, _BIG).astype(np.int64)


def _columns(
    classes: list[JobClass], jobs: list[tuple[int, str]], held: dict[str, int], room: IntArray
) -> _Flow:
    """Each job's place and its class's cheapest options with room, as flat arrays.

    `jobs` lists each class's jobs together; the options come from one concatenation of the
    classes' options (segment i holds the i-th class's).
    """
    ks = list(dict.fromkeys(k for k, _ in jobs))
    seg_of = {k: i for i, k in enumerate(ks)}
    sizes = np.asarray([classes[k].opts.size for k in ks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    flat_opt = np.concatenate([classes[k].opts for k in ks]).astype(np.int64)
    flat_cost = np.concatenate([classes[k].cost for k in ks])
    kept, per_seg = _cheapest_open(room[flat_opt] > 0, sizes, starts)
    job_seg = np.asarray([seg_of[k] for k, _ in jobs], dtype=np.int64)
    n_cols = per_seg[job_seg]
    row = np.repeat(np.arange(len(jobs)), n_cols)
    within = np.arange(row.size) - np.repeat(np.cumsum(n_cols) - n_cols, n_cols)
    first = np.concatenate([[0], np.cumsum(per_seg)])[:-1]
    flat = kept[first[job_seg][row] + within]
    here = np.asarray([held.get(job, -1) for _, job in jobs], dtype=np.int64)
    extra = np.flatnonzero(here >= 0)  # jobs whose place is not among those options
    extra = extra[~np.isin(starts[job_seg[extra]] + here[extra], kept)]
    row = np.concatenate([row, extra])
    flat = np.concatenate([flat, starts[job_seg[extra]] + here[extra]])
    pos = flat - starts[job_seg[row]]
    return _Flow(jobs, row, pos, flat_opt[flat], flat_cost[flat], here[row] == pos)


def _cheapest_open(
    open_: BoolArray, sizes: IntArray, starts: IntArray
) -> tuple[IntArray, IntArray]:
    """Flat indices of each segment's first _CANDIDATES_PER_JOB open entries, and their counts."""
    seg = np.repeat(np.arange(sizes.size), sizes)
    opened = np.cumsum(open_)
    rank = opened - 1 - np.concatenate([[0], opened])[starts][seg]
    kept = np.flatnonzero(open_ & (rank < _CANDIDATES_PER_JOB))
    return kept, np.bincount(seg[kept], minlength=sizes.size)


def _solve(classes: list[JobClass], flow: _Flow, ledger: Ledger, deadline: Deadline) -> FloatArray:
    """The min-cost flow's LP: each job placed once or pending, options and sites within room."""
    demand = classes[flow.jobs[0][0]].demand
    n_jobs = len(flow.jobs)
    pools, pool_at = np.unique(flow.opt, return_inverse=True)
    sites, site_at = np.unique(ledger.opt_site[pools], return_inverse=True)
    highs = new_highs()
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
    highs.run()  # to optimality: a flow's pivots are few, and a stopped flow is no vertex
    deadline.spend_highs(highs)
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
