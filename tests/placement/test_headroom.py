"""Serving headroom: latency-tolerant work pays for holding the pools near expected serving."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.placement import (
    ExpectedDemand,
    FederationSnapshot,
    Policy,
    PolicyConfig,
    ScaledDemand,
    ServingDemand,
    place_batch,
)
from broker.placement.delay import pool_cards
from broker.placement.headroom import scaled_share, serving_share
from broker.placement.tables import context_for
from computenet.spec import JobSpec, parse_spec
from tests.placement.fakes import site
from topology import WORKLOADS, AcceleratorModel, Catalogue, Link, Topology, UserRegion
from topology.model import RegionId


def _two_sites() -> Topology:
    """`near` is 5 ms from the city and has cheaper power; `far` is 40 ms away."""
    regions = [
        UserRegion(id=RegionId("city"), lat=30.0, lon=120.0, demand_weight=1.0),
        UserRegion(id=RegionId("town"), lat=35.0, lon=100.0, demand_weight=0.5),
    ]
    links = [
        Link(a="city", b="near", rtt_ms=5, bandwidth_gbps=10, cny_per_gb=0.05),
        Link(a="city", b="far", rtt_ms=40, bandwidth_gbps=10, cny_per_gb=0.05),
        Link(a="town", b="near", rtt_ms=30, bandwidth_gbps=10, cny_per_gb=0.05),
        Link(a="town", b="far", rtt_ms=4, bandwidth_gbps=10, cny_per_gb=0.05),
    ]
    sites = [
        site("near", price=0.3, pools=(("h800", 16, 700.0),)),
        site("far", price=0.6, pools=(("h800", 16, 700.0),)),
    ]
    return Topology(sites, regions, links)


def _training(hours: float, cards: int = 8) -> JobSpec:
    return parse_spec(
        {
            "name": "t",
            "kind": "training",
            "command": ["x"],
            "duration_hours": hours,
            "resources": {"accelerator": "h800", "count": cards},
        }
    )


def _serving(region: str = "city") -> JobSpec:
    return parse_spec(
        {
            "name": "s",
            "kind": "inference",
            "command": ["x"],
            "duration_hours": 2.0,
            "resources": {"accelerator": "h800", "count": 1},
            "inference": {
                "user_regions": [{"region": region, "weight": 1.0}],
                "latency_slo_ms": 15,
                "replicas": 2,
            },
        }
    )


CITY = (ServingDemand("city", 12.0, 15.0),)


def _place(jobs: list[tuple[str, JobSpec]], serving: tuple[ServingDemand, ...] = ()):  # type: ignore[no-untyped-def]
    snapshot = FederationSnapshot.all_free(_two_sites(), 0.0)
    policy = Policy.default(PolicyConfig())
    return place_batch(jobs, snapshot, policy, expected=ExpectedDemand(serving=serving))


def test_training_leaves_the_pool_near_expected_serving() -> None:
    jobs = [("train", _training(10.0))]
    assert _place(jobs).assignment == {"train": "near"}  # cheaper power wins without demand
    assert _place(jobs, CITY).assignment == {"train": "far"}


def test_demand_elsewhere_or_outside_the_slo_changes_nothing() -> None:
    jobs = [("train", _training(10.0))]
    tight = (ServingDemand("city", 12.0, 1.0),)  # no pool within 1 ms: no market
    unknown = (ServingDemand("nowhere", 12.0, 15.0),)
    base = _place(jobs)
    for serving in (tight, unknown):
        result = _place(jobs, serving)
        assert result.assignment == base.assignment
        assert result.objective_cny == pytest.approx(base.objective_cny)


def test_serving_work_itself_does_not_pay_the_headroom() -> None:
    jobs = [("serve", _serving())]
    base, with_demand = _place(jobs), _place(jobs, CITY)
    assert base.assignment == with_demand.assignment == {"serve": "near"}
    assert with_demand.objective_cny == pytest.approx(base.objective_cny)


def test_headroom_grows_with_run_time_and_share() -> None:
    ctx = context_for(FederationSnapshot.all_free(_two_sites(), 0.0), single_pool=True)
    cards = pool_cards(ctx)
    near = int(np.flatnonzero(cards > 0)[0])  # topology order: near first
    light = serving_share(ctx, (ServingDemand("city", 4.0, 15.0),), cards)
    heavy = serving_share(ctx, CITY, cards)
    assert light[near] == pytest.approx(4.0 / 16.0)
    assert heavy[near] == pytest.approx(12.0 / 16.0)
    short = _place([("t", _training(1.0))], CITY).objective_cny
    long = _place([("t", _training(2.0))], CITY).objective_cny
    assert long > short


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["city", "town", "nowhere"]),
            st.floats(0.0, 50.0),
            st.sampled_from([1.0, 5.0, 15.0, 35.0, 100.0]),
        ),
        max_size=6,
    )
)
def test_each_region_spreads_exactly_its_cards_over_its_market(
    demands: list[tuple[str, float, float]],
) -> None:
    """sum over options of sigma x pool cards is the demand of every region with a market."""
    topology = _two_sites()
    ctx = context_for(FederationSnapshot.all_free(topology, 0.0), single_pool=True)
    cards = pool_cards(ctx)
    serving = [ServingDemand(r, c, s) for r, c, s in demands]
    sigma = serving_share(ctx, serving, cards)
    assert np.all(sigma >= 0)
    assert np.all(sigma[cards == 0] == 0)
    expected = sum(
        d.cards
        for d in serving
        if d.region != "nowhere"
        and any(topology.rtt_ms(d.region, s.id) <= d.slo_ms for s in topology.sites)
    )
    assert float(sigma @ cards) == pytest.approx(expected)


def test_negative_demand_is_refused() -> None:
    with pytest.raises(ValueError, match="city"):
        ServingDemand("city", -1.0, 15.0)


def _card(model_id: str, watts: float, speed: float) -> AcceleratorModel:
    return AcceleratorModel(
        id=model_id,
        name=model_id,
        memory_gb=80.0,
        tflops_bf16=150.0 * speed,
        watts=watts,
        throughput=dict.fromkeys(WORKLOADS, speed),
    )


def _fast_and_slow() -> Topology:
    """Both 5 ms from the city; the site of the 3x fast part has much cheaper power."""
    catalogue = Catalogue(
        [_card("slow", 350.0, 1.0), _card("fast", 700.0, 3.0)], reference="slow", speed_blind=False
    )
    regions = [UserRegion(id=RegionId("city"), lat=30.0, lon=120.0, demand_weight=1.0)]
    links = [
        Link(a="city", b="fast", rtt_ms=5, bandwidth_gbps=10, cny_per_gb=0.05),
        Link(a="city", b="slow", rtt_ms=5, bandwidth_gbps=10, cny_per_gb=0.05),
    ]
    sites = [
        site("fast", price=0.1, pools=(("fast", 16, 700.0),)),
        site("slow", price=0.9, pools=(("slow", 16, 350.0),)),
    ]
    return Topology(sites, regions, links, accelerators=catalogue)


def _any_card_serving() -> JobSpec:
    return parse_spec(
        {
            "name": "s",
            "kind": "inference",
            "command": ["x"],
            "duration_hours": 2.0,
            "resources": {"count": 1},
            "inference": {
                "user_regions": [{"region": "city", "weight": 1.0}],
                "latency_slo_ms": 15,
                "replicas": 1,
            },
        }
    )


def _scaled_training() -> JobSpec:
    return parse_spec(
        {
            "name": "t",
            "kind": "training",
            "command": ["x"],
            "duration_hours": 4.0,
            "resources": {
                "accelerators": ["fast", "slow"],
                "reference": "slow",
                "workload": "vision-training",
                "count": 4,
            },
        }
    )


TRAINING = ExpectedDemand(scaled=(ScaledDemand("slow", "vision-training", ("fast", "slow"), 8.0),))


def _on(topology: Topology, jobs: list[tuple[str, JobSpec]], expected: ExpectedDemand):  # type: ignore[no-untyped-def]
    snapshot = FederationSnapshot.all_free(topology, 0.0)
    return place_batch(jobs, snapshot, Policy.default(PolicyConfig()), expected=expected)


def test_work_that_cannot_use_speed_leaves_the_fast_cards_to_work_that_can() -> None:
    topology = _fast_and_slow()
    jobs = [("serve", _any_card_serving())]
    assert _on(topology, jobs, ExpectedDemand()).assignment == {"serve": "fast"}
    assert _on(topology, jobs, TRAINING).assignment == {"serve": "slow"}
    # as if every card were equally fast, both pools are worth the same to training
    blind = topology.with_equal_speeds()
    assert _on(blind, jobs, TRAINING).assignment == {"serve": "fast"}


def test_scaled_work_pays_no_headroom_for_its_own_kind() -> None:
    jobs = [("train", _scaled_training())]
    base, with_demand = (
        _on(_fast_and_slow(), jobs, ExpectedDemand()),
        _on(_fast_and_slow(), jobs, TRAINING),
    )
    assert base.assignment == with_demand.assignment
    assert with_demand.objective_cny == pytest.approx(base.objective_cny)


def test_scaled_share_weights_each_pool_by_its_speed() -> None:
    topology = _fast_and_slow()
    ctx = context_for(FederationSnapshot.all_free(topology, 0.0), single_pool=True)
    cards = pool_cards(ctx)
    omega = scaled_share(ctx, TRAINING.scaled, cards)
    speeds = ctx.table.speeds("slow", "vision-training")
    pools = cards > 0
    # the demand spreads its reference cards over the market's reference cards
    assert float((omega * cards)[pools].sum()) == pytest.approx(8.0)
    fast, slow = (int(o) for o in np.flatnonzero(pools))
    assert omega[fast] / omega[slow] == pytest.approx(speeds[fast] / speeds[slow])
    unknown = ScaledDemand("no-such-card", "vision-training", (), 8.0)
    assert not scaled_share(ctx, (unknown,), cards).any()
