"""Prices a job's remaining run at its site and at feasible targets with the placement engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from broker.placement import FederationSnapshot, JobDemand, Policy, SiteCapacity
from broker.placement.policy import evaluate
from broker.placement.shapes import footprint, nodes_taken
from broker.placement.tables import HOST_ONLY, EvalContext, context_for
from broker.placement.terms import power_kw

RUNNING_TERMS = ("energy", "carbon", "latency")
ONE_OFF_TERMS = ("data_movement", "queue_wait")
_EPS = 1e-9


class CapacityLedger:
    """Free capacity during a run; every planned move takes its cards, cores and memory here."""

    def __init__(self, snapshot: FederationSnapshot) -> None:
        self._base = snapshot
        self._free = {s: dict(cap.free) for s, cap in snapshot.sites.items()}
        self._nodes = {
            s: {m: cap.node_balance(m) for m in cap.cards_per_node}
            for s, cap in snapshot.sites.items()
        }
        self._cpu = {s: cap.cpu_free for s, cap in snapshot.sites.items()}
        self._memory_gb = {s: cap.memory_gb_free for s, cap in snapshot.sites.items()}
        self._current: FederationSnapshot | None = snapshot

    def snapshot(self) -> FederationSnapshot:
        """The base snapshot with the capacity taken so far removed."""
        if self._current is None:
            sites = {
                s: SiteCapacity(
                    site_id=cap.site_id,
                    status=cap.status,
                    free=MappingProxyType(dict(self._free[s])),
                    cpu_free=self._cpu[s],
                    memory_gb_free=self._memory_gb[s],
                    queue_wait_h=cap.queue_wait_h,
                    capacity_stale=cap.capacity_stale,
                    cards_per_node=cap.cards_per_node,
                    nodes=cap.nodes,
                    whole_nodes=MappingProxyType(dict(self._nodes[s])),
                )
                for s, cap in self._base.sites.items()
            }
            self._current = FederationSnapshot(
                self._base.topology, MappingProxyType(sites), self._base.now_unix_s
            )
        return self._current

    def take(self, site: str, model: str, demand: JobDemand) -> None:
        """Hold a job's capacity in one pool of `site` (host cores only when `model` is empty).

        In a pool of known node shape the job takes its footprint and nodes, as placement does.
        """
        if demand.cards:
            per_node = self._base.sites[site].cards_per_node.get(model, 0)
            self._free[site][model] = self._free[site].get(model, 0) - footprint(
                demand.cards, per_node
            )
            if model in self._nodes[site]:
                self._nodes[site][model] -= nodes_taken(demand.cards, per_node)
        self._cpu[site] -= demand.cpu_cores
        self._memory_gb[site] -= demand.memory_gb
        self._current = None

    def free_cards(self, site: str, model: str) -> int:
        """Cards of `model` still free at `site`."""
        return self._free.get(site, {}).get(model, 0)


@dataclass(frozen=True, slots=True)
class Option:
    """A job priced at one pool of one site over its remaining run.

    `running_cny` sums the running terms (energy, carbon and, for services, latency) over the
    run starting after `downtime_h`; `one_off_cny` sums the terms paid once on arrival
    (dataset movement, queueing).
    """

    site: str
    model: str
    opt: int
    running_cny: float
    carbon_kg: float
    one_off_cny: float
    wait_h: float


def demand_of(
    base: JobDemand, remaining_h: float, regions: Mapping[str, float] | None = None
) -> JobDemand:
    """The job's demand over its remaining run, with its users' current region weights if given."""
    duration = max(remaining_h, _EPS)
    if regions is None:
        return dataclasses.replace(base, duration_h=duration)
    current = tuple(sorted((r, w) for r, w in regions.items() if w > 0))
    return dataclasses.replace(base, duration_h=duration, regions=current or base.regions)


class Valuer:
    """Prices options for one snapshot with the policy's own cost terms and filters."""

    def __init__(self, policy: Policy, snapshot: FederationSnapshot) -> None:
        self.policy = policy
        self.ctx = context_for(snapshot, single_pool=True)
        self._terms = dict(
            zip(policy.term_names, zip(policy.terms, policy.weights, strict=True), strict=True)
        )

    def current(self, demand: JobDemand, site: str, model: str) -> Option | None:
        """The job priced where it runs now, in the pool it holds (None for an unknown site)."""
        table = self.ctx.table
        if site not in table.site_ids:
            return None
        opts = table.site_options[table.site_ids.index(site)]
        opt = _pick_option(table.opt_model, opts.tolist(), demand, model)
        return None if opt is None else self.price(demand, opt, downtime_h=0.0, one_off=False)

    def feasible(self, demand: JobDemand) -> list[int]:
        """Options that pass every placement filter against the ledger, by the engine's total cost.

        The first option is where the placement engine itself would put the job (ties go to
        the option defined first, as in placement).
        """
        evaluation = evaluate(self.policy, demand, self.ctx)
        ranked = sorted(
            zip(evaluation.total_cny.tolist(), evaluation.feasible.tolist(), strict=True)
        )
        return [int(opt) for _, opt in ranked]

    def wait_h(self, opt: int) -> float:
        """Expected queue wait at the option's site."""
        return float(self.ctx.avail.opt_wait_h[opt])

    def price(self, demand: JobDemand, opt: int, *, downtime_h: float, one_off: bool) -> Option:
        """Price the job at `opt`, its run starting `downtime_h` from now."""
        table = self.ctx.table
        opts = np.asarray([opt], dtype=np.int64)
        shifted = dataclasses.replace(self.ctx, start_hour=self.ctx.start_hour + downtime_h)
        running = sum(self._term(name, demand, shifted, opts) for name in RUNNING_TERMS)
        paid_once = (
            sum(self._term(name, demand, self.ctx, opts) for name in ONE_OFF_TERMS)
            if one_off
            else 0.0
        )
        kwh = (
            power_kw(demand, self.ctx, opts, self.policy.config.energy_model())[0]
            * demand.duration_h
        )
        return Option(
            site=table.site_ids[int(table.opt_site[opt])],
            model=table.opt_model[opt],
            opt=opt,
            running_cny=float(running),
            carbon_kg=float(kwh * table.opt_carbon_kg_per_kwh[opt]),
            one_off_cny=float(paid_once),
            wait_h=self.wait_h(opt),
        )

    def _term(self, name: str, demand: JobDemand, ctx: EvalContext, opts: np.ndarray) -> float:
        entry = self._terms.get(name)
        if entry is None or not entry[1]:
            return 0.0
        term, weight = entry
        return float(term.cost_cny(demand, ctx, opts)[0]) * weight


def _pick_option(
    models: tuple[str, ...], opts: list[int], demand: JobDemand, model: str
) -> int | None:
    wanted = HOST_ONLY if demand.cards == 0 else model or demand.accelerator
    for opt in opts:
        if models[opt] == wanted or (not wanted and models[opt] != HOST_ONLY):
            return opt
    return None
