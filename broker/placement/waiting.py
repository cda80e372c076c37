"""Waiting for a faster pool: a job is left queued when a pool that frees soon finishes it sooner.

A job that accepts several models and fits now on a slow card may finish sooner by waiting for
a fast one: at option o it finishes `run_h(o)` hours from now if it starts now, and at a pool p
it does not fit yet `free_in_h(p) + run_h(p)` hours from now, where `free_in_h(p)` is when the
pool's running holds (their expected ends, `SiteCapacity.releases_h`) have given back enough
cards for it. The batch leaves the job pending when

    min over waiting pools p of (free_in_h(p) + run_h(p)) < min over fitting options o of run_h(o)

and says which pool it waits for. Only the batch applies it (single decisions place a job
that fits), and only with release times in the snapshot; the freed cards are not reserved, so
at the next instant the solver may give them to another job, after which the test runs again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from broker.placement.capacity import JobClass
from broker.placement.runtime import run_hours_table, scales
from broker.placement.demand import DemandArrays, JobDemand
from broker.placement.filters import residency_problem
from broker.placement.snapshot import FederationSnapshot, SiteCapacity
from broker.placement.tables import HOST_ONLY, FederationTable
from computenet.types import SiteStatus

_NO_OPTS = np.zeros(0, dtype=np.int64)
WAITING = "waiting for "
"""How the reason of a job left pending for a faster pool begins."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Why a job waits: the pool it waits for and how its finish compares with starting now."""

    site: str
    model: str
    free_in_h: float
    finish_h: float
    now_site: str
    now_model: str
    now_finish_h: float

    def reason(self) -> str:
        """The explanation shown for the pending job."""
        return (
            f"{WAITING}{self.model} at {self.site}, free in {self.free_in_h:.2f} h: finishes "
            f"in {self.finish_h:.2f} h, sooner than {self.now_finish_h:.2f} h on {self.now_model} "
            f"at {self.now_site} now"
        )


def free_in_h(report: SiteCapacity, model: str, cards: int) -> float:
    """Hours until `cards` cards of `model` are free at the site (inf if the holds never free
    enough): now if they are free, else the end of the hold that brings the free count there."""
    have = report.free.get(model, 0)
    if have >= cards:
        return 0.0
    for hours, released in report.releases_h.get(model, ()):
        have += released
        if have >= cards:
            return max(0.0, hours)
    return math.inf


def waits_for_faster(
    demand: JobDemand, opts: np.ndarray, table: FederationTable, snapshot: FederationSnapshot
) -> Wait | None:
    """The wait that finishes the job sooner than starting it now at any of `opts`, if any."""
    if not scales(demand) or len(demand.models) < 2 or opts.size == 0:
        return None
    arrays = DemandArrays.of((demand,))
    now_h = run_hours_table(arrays, table, opts)[0]
    best_now = int(np.argmin(now_h))
    accepted = set(demand.models)
    pools = np.asarray(
        [
            o
            for o in range(table.n_options)
            if table.opt_model[o] != HOST_ONLY
            and table.opt_model[o] in accepted
            and table.opt_memory_gb[o] >= demand.min_memory_gb
            and _may_use(demand, table, int(table.opt_site[o]), snapshot)
        ],
        dtype=np.int64,
    )
    if pools.size == 0:
        return None
    run_h = run_hours_table(arrays, table, pools)[0]
    best: Wait | None = None
    for o, hours in zip(pools.tolist(), run_h.tolist(), strict=True):
        site = table.site_ids[int(table.opt_site[o])]
        free_in = free_in_h(snapshot.sites[site], table.opt_model[o], demand.cards)
        finish = free_in + hours
        if free_in <= 0 or finish >= float(now_h[best_now]):
            continue
        if best is None or finish < best.finish_h:
            now_opt = int(opts[best_now])
            best = Wait(
                site,
                table.opt_model[o],
                free_in,
                finish,
                table.site_ids[int(table.opt_site[now_opt])],
                table.opt_model[now_opt],
                float(now_h[best_now]),
            )
    return best


def _may_use(
    demand: JobDemand, table: FederationTable, site: int, snapshot: FederationSnapshot
) -> bool:
    """The site takes work and the job's residency rules allow it."""
    report = snapshot.sites.get(table.site_ids[site])
    if report is None or report.status != SiteStatus.ACTIVE or report.capacity_stale:
        return False
    return residency_problem(demand, table, site) is None


def hold_for_faster(
    classes: Sequence[JobClass], table: FederationTable, snapshot: FederationSnapshot
) -> set[int]:
    """Leave pending (no options, the wait as reason) each class better off waiting; returns
    their positions."""
    held: set[int] = set()
    if not any(report.releases_h for report in snapshot.sites.values()):
        return held
    for k, cls in enumerate(classes):
        wait = waits_for_faster(cls.demand, cls.opts, table, snapshot)
        if wait is not None:
            cls.opts, cls.cost = _NO_OPTS, np.zeros(0)
            cls.reason = wait.reason()
            held.add(k)
    return held
