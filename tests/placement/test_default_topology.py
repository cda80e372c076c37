"""On the built-in national network, training goes west and inference stays near its users."""

from __future__ import annotations

from typing import Any

import pytest

from broker.placement import FederationSnapshot, Policy, place
from computenet.spec import JobSpec, parse_spec
from computenet.types import CandidateSite, Placement
from topology import default_topology

NOW_UNIX_S = 1_750_000_000.0  # a fixed moment keeps the time-of-use window reproducible


def _spec(**fields: Any) -> JobSpec:
    return parse_spec({"name": "job", "command": ["run"], **fields})


def _plan(spec: JobSpec) -> Placement:
    topology = default_topology()
    return place(spec, FederationSnapshot.all_free(topology, NOW_UNIX_S), Policy.default())


def _assert_explained(placement: Placement) -> None:
    feasible = [c for c in placement.candidates if c.feasible]
    assert placement.chosen == feasible[0].site
    assert feasible[0].total_cny == min(c.total_cny for c in feasible)
    for c in feasible:
        assert c.total_cny == pytest.approx(sum(c.terms_cny.values()), abs=0.05)
    assert len(placement.candidates) == len(default_topology().sites)


@pytest.mark.parametrize("checkpoint", [None, {"interval_hours": 2}])
def test_large_training_job_goes_west(checkpoint: dict[str, float] | None) -> None:
    # 910b is offered both east and west, so only the cost terms can decide
    spec = _spec(
        kind="training",
        resources={"accelerator": "910b", "count": 64},
        duration_hours=72,
        dataset={"origin": "shanghai", "size_gb": 2000},
        checkpoint=checkpoint,
    )
    placement = _plan(spec)
    topology = default_topology()
    _assert_explained(placement)
    assert placement.chosen is not None
    assert topology.site(placement.chosen).side == "west"
    by_site: dict[str, CandidateSite] = {c.site: c for c in placement.candidates}
    west = [c for c in placement.candidates if c.feasible and topology.site(c.site).side == "west"]
    east = [c for c in placement.candidates if c.feasible and topology.site(c.site).side == "east"]
    assert east, "the test needs eastern 910b sites to compare against"
    assert max(c.terms_cny["energy"] for c in west) < min(c.terms_cny["energy"] for c in east)
    assert by_site["yangtze-demo"].reason == "no 910b accelerators"
    assert all(c.terms_cny["latency"] == 0 for c in west + east)


def test_inference_for_shanghai_stays_within_its_slo() -> None:
    spec = _spec(
        kind="inference",
        resources={"count": 8},
        duration_hours=24,
        inference={"user_regions": [{"region": "shanghai"}], "latency_slo_ms": 15},
    )
    placement = _plan(spec)
    topology = default_topology()
    _assert_explained(placement)
    assert placement.chosen is not None
    assert topology.rtt_ms("shanghai", placement.chosen) <= 15
    rejected = [c for c in placement.candidates if not c.feasible]
    assert rejected
    for c in rejected:
        rtt = topology.rtt_ms("shanghai", c.site)
        assert c.reason == f"rtt {rtt:.1f} ms > slo 15 ms (from shanghai)"
        assert c.terms_cny == {}


def test_inference_for_the_greater_bay_area_lands_near_it() -> None:
    spec = _spec(
        kind="inference",
        resources={"accelerator": "910b", "count": 8},
        duration_hours=24,
        inference={
            "user_regions": [
                {"region": "guangzhou", "weight": 1},
                {"region": "shenzhen", "weight": 1},
            ],
            "latency_slo_ms": 40,
        },
    )
    placement = _plan(spec)
    _assert_explained(placement)
    assert placement.chosen == "shaoguan"
    feasible = [c for c in placement.candidates if c.feasible]
    # a western site is feasible and cheaper in energy, but farther: latency decides
    guian = next(c for c in feasible if c.site == "guian")
    shaoguan = feasible[0]
    assert guian.terms_cny["energy"] < shaoguan.terms_cny["energy"]
    assert guian.terms_cny["latency"] > shaoguan.terms_cny["latency"]
    slow = next(c for c in placement.candidates if c.site == "zhangjiakou")
    assert slow.reason.startswith("rtt ") and "> slo 40 ms" in slow.reason


def test_place_is_deterministic_and_fast_enough_to_measure() -> None:
    spec = _spec(kind="batch", resources={"count": 4}, duration_hours=3, gang=False)
    first, second = _plan(spec), _plan(spec)
    assert first.to_dict() == second.to_dict()
    assert first.decision_ms > 0
