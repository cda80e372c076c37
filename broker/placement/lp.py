"""The batch transportation LP over (job class x option) with HiGHS: column generation and bounds.

Variables x[c, o] count jobs of class c placed at option o, u[c] jobs left pending. Rows: each
class's jobs are placed or pending; cards per pool, cores and memory per site stay within the
free capacity. Each class starts with its cheapest options; reduced costs from the duals add
columns until none prices out, and every round yields a valid Lagrangian lower bound on the
full LP (capacity rows relaxed with the round's duals), so the bound holds even if time runs out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix, csr_matrix

from broker.placement.capacity import JobClass, Ledger
from broker.placement.tables import FloatArray, IntArray

log = logging.getLogger(__name__)

_MIN_SOLVE_S = 0.01
_RC_TOL = 1e-7
_CG_REL_GAP = 1e-3


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
    var_opt: IntArray
    cost: FloatArray  # x costs then one penalty per class
    upper: FloatArray  # most jobs each variable can hold
    a_eq: csr_matrix
    b_eq: FloatArray
    a_ub: csr_matrix
    b_ub: FloatArray
    row_kind: IntArray  # 0 cards (per option), 1 cores, 2 memory (per site)
    row_key: IntArray


@dataclass(slots=True)
class LpOutcome:
    """Result of column generation: the last LP solution and the best bound found."""

    solved: bool
    value_cny: float
    bound_cny: float
    x: FloatArray
    model: LpModel | None
    columns: list[IntArray]


def build_model(problem: Problem, columns: list[IntArray]) -> LpModel:
    """Matrices of the problem restricted to `columns` (positions into each class's options)."""
    classes, ledger, counts = problem.classes, problem.ledger, problem.counts
    n_cls = len(classes)
    var_class = np.concatenate(
        [np.full(len(cols), k, dtype=np.int64) for k, cols in enumerate(columns)]
    )
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
    cards = np.asarray([c.demand.cards for c in classes], dtype=np.float64)[var_class]
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


def solve_lp(model: LpModel, deadline: float) -> object | None:
    """HiGHS solution of the LP relaxation, or None if it did not finish in time."""
    remaining = deadline - time.perf_counter()
    if remaining < _MIN_SOLVE_S:
        return None
    has_ub = model.b_ub.size > 0
    res = linprog(
        model.cost,
        A_ub=model.a_ub if has_ub else None,
        b_ub=model.b_ub if has_ub else None,
        A_eq=model.a_eq,
        b_eq=model.b_eq,
        bounds=np.column_stack([np.zeros(model.upper.size), model.upper]),
        method="highs",
        options={"time_limit": remaining},
    )
    if res.status != 0:
        log.info("batch LP not solved status=%s message=%s", res.status, res.message)
        return None
    return res


def column_generation(
    problem: Problem, columns: list[IntArray], deadline: float, per_round: int
) -> LpOutcome:
    """Solve the restricted LP, price every option out with its duals, repeat until none helps."""
    best_bound = -np.inf
    outcome = LpOutcome(False, np.inf, -np.inf, np.zeros(0), None, columns)
    while True:
        model = build_model(problem, columns)
        res = solve_lp(model, deadline)
        if res is None:
            return outcome
        bound, additions = _price(problem, model, res, columns, per_round)
        best_bound = max(best_bound, bound)
        value = float(res.fun)  # type: ignore[attr-defined]
        outcome = LpOutcome(True, value, float(best_bound), np.asarray(res.x), model, columns)  # type: ignore[attr-defined]
        log.debug(
            "batch LP round value=%.2f bound=%.2f columns=%d", value, bound, model.var_opt.size
        )
        if not any(a.size for a in additions):
            outcome.bound_cny = max(best_bound, value)  # no column prices out: this is the full LP
            return outcome
        if value - best_bound <= _CG_REL_GAP * max(1.0, abs(value)):
            return outcome  # further columns could lower the LP value by less than this
        columns = [np.union1d(c, a) for c, a in zip(columns, additions, strict=True)]


def _price(
    problem: Problem, model: LpModel, res: object, columns: list[IntArray], per_round: int
) -> tuple[float, list[IntArray]]:
    """Lagrangian bound of the full LP at these duals, and columns with negative reduced cost."""
    mu = np.asarray(res.eqlin.marginals)  # type: ignore[attr-defined]
    lam = np.minimum(np.asarray(res.ineqlin.marginals), 0.0)  # type: ignore[attr-defined]
    ledger = problem.ledger
    duals = [np.zeros(ledger.cards.size), np.zeros(problem.n_sites), np.zeros(problem.n_sites)]
    for kind in range(3):
        here = model.row_kind == kind
        duals[kind][model.row_key[here]] = lam[here]
    bound = float(np.dot(lam, model.b_ub))
    additions = []
    for k, cls in enumerate(problem.classes):
        d, sites = cls.demand, ledger.opt_site[cls.opts]
        adjusted = cls.cost - d.cards * duals[0][cls.opts] - d.cpu_cores * duals[1][sites]
        adjusted -= d.memory_gb * duals[2][sites]
        count = int(problem.counts[k])
        bound += _class_bound(cls.penalty, count, adjusted, ledger.caps(d, cls.opts, count))
        reduced = adjusted - mu[k]
        candidates = np.flatnonzero(reduced < -_RC_TOL * max(1.0, abs(mu[k])))
        candidates = np.setdiff1d(candidates, columns[k], assume_unique=True)
        if candidates.size > per_round:
            candidates = candidates[np.argsort(reduced[candidates], kind="stable")[:per_round]]
        additions.append(candidates)
    return bound, additions


def _class_bound(penalty: float, count: int, adjusted: FloatArray, caps: FloatArray) -> float:
    """Cheapest way to place or leave pending `count` jobs at these prices, options capped."""
    order = np.argsort(adjusted, kind="stable")
    prices, room = adjusted[order], caps[order]
    useful = prices < penalty
    prices, room = prices[useful], room[useful]
    before = np.cumsum(room) - room
    take = np.clip(count - before, 0.0, room)
    return float(np.dot(take, prices)) + (count - float(take.sum())) * penalty


def solve_milp(model: LpModel, deadline: float) -> FloatArray | None:
    """Integral solution of the restricted problem within the deadline, or None."""
    remaining = deadline - time.perf_counter()
    if remaining < _MIN_SOLVE_S:
        return None
    constraints = [LinearConstraint(model.a_eq, model.b_eq, model.b_eq)]
    if model.b_ub.size:
        constraints.append(LinearConstraint(model.a_ub, -np.inf, model.b_ub))
    res = milp(
        model.cost,
        constraints=constraints,
        integrality=np.ones(model.cost.size),
        bounds=Bounds(0, model.upper),
        options={"time_limit": remaining, "mip_rel_gap": 1e-6},
    )
    if res.x is None:
        log.info("batch MILP found no solution status=%s", res.status)
        return None
    return np.asarray(res.x)
