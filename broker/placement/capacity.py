"""Job classes and the capacity ledger that batch placement fills, plus the greedy fill itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from broker.placement.demand import JobDemand
from broker.placement.shapes import (
    fits_pool,
    footprint,
    footprints,
    nodes_taken,
    whole_nodes_wanted,
)
from broker.placement.tables import HOST_ONLY, BoolArray, EvalContext, FloatArray, IntArray

_EPS = 1e-9
PRIORITY_DOUBLING = 100.0  # priority points that double the cost of leaving a job pending


@dataclass(slots=True)
class JobClass:
    """Jobs that are interchangeable for placement: the same demand and priority.

    `opts` are the feasible options sorted cheapest first (ties by option index), `cost` their
    per-job costs; `penalty` is what leaving one job of the class pending costs.
    """

    demand: JobDemand
    priority: int
    jobs: list[str]
    opts: IntArray
    cost: FloatArray
    penalty: float = 0.0
    reason: str = ""
    _next: int = field(default=0, repr=False)

    @property
    def placeable(self) -> bool:
        """True if some option passed every filter against the snapshot."""
        return self.opts.size > 0


def pending_penalty(
    demand: JobDemand,
    priority: int,
    cost: FloatArray,
    hours: float,
    value: float,
    base: str = "dearest",
) -> float:
    """Cost of leaving one job pending: a run cost it still pays later, plus its waiting value.

    With `base` "dearest" the first part is the dearest feasible option, which makes placing a
    job always better than not placing it when capacity allows; with "cheapest" it is the
    cheapest option (the job runs later where it is cheapest), so only the wait is priced. The
    second part is the value of the job's cards idling for `hours`, doubled per 100 priority
    points; it grows with the cards, not the run time, as a waiting job loses time at its size
    whatever its length.
    """
    run = 0.0
    if cost.size:
        run = float(cost.max()) if base == "dearest" else float(cost.min())
    return run + hours * value * max(demand.cards, 1) * 2.0 ** (priority / PRIORITY_DOUBLING)


class Ledger:
    """Remaining capacity during a batch: cards and whole nodes per pool option, cores and memory
    per site.

    A job takes its footprint of a pool's cards (broker/placement/shapes.py): its own cards,
    or whole nodes' cards where it outgrows a node of a pool of known shape. It also takes
    `nodes_taken` from the pool's node balance: a multi-node job its nodes, a single-node job
    one (it may sit on a node of its own). A multi-node job fits only where the balance covers
    its nodes; a single-node job needs only cards. Balances may go below zero, so `release`
    undoes `take` exactly.
    """

    def __init__(self, ctx: EvalContext) -> None:
        table, avail = ctx.table, ctx.avail
        self.opt_site = table.opt_site
        self.host = table.model_mask[HOST_ONLY]
        # host-only options hold no cards; only cores and memory bound them
        self.cards = np.where(self.host, np.iinfo(np.int64).max // 4, avail.opt_free).astype(
            np.int64
        )
        self.cards_per_node = avail.opt_cards_per_node
        self.shaped = bool(self.cards_per_node.any())
        self.nodes = avail.opt_whole_nodes.astype(np.int64)
        self.cpu = avail.site_cpu_free.copy()
        self.memory_gb = avail.site_memory_gb_free.copy()

    def copy(self) -> Ledger:
        """An independent ledger with the same remaining capacity."""
        twin = object.__new__(Ledger)
        twin.opt_site, twin.host = self.opt_site, self.host
        twin.cards_per_node, twin.shaped = self.cards_per_node, self.shaped
        twin.cards, twin.nodes, twin.cpu, twin.memory_gb = (
            self.cards.copy(),
            self.nodes.copy(),
            self.cpu.copy(),
            self.memory_gb.copy(),
        )
        return twin

    def need(self, cards: int, opt: int) -> int:
        """Cards of option `opt` a job of `cards` takes (its footprint there)."""
        return footprint(cards, int(self.cards_per_node[opt])) if self.shaped else cards

    def needs(self, cards: NDArray[np.generic] | int, opts: IntArray) -> IntArray:
        """`need` elementwise over `opts` (with `cards` per entry or one for all)."""
        if not self.shaped:
            return np.broadcast_to(np.asarray(cards, dtype=np.int64), opts.shape)
        return footprints(np.asarray(cards), self.cards_per_node[opts])

    def nodes_wanted(self, cards: NDArray[np.generic] | int, opts: IntArray) -> IntArray:
        """Whole free nodes a job of `cards` must find at each of `opts` (0: cards alone)."""
        if not self.shaped:
            return np.zeros(opts.shape, dtype=np.int64)
        return whole_nodes_wanted(np.asarray(cards), self.cards_per_node[opts])

    def caps(self, demand: JobDemand, opts: IntArray, most: int) -> FloatArray:
        """How many jobs of `demand` each option could still take on its own (at most `most`)."""
        sites = self.opt_site[opts]
        caps = np.full(opts.size, float(most))
        if demand.cards > 0:
            need = self.needs(demand.cards, opts)
            caps = np.minimum(caps, np.floor(self.cards[opts] / np.maximum(need, 1) + 1e-9))
            wanted = self.nodes_wanted(demand.cards, opts)
            multi = wanted > 0
            caps[multi] = np.minimum(
                caps[multi], np.maximum(self.nodes[opts][multi], 0) // wanted[multi]
            )
        for need_h, free in (
            (demand.cpu_cores, self.cpu[sites]),
            (demand.memory_gb, self.memory_gb[sites]),
        ):
            if need_h > 0:
                caps = np.minimum(caps, np.floor(free / need_h + 1e-9))
        return np.maximum(caps, 0.0)

    def fits(self, demand: JobDemand, opt: int) -> bool:
        """True if one more job of `demand` fits at option `opt` now."""
        site = int(self.opt_site[opt])
        per_node = int(self.cards_per_node[opt]) if self.shaped else 0
        return (
            fits_pool(demand.cards, per_node, int(self.cards[opt]), int(self.nodes[opt]))
            and self.cpu[site] + _EPS >= demand.cpu_cores
            and self.memory_gb[site] + _EPS >= demand.memory_gb
        )

    def fitting(self, demand: JobDemand, opts: IntArray) -> BoolArray:
        """For each of `opts`, whether one more job of `demand` fits there now."""
        sites = self.opt_site[opts]
        ok: BoolArray = self.cards[opts] >= self.needs(demand.cards, opts)
        if self.shaped:
            ok &= self.nodes[opts] >= self.nodes_wanted(demand.cards, opts)
        if demand.cpu_cores > 0:
            ok &= self.cpu[sites] + _EPS >= demand.cpu_cores
        if demand.memory_gb > 0:
            ok &= self.memory_gb[sites] + _EPS >= demand.memory_gb
        return ok

    def first_fit(self, demand: JobDemand, opts: IntArray, start: int = 0) -> int:
        """Position of the first of `opts` from `start` on where one more job fits; len if none."""
        if start < opts.size and self.fits(demand, int(opts[start])):
            return start
        rest = opts[start + 1 :]
        if rest.size == 0:
            return opts.size
        ok = self.fitting(demand, rest)
        hit = int(np.argmax(ok))
        return start + 1 + hit if ok[hit] else opts.size

    def take(self, demand: JobDemand, opt: int) -> None:
        """Hold capacity for one job of `demand` at option `opt`."""
        site = int(self.opt_site[opt])
        self.cards[opt] -= self.need(demand.cards, opt)
        if self.shaped:
            self.nodes[opt] -= nodes_taken(demand.cards, int(self.cards_per_node[opt]))
        self.cpu[site] -= demand.cpu_cores
        self.memory_gb[site] -= demand.memory_gb

    def release(self, demand: JobDemand, opt: int) -> None:
        """Give back the capacity of one job of `demand` at option `opt`."""
        site = int(self.opt_site[opt])
        self.cards[opt] += self.need(demand.cards, opt)
        if self.shaped:
            self.nodes[opt] += nodes_taken(demand.cards, int(self.cards_per_node[opt]))
        self.cpu[site] += demand.cpu_cores
        self.memory_gb[site] += demand.memory_gb


def greedy_order(classes: list[JobClass], jobs: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    """Highest priority first, then the largest jobs (they are hardest to fit), then input order."""
    listed = list(jobs)
    if not listed:
        return listed
    ks = np.fromiter((k for k, _ in listed), dtype=np.int64, count=len(listed))
    priority = np.asarray([c.priority for c in classes], dtype=np.int64)[ks]
    cards = np.asarray([c.demand.cards for c in classes], dtype=np.int64)[ks]
    order = np.lexsort((np.arange(ks.size), -cards, -priority))
    return [listed[i] for i in order.tolist()]


def greedy_fill(
    classes: list[JobClass], order: list[tuple[int, str]], ledger: Ledger, chosen: dict[str, int]
) -> None:
    """Give each job in `order` its cheapest option that still fits, recording it in `chosen`.

    Capacity only shrinks, so an option that cannot take a job of a class now never will: each
    class keeps a cursor into its cost-sorted options and never looks back.
    """
    for cls in classes:
        cls._next = 0
    for c, job_id in order:
        cls = classes[c]
        at = ledger.first_fit(cls.demand, cls.opts, cls._next)
        cls._next = at
        if at < cls.opts.size:
            ledger.take(cls.demand, int(cls.opts[at]))
            chosen[job_id] = at


def objective_cny(classes: list[JobClass], chosen: dict[str, int]) -> float:
    """Cost of an assignment: placed jobs at their option, pending placeable ones at penalty.

    `chosen` maps a job to the position of its option in its class's (cost-sorted) options.
    """
    total = 0.0
    for cls in classes:
        if not cls.placeable:
            continue
        cost = cls.cost
        for job in cls.jobs:
            at = chosen.get(job)
            total += cls.penalty if at is None else float(cost[at])
    return total
