"""The batch problem as explicit matrices over chosen columns, and its exact MILP solution.

Variables x[c, o] count jobs of class c placed at option o, u[c] jobs left pending. Rows: each
class's jobs are placed or pending; cards per pool, cores and memory per site stay within the
free capacity. Small batches are solved exactly this way; the benchmark builds its reference
optimum and bounds from the same matrices over every option.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, csr_matrix

from broker.placement.budget import MILP_NODE, Deadline
from broker.placement.capacity import JobClass, Ledger
from broker.placement.tables import FloatArray, IntArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Problem:
    """Jobs to place: `counts[k]` jobs of `classes[k]`, within the capacity left in `ledger`."""

    classes: list[JobClass]
    counts: FloatArray
    ledger: Ledger
    n_sites: int


@dataclass(frozen=True, slots=True)
class LpModel:
    """A restricted problem: its columns, matrices and which resource each capacity row bounds."""

    var_class: IntArray  # index into the problem's classes
    var_pos: IntArray  # position in the class's options
    var_opt: IntArray
    cost: FloatArray  # x costs then one penalty per class
    upper: FloatArray  # most jobs each variable can hold
    a_eq: csr_matrix
    b_eq: FloatArray
    a_ub: csr_matrix
    b_ub: FloatArray
    row_kind: IntArray  # 0 cards (per option), 1 cores, 2 memory (per site)
    row_key: IntArray


def build_model(problem: Problem, columns: list[IntArray]) -> LpModel:
    """Matrices of the problem restricted to `columns` (positions into each class's options)."""
    classes, ledger, counts = problem.classes, problem.ledger, problem.counts
    n_cls = len(classes)
    var_class = np.concatenate(
        [np.full(len(cols), k, dtype=np.int64) for k, cols in enumerate(columns)]
    )
    var_pos = np.concatenate(columns).astype(np.int64)
    var_opt = np.concatenate([classes[k].opts[cols] for k, cols in enumerate(columns)]).astype(
        np.int64
    )
    x_cost = np.concatenate([classes[k].cost[cols] for k, cols in enumerate(columns)])
    x_upper = np.concatenate(
        [
            ledger.caps(classes[k].demand, classes[k].opts[cols], int(counts[k]))
            for k, cols in enumerate(columns)
        ]
    )
    n_x = var_opt.size
    eq_rows = np.concatenate([var_class, np.arange(n_cls)])
    a_eq = coo_matrix(
        (np.ones(n_x + n_cls), (eq_rows, np.arange(n_x + n_cls))), shape=(n_cls, n_x + n_cls)
    )
    per_class = np.asarray([c.demand.cards for c in classes], dtype=np.int64)[var_class]
    cards = ledger.needs(per_class, var_opt).astype(np.float64)  # whole nodes where shaped
    cpu = np.asarray([c.demand.cpu_cores for c in classes])[var_class]
    mem = np.asarray([c.demand.memory_gb for c in classes])[var_class]
    sites = ledger.opt_site[var_opt]
    blocks = [
        (0, (cards > 0) & ~ledger.host[var_opt], var_opt, cards, ledger.cards.astype(np.float64)),
        (1, cpu > 0, sites, cpu, ledger.cpu),
        (2, mem > 0, sites, mem, ledger.memory_gb),
    ]
    rows, cols, vals, b_ub, kinds, keys = [], [], [], [], [], []
    n_rows = 0
    for kind, used, key, coef, limit in blocks:
        unique, local = np.unique(key[used], return_inverse=True)
        rows.append(local + n_rows)
        cols.append(np.flatnonzero(used))
        vals.append(coef[used])
        b_ub.append(limit[unique])
        kinds.append(np.full(unique.size, kind, dtype=np.int64))
        keys.append(unique)
        n_rows += unique.size
    a_ub = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_x + n_cls),
    )
    return LpModel(
        var_class=var_class,
        var_pos=var_pos,
        var_opt=var_opt,
        cost=np.concatenate([x_cost, [c.penalty for c in classes]]),
        upper=np.concatenate([x_upper, counts]),
        a_eq=a_eq.tocsr(),
        b_eq=counts.astype(np.float64),
        a_ub=a_ub.tocsr(),
        b_ub=np.concatenate(b_ub).astype(np.float64),
        row_kind=np.concatenate(kinds),
        row_key=np.concatenate(keys).astype(np.int64),
    )


def solve_milp(model: LpModel, deadline: Deadline) -> FloatArray | None:
    """Integral solution of the restricted problem within the deadline, or None."""
    limits = deadline.milp_options()
    if limits is None:
        return None
    constraints = [LinearConstraint(model.a_eq, model.b_eq, model.b_eq)]
    if model.b_ub.size:
        constraints.append(LinearConstraint(model.a_ub, -np.inf, model.b_ub))
    res = milp(
        model.cost,
        constraints=constraints,
        integrality=np.ones(model.cost.size),
        bounds=Bounds(0, model.upper),
        options={**limits, "mip_rel_gap": 1e-6},
    )
    deadline.spend(max(int(getattr(res, "mip_node_count", 0) or 0), 1) * MILP_NODE)
    if res.x is None:
        log.info("batch MILP found no solution status=%s", res.status)
        return None
    return np.asarray(res.x)
