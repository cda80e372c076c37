"""Replicas count the same everywhere: the broker's demand and the agent's usage both hold
count x replicas cards (and cores and memory)."""

from __future__ import annotations

from broker.placement.demand import JobDemand
from computenet.spec import JobSpec


def test_replicas_count_the_same_at_the_agent_and_the_broker() -> None:
    spec = JobSpec.model_validate(
        {
            "name": "serve",
            "kind": "inference",
            "duration_hours": 1.0,
            "command": ["true"],
            "resources": {"accelerator": "h20", "count": 2, "cpu_cores": 4, "memory_gb": 16},
            "inference": {
                "user_regions": [{"region": "shanghai", "weight": 1.0}],
                "latency_slo_ms": 30,
                "replicas": 3,
            },
        }
    )
    demand = JobDemand.from_spec(spec)
    assert (spec.accelerators_total, spec.cpu_cores_total, spec.memory_gb_total) == (6, 12, 48)
    assert (demand.cards, demand.cpu_cores, demand.memory_gb) == (6, 12, 48)
