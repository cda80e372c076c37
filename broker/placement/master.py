"""The batch LP kept inside HiGHS between solves, so column generation and diving start warm.

Columns are (job class, option) pairs counting jobs of the class placed there, plus one pending
column per class. Rows: each class's jobs are placed or pending; per pool, its free cards and
its packing cuts (broker/placement/cuts.py); per site, free cores and memory. A pool's or
site's rows come with the first column that uses it, and only if the batch's jobs could fill
them; a packing cut comes when a solution violates it. Changing the capacity or the job counts
(as diving does) only changes row and column bounds, so HiGHS re-solves from the last basis.
Whole free nodes of node-shaped pools have no rows: a column's bound stops a multi-node class
at the nodes its pool has on its own, but the LP counts cards (so its bound stays a bound), and
rounding commits jobs through the Ledger, which checks both (docs/placement.md, "Node shapes").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import highspy
import numpy as np

from broker.placement.budget import Deadline
from broker.placement.capacity import Ledger
from broker.placement.highs import new_highs
from broker.placement.option_index import OptionIndex
from broker.placement.tables import FloatArray, IntArray

log = logging.getLogger(__name__)

_INF = highspy.kHighsInf
_MIN_SOLVE_S = 0.005
_MAX_CUT_ROUNDS = 8
CLASS_ROW, CARDS_ROW, CUT_ROW, CPU_ROW, MEMORY_ROW = range(5)  # kinds of rows


@dataclass(frozen=True, slots=True)
class MasterSolution:
    """An optimal LP solution: jobs per column, pending per class, and the row duals."""

    value_cny: float
    x: FloatArray  # per placement column, in MasterLp.col_flat order
    pending: FloatArray  # per class
    class_dual: FloatArray
    row_dual: FloatArray  # of the capacity and cut rows the model had, clipped to <= 0


class MasterLp:
    """The restricted batch LP over the columns added so far, held in one HiGHS instance."""

    def __init__(self, index: OptionIndex, ledger: Ledger) -> None:
        self.index = index
        self.ledger = ledger
        self.counts = index.counts.copy()
        n_cls = index.counts.size
        self.highs = new_highs()
        self.col_flat = np.zeros(0, dtype=np.int64)
        self.in_model = np.zeros(index.n_pairs, dtype=np.bool_)
        n_opts, n_sites = ledger.cards.size, ledger.cpu.size
        self.cards_row = np.full(n_opts, -1, dtype=np.int64)
        self.cut_row = np.full((n_opts, index.levels.size), -1, dtype=np.int64)
        self.cpu_row = np.full(n_sites, -1, dtype=np.int64)
        self.memory_row = np.full(n_sites, -1, dtype=np.int64)
        self.row_kind = np.full(n_cls, CLASS_ROW, dtype=np.int64)
        self.row_key = np.arange(n_cls, dtype=np.int64)
        self.row_level = np.zeros(n_cls, dtype=np.int64)
        self.limits = self.counts.copy()  # the upper bound of every row, as HiGHS holds it
        self._add_rows(self.counts, self.counts)
        ones = np.ones(n_cls)
        self.highs.addCols(
            n_cls,
            index.penalty,
            np.zeros(n_cls),
            self.counts,
            n_cls,
            np.arange(n_cls, dtype=np.int32),
            np.arange(n_cls, dtype=np.int32),
            ones,
        )

    @property
    def col_class(self) -> IntArray:
        """Class of each placement column."""
        return self.index.cls[self.col_flat]

    @property
    def col_pos(self) -> IntArray:
        """Position of each placement column's option in its class's options."""
        return self.col_flat - self.index.start[self.col_class]

    def add_columns(self, flat: IntArray) -> None:
        """Add the (class, option) pairs `flat` (not yet in the model) as columns."""
        flat = np.unique(flat[~self.in_model[flat]])
        if flat.size == 0:
            return
        ix = self.index
        k, opt, site = ix.cls[flat], ix.opt[flat], ix.site[flat]
        self._ensure_rows(opt, site)
        cards = ix.need[flat]  # whole nodes' cards in pools of known node shape
        gpu = (cards > 0) & (self.cards_row[opt] >= 0)
        entries = [(np.arange(flat.size), k, np.ones(flat.size))]
        entries.append((np.flatnonzero(gpu), self.cards_row[opt[gpu]], cards[gpu].astype(float)))
        for level_at, level in enumerate(ix.levels.tolist()):
            rows_here = self.cut_row[opt, level_at]
            at = np.flatnonzero(gpu & (cards >= level) & (rows_here >= 0))
            entries.append((at, self.cut_row[opt[at], level_at], (cards[at] // level) * 1.0))
        for need, rows in ((ix.cpu[k], self.cpu_row), (ix.memory_gb[k], self.memory_row)):
            at = np.flatnonzero((need > 0) & (rows[site] >= 0))
            entries.append((at, rows[site[at]], need[at]))
        cols = np.concatenate([e[0] for e in entries])
        rows = np.concatenate([e[1] for e in entries])
        vals = np.concatenate([e[2] for e in entries])
        order = np.lexsort((rows, cols))
        starts = np.searchsorted(cols[order], np.arange(flat.size))
        self.highs.addCols(
            flat.size,
            ix.cost[flat],
            np.zeros(flat.size),
            ix.caps(flat, self.counts, self.ledger),
            vals.size,
            starts.astype(np.int32),
            rows[order].astype(np.int32),
            vals[order].astype(np.float64),
        )
        self.col_flat = np.concatenate([self.col_flat, flat])
        self.in_model[flat] = True

    def set_capacity(self, counts: FloatArray, ledger: Ledger) -> None:
        """Re-bound the model for `counts` jobs per class within the capacity left in `ledger`."""
        self.counts = np.asarray(counts, dtype=np.float64)
        self.ledger = ledger
        limits = self._row_limits()
        changed = np.flatnonzero(limits != self.limits)
        for row, limit, fixed in zip(
            changed.tolist(),
            limits[changed].tolist(),
            (self.row_kind[changed] == CLASS_ROW).tolist(),
            strict=True,
        ):
            self.highs.changeRowBounds(row, limit if fixed else -_INF, limit)
        self.limits = limits
        n_cls = self.counts.size
        caps = self.index.caps(self.col_flat, self.counts, ledger)
        cols = np.arange(n_cls + self.col_flat.size, dtype=np.int32)
        upper_cols = np.concatenate([self.counts, caps])
        self.highs.changeColsBounds(cols.size, cols, np.zeros(cols.size), upper_cols)

    def add_violated_cuts(self, x: FloatArray) -> int:
        """Add the packing cuts that the placement `x` violates; returns how many."""
        ix = self.index
        opt, need = ix.opt[self.col_flat], ix.need[self.col_flat]
        n_opts, added = self.ledger.cards.size, 0
        for at, level in enumerate(ix.levels.tolist()):
            slots = (need // level).astype(np.float64)
            use = (slots > 0) & (x > 1e-9)
            held = np.bincount(opt[use], weights=slots[use] * x[use], minlength=n_opts)
            limit = self.ledger.cards // level
            violated = (held > limit + 1e-6) & ix.binding_cut[:, at] & (self.cut_row[:, at] < 0)
            pools = np.flatnonzero(violated)
            if pools.size == 0:
                continue
            levels = np.full(pools.size, level, np.int64)
            rows = self._add_keyed(CUT_ROW, pools, levels, in_highs=False)
            self.cut_row[pools, at] = rows
            cols = np.flatnonzero((slots > 0) & violated[opt])
            local = np.searchsorted(pools, opt[cols])
            order = np.lexsort((cols, local))
            starts = np.searchsorted(local[order], np.arange(pools.size))
            self.highs.addRows(
                pools.size,
                np.full(pools.size, -_INF),
                self.limits[rows],
                cols.size,
                starts.astype(np.int32),
                (cols[order] + self.counts.size).astype(np.int32),
                slots[cols[order]],
            )
            added += pools.size
        return added

    def solve(
        self, deadline: Deadline, *, cut_rounds: int = _MAX_CUT_ROUNDS
    ) -> MasterSolution | None:
        """Solve, adding the packing cuts the solution violates and re-solving, `cut_rounds` times.

        None if HiGHS did not reach optimality before `deadline`. The last solution may still
        violate cuts not yet added; it is optimal for the rows the model has, so its duals
        still give a valid bound.
        """
        solution = self._solve_once(deadline)
        for _ in range(cut_rounds):
            if solution is None or not self.add_violated_cuts(solution.x):
                break
            solution = self._solve_once(deadline)
        return solution

    def _solve_once(self, deadline: Deadline) -> MasterSolution | None:
        if not deadline.limit_highs(self.highs, min_s=_MIN_SOLVE_S):
            return None
        began = time.perf_counter()
        self.highs.run()
        deadline.spend_highs(self.highs)
        status = self.highs.getModelStatus()
        log.debug(
            "batch LP solved status=%s s=%.3f iterations=%d rows=%d columns=%d",
            status,
            time.perf_counter() - began,
            self.highs.getInfo().simplex_iteration_count,
            self.row_kind.size,
            self.col_flat.size,
        )
        if status != highspy.HighsModelStatus.kOptimal:
            log.info("batch LP not solved status=%s", status)
            return None
        solution = self.highs.getSolution()
        col_value = np.asarray(solution.col_value)
        row_dual = np.asarray(solution.row_dual)
        n_cls = self.counts.size
        return MasterSolution(
            value_cny=float(self.highs.getInfo().objective_function_value),
            x=col_value[n_cls:],
            pending=col_value[:n_cls],
            class_dual=row_dual[:n_cls],
            row_dual=np.minimum(row_dual[n_cls:], 0.0),
        )

    def capacity_rows(self) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
        """Kind, key and level of each capacity and cut row, and its current limit."""
        n_cls = self.counts.size
        return (
            self.row_kind[n_cls:],
            self.row_key[n_cls:],
            self.row_level[n_cls:],
            self.limits[n_cls:],
        )

    def _row_limits(self) -> FloatArray:
        kind, key, ledger = self.row_kind, self.row_key, self.ledger
        limits = np.zeros(kind.size)
        for which, values in (
            (CLASS_ROW, self.counts),
            (CARDS_ROW, ledger.cards),
            (CPU_ROW, ledger.cpu),
            (MEMORY_ROW, ledger.memory_gb),
        ):
            at = kind == which
            limits[at] = values[key[at]]
        at = kind == CUT_ROW
        limits[at] = ledger.cards[key[at]] // self.row_level[at]
        return limits

    def _ensure_rows(self, opt: IntArray, site: IntArray) -> None:
        """Add the card rows of new pools and the core and memory rows of new sites that bind."""
        ix = self.index
        for kind, rows, keys, binding in (
            (CARDS_ROW, self.cards_row, opt, ix.binding_cards),
            (CPU_ROW, self.cpu_row, site, ix.binding_cpu),
            (MEMORY_ROW, self.memory_row, site, ix.binding_memory),
        ):
            new = np.unique(keys[(rows[keys] < 0) & binding[keys]])
            rows[new] = self._add_keyed(kind, new, np.zeros(new.size, np.int64))

    def _add_keyed(
        self, kind: int, keys: IntArray, levels: IntArray, *, in_highs: bool = True
    ) -> IntArray:
        """Register rows of `kind` for `keys`; add them to HiGHS unless the caller does."""
        first = self.row_kind.size
        self.row_kind = np.concatenate([self.row_kind, np.full(keys.size, kind, np.int64)])
        self.row_key = np.concatenate([self.row_key, keys])
        self.row_level = np.concatenate([self.row_level, levels])
        limits = self._row_limits()[first:]
        self.limits = np.concatenate([self.limits, limits])
        if in_highs:
            self._add_rows(np.full(keys.size, -_INF), limits)
        return np.arange(first, first + keys.size, dtype=np.int64)

    def _add_rows(self, lower: FloatArray, upper: FloatArray) -> None:
        empty_i = np.zeros(0, dtype=np.int32)
        self.highs.addRows(lower.size, lower, upper, 0, empty_i, empty_i, np.zeros(0))
