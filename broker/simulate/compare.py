"""Runs one workload under several policies on fresh capacity and collects their metrics."""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from broker.placement import ExpectedDemand, Policy, PolicyConfig
from broker.simulate.capacity import Capacity
from broker.simulate.clock import DEFAULT_WINDOW_S, SECONDS_PER_HOUR
from broker.simulate.engine_policies import EngineGreedy, EngineOptimal
from broker.simulate.expected_demand import expected_demand
from broker.simulate.fairness import tenants_outcome
from broker.simulate.heuristics import CheapestEnergy, Nearest, RandomSite
from broker.simulate.load import OfferedLoad, load_factor, offered_load, scale_arrivals
from broker.simulate.metrics import PolicyMetrics, summarise
from broker.simulate.policy_base import SimPolicy
from broker.simulate.rebalancing import ReplayRebalancer
from broker.simulate.replay import never_fits, replay
from broker.simulate.tenancy import ReplayTenancy
from broker.tenancy import TenantsTable
from computenet.workload import WorkloadJob
from topology import Topology

log = logging.getLogger(__name__)

POLICY_NAMES = ("nearest", "cheapest-energy", "random", "greedy", "optimal")


class UnknownPolicyError(ValueError):
    """A policy name the simulator does not know."""


def make_policy(
    name: str,
    topology: Topology,
    capacity: Capacity,
    *,
    seed: int,
    config: PolicyConfig,
    expected: ExpectedDemand | None = None,
) -> SimPolicy:
    """A fresh policy by name (`random` seeded; `greedy`/`optimal` priced by `config`;
    `optimal` keeps headroom for the `expected` demand)."""
    if name == "nearest":
        return Nearest(topology)
    if name == "cheapest-energy":
        return CheapestEnergy(topology, capacity)
    if name == "random":
        return RandomSite(topology, seed)
    if name == "greedy":
        return EngineGreedy(Policy.default(config))
    if name == "optimal":
        return EngineOptimal(Policy.default(config), expected=expected)
    raise UnknownPolicyError(f"unknown policy {name!r} (choose from {', '.join(POLICY_NAMES)})")


def parse_policies(text: str) -> list[str]:
    """Split and check a comma-separated policy list (duplicates dropped, order kept)."""
    names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [n for n in names if n not in POLICY_NAMES]
    if unknown or not names:
        raise UnknownPolicyError(
            f"unknown policy {unknown[0]!r}"
            if unknown
            else "no policy given" + f" (choose from {', '.join(POLICY_NAMES)})"
        )
    return names


@dataclass(frozen=True, slots=True)
class Scenario:
    """What every policy of a comparison replays against."""

    jobs: tuple[WorkloadJob, ...]
    topology: Topology
    capacity_scale: float = 1.0
    seed: int = 0
    config: PolicyConfig = field(default_factory=PolicyConfig)
    window_s: float = DEFAULT_WINDOW_S
    rebalance_every_h: float = 0.0
    """Run the rebalancing planner on the running jobs this often (0: never)."""
    speed_blind: bool = False
    """Policies (and the pool rule) see every card as equally fast; runs keep the real speeds."""
    tenants: TenantsTable | None = None
    """Tenants' weights, quotas and borrowing limits: per-tenant outcomes are reported, and with
    `admit_tenants` the tenancy core orders and admits the queue at each instant."""
    admit_tenants: bool = True
    """False: tenancy off (the plain queue), outcomes still reported per tenant of `tenants`."""
    preempt: bool = False
    """With tenancy: stop borrowed jobs for tenants below their nominal quota (requeued)."""


def servable(jobs: Sequence[WorkloadJob], capacity: Capacity) -> list[WorkloadJob]:
    """The jobs some pool could hold with everything free (the rest are "too large")."""
    return [job for job in jobs if not never_fits(job, capacity)]


def scenario_load(scenario: Scenario) -> OfferedLoad:
    """Offered load of the scenario's servable jobs on its scaled pools."""
    capacity = Capacity(scenario.topology, scenario.capacity_scale)
    return capacity_load(scenario.jobs, capacity)


def capacity_load(jobs: Sequence[WorkloadJob], capacity: Capacity) -> OfferedLoad:
    """Offered load of the servable jobs on the capacity's pools, at the cards' real speeds."""
    return offered_load(servable(jobs, capacity), capacity.cards_by_model(), capacity.mean_speed)


def jobs_at_load(
    jobs: Sequence[WorkloadJob], topology: Topology, capacity_scale: float, target: float
) -> tuple[list[WorkloadJob], float]:
    """The jobs with arrivals compressed (or stretched) so the peak class load is `target`.

    The factor is measured on the servable jobs; every job's arrival is scaled by it, so the
    too-large ones keep their place in the timeline. Returns the jobs and the factor.
    """
    capacity = Capacity(topology, capacity_scale)
    factor = load_factor(
        servable(jobs, capacity), capacity.cards_by_model(), target, capacity.mean_speed
    )
    return scale_arrivals(jobs, factor), factor


def run_policy(scenario: Scenario, name: str, *, progress: bool = False) -> PolicyMetrics:
    """Replay the scenario under one policy from empty capacity."""
    capacity = Capacity(
        scenario.topology, scenario.capacity_scale, speed_blind=scenario.speed_blind
    )
    policy = make_policy(
        name,
        scenario.topology,
        capacity,
        seed=scenario.seed,
        config=scenario.config,
        expected=expected_demand(servable(scenario.jobs, capacity)),
    )
    rebalancer = None
    if scenario.rebalance_every_h > 0:
        every_s = scenario.rebalance_every_h * SECONDS_PER_HOUR
        rebalancer = ReplayRebalancer(every_s, topology_config=scenario.config)
    tenants = scenario.tenants
    admission = None
    if tenants is not None and scenario.admit_tenants:
        admission = ReplayTenancy(tenants, preempt=scenario.preempt)
    result = replay(
        scenario.jobs,
        capacity,
        policy,
        window_s=scenario.window_s,
        progress=progress,
        rebalancer=rebalancer,
        admission=admission,
    )
    log.info("replayed policy=%s jobs=%d wall_s=%.2f", name, len(result.runs), result.wall_s)
    load = capacity_load(scenario.jobs, capacity)
    metrics = summarise(result, capacity, scenario.config, policy.batch_stats(), load)
    if tenants is None:
        return metrics
    return dataclasses.replace(metrics, tenants=tenants_outcome(result, tenants))


def compare(
    scenario: Scenario, names: Sequence[str], *, progress: bool = False
) -> dict[str, PolicyMetrics]:
    """Metrics of every named policy on the same scenario."""
    out: dict[str, PolicyMetrics] = {}
    for name in names:
        if progress:
            print(f"simulating {name} over {len(scenario.jobs)} jobs", file=sys.stderr, flush=True)
        out[name] = run_policy(scenario, name, progress=progress)
    return out
