"""Batch placement properties: capacity is never overcommitted, and the result is provably good."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_placement import busy_snapshot, distinct_queue, exact_optimum
from broker.placement import (
    FederationSnapshot,
    Policy,
    PolicyConfig,
    place,
    place_batch,
    place_greedy,
)
from broker.placement.batch import BatchResult
from computenet.spec import JobSpec, parse_spec
from computenet.types import CandidateSite
from topology import synthetic_topology

MODELS = ("a800", "h800", "h20", "910b", "910c", "")
TOL = 1e-6


@st.composite
def job_specs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["training", "inference", "batch"]))
    spec: dict[str, Any] = {
        "name": "job",
        "kind": kind,
        "command": ["run"],
        "resources": {
            "accelerator": draw(st.sampled_from(MODELS)),
            "count": draw(st.sampled_from([0, 1, 4, 8, 64, 256])),
            "cpu_cores": draw(st.sampled_from([1, 64, 2000])),
        },
        "duration_hours": draw(st.sampled_from([1.0, 24.0, 100.0])),
        "gang": draw(st.booleans()),
        "priority": draw(st.sampled_from([0, 50, 100])),
    }
    if kind == "inference":
        spec["inference"] = {
            "user_regions": [{"region": draw(st.sampled_from(["r0000", "r0001"]))}],
            "latency_slo_ms": draw(st.sampled_from([5.0, 30.0, 200.0])),
            "replicas": draw(st.sampled_from([1, 2])),
        }
    if kind == "training" and draw(st.booleans()):
        spec["dataset"] = {"origin": "r0000", "size_gb": draw(st.sampled_from([10.0, 5000.0]))}
    return spec


@st.composite
def instances(draw: st.DrawFn) -> tuple[FederationSnapshot, list[tuple[str, JobSpec]]]:
    seed = draw(st.integers(0, 10_000))
    topology = synthetic_topology(draw(st.integers(2, 6)), 2, 10, seed)
    snapshot = busy_snapshot(topology, draw(st.sampled_from([0.06, 0.2, 0.6])), seed)
    templates = draw(st.lists(job_specs(), min_size=1, max_size=5))
    picks = draw(st.lists(st.integers(0, len(templates) - 1), min_size=1, max_size=30))
    jobs = [(f"j{i}", parse_spec(templates[k])) for i, k in enumerate(picks)]
    return snapshot, jobs


def _check_capacity(
    snapshot: FederationSnapshot, jobs: list[tuple[str, JobSpec]], result: BatchResult
) -> None:
    cards: dict[tuple[str, str], int] = defaultdict(int)
    cpu: dict[str, float] = defaultdict(float)
    memory: dict[str, float] = defaultdict(float)
    specs = dict(jobs)
    for job_id, site in result.assignment.items():
        if site is None:
            assert result.reasons[job_id]
            continue
        spec = specs[job_id]
        replicas = spec.inference.replicas if spec.inference else 1
        if spec.resources.count:
            cards[site, result.models[job_id]] += spec.accelerators_total
        cpu[site] += spec.resources.cpu_cores * replicas
        memory[site] += spec.resources.memory_gb * replicas
    for (site, model), used in cards.items():
        assert used <= snapshot.sites[site].free.get(model, 0), (site, model)
    for site, used_cpu in cpu.items():
        assert used_cpu <= snapshot.sites[site].cpu_free + TOL
        assert memory[site] <= snapshot.sites[site].memory_gb_free + TOL


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_batch_respects_capacity_filters_and_bounds(
    instance: tuple[FederationSnapshot, list[tuple[str, JobSpec]]],
) -> None:
    snapshot, jobs = instance
    policy = Policy.default()
    result = place_batch(jobs, snapshot, policy, time_budget_s=5.0)
    assert set(result.assignment) == {job_id for job_id, _ in jobs}
    _check_capacity(snapshot, jobs, result)
    specs = dict(jobs)
    for job_id, site in result.assignment.items():
        if site is not None:
            verdicts: dict[str, CandidateSite] = {
                c.site: c for c in place(specs[job_id], snapshot, policy).candidates
            }
            verdict = verdicts[site]
            assert verdict.feasible, verdict.reason
    greedy = place_greedy(jobs, snapshot, policy)
    _check_capacity(snapshot, jobs, greedy)
    scale = max(1.0, abs(greedy.objective_cny))
    assert result.objective_cny <= greedy.objective_cny + TOL * scale
    assert result.objective_cny >= result.lp_bound_cny - TOL * scale
    assert result.gap >= 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_lp_bound_is_below_the_exact_optimum(
    instance: tuple[FederationSnapshot, list[tuple[str, JobSpec]]],
) -> None:
    snapshot, jobs = instance
    policy = Policy.default()
    result = place_batch(jobs, snapshot, policy, time_budget_s=5.0)
    optimum = exact_optimum(jobs, snapshot, policy)
    scale = max(1.0, abs(optimum))
    assert result.lp_bound_cny <= optimum + 1e-6 * scale
    assert result.objective_cny >= optimum - 1e-6 * scale


def test_place_and_batch_are_deterministic() -> None:
    topology = synthetic_topology(8, 3, 20, 5)
    snapshot = busy_snapshot(topology, 0.2, 5)
    spec = parse_spec(
        {
            "name": "j",
            "kind": "training",
            "command": ["x"],
            "duration_hours": 5,
            "resources": {"accelerator": "910b", "count": 64},
        }
    )
    jobs = [(f"j{i}", spec.model_copy(update={"priority": i % 3})) for i in range(40)]
    policy = Policy.default()
    assert place(spec, snapshot, policy).to_dict() == place(spec, snapshot, policy).to_dict()
    first, second = place_batch(jobs, snapshot, policy), place_batch(jobs, snapshot, policy)
    assert first.assignment == second.assignment
    assert np.isclose(first.objective_cny, second.objective_cny)


def test_unplaceable_jobs_stay_pending_with_a_reason() -> None:
    topology = synthetic_topology(3, 2, 6, 1)
    snapshot = FederationSnapshot.all_free(topology, 0.0)
    spec = parse_spec(
        {
            "name": "j",
            "kind": "training",
            "command": ["x"],
            "duration_hours": 5,
            "resources": {"accelerator": "no-such-card", "count": 1},
        }
    )
    result = place_batch([("a", spec)], snapshot, Policy.default())
    assert result.assignment == {"a": None}
    assert result.reasons["a"].startswith("no feasible site (s0000: no no-such-card accelerators")


@pytest.mark.parametrize("lp_max_classes", [0, 3000])
def test_distinct_queue_respects_capacity_on_both_paths(lp_max_classes: int) -> None:
    topology = synthetic_topology(40, 6, 160, 3)
    snapshot = busy_snapshot(topology, 0.3, 3)
    jobs = distinct_queue(topology, 400, 3)
    policy = Policy.default(PolicyConfig(batch_lp_max_classes=lp_max_classes))
    result = place_batch(jobs, snapshot, policy, time_budget_s=3.0)
    if lp_max_classes == 0:
        assert result.method in ("regret", "greedy")  # the LP was not tried
    _check_capacity(snapshot, jobs, result)
    greedy = place_greedy(jobs, snapshot, policy)
    scale = max(1.0, abs(greedy.objective_cny))
    assert result.lp_bound_cny - TOL * scale <= result.objective_cny
    assert result.objective_cny <= greedy.objective_cny + TOL * scale
