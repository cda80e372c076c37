"""Benchmark of the what-if simulator: the Philly + GenAI policy comparison and its run time."""

from __future__ import annotations

import time

from broker.simulate import Capacity, Scenario, compare, load_workload
from broker.simulate.workload import peak_training_cards
from topology import default_topology

POLICIES = ("nearest", "cheapest-energy", "greedy", "optimal")
WORKLOAD = "philly,alibaba-genai"


def _scenario_result(jobs: tuple, scale: float) -> dict[str, object]:
    topology = default_topology()
    started = time.perf_counter()
    results = compare(Scenario(jobs, topology, capacity_scale=scale), POLICIES)
    return {
        "capacity_scale": round(scale, 5),
        "seconds": round(time.perf_counter() - started, 3),
        "policies": {name: m.to_json() for name, m in results.items()},
    }


def run(smoke: bool) -> dict[str, object]:
    """The four-policy comparison at full capacity (2,000 jobs) and with the west short (5,000)."""
    topology = default_topology()
    limit, constrained_limit = (100, 200) if smoke else (2000, 5000)
    started = time.perf_counter()
    jobs = load_workload(WORKLOAD, topology, seed=0, limit=limit).jobs
    load_s = time.perf_counter() - started
    full = _scenario_result(jobs, 1.0)
    constrained_jobs = load_workload(WORKLOAD, topology, seed=0, limit=constrained_limit).jobs
    west = Capacity(topology).total_cards("west")
    scale = max(peak_training_cards(constrained_jobs), 1) / 2 / west
    return {
        "workload": WORKLOAD,
        "load_s": round(load_s, 3),
        "full_capacity": {"jobs": len(jobs), **full},
        "west_short": {"jobs": len(constrained_jobs), **_scenario_result(constrained_jobs, scale)},
    }
