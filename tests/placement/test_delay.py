"""The batch's delay model: contended cards go to short jobs first, and idle cards still fill."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.placement import FederationSnapshot, Policy, PolicyConfig, place_batch
from broker.placement.delay import pool_cards
from broker.placement.tables import context_for
from computenet.spec import JobSpec, parse_spec
from tests.placement.fakes import site
from topology import Link, Topology, UserRegion
from topology.model import RegionId


def _one_pool(cards: int = 8) -> Topology:
    regions = [UserRegion(id=RegionId("city"), lat=30.0, lon=120.0, demand_weight=1.0)]
    links = [Link(a="city", b="only", rtt_ms=5, bandwidth_gbps=10, cny_per_gb=0.05)]
    return Topology([site("only", pools=(("h800", cards, 700.0),))], regions, links)


def _training(hours: float, cards: int = 8) -> JobSpec:
    return parse_spec(
        {
            "name": "j",
            "kind": "training",
            "command": ["x"],
            "duration_hours": hours,
            "resources": {"accelerator": "h800", "count": cards},
        }
    )


def _policy(model: str) -> Policy:
    return Policy.default(PolicyConfig(batch_wait_model=model))  # type: ignore[arg-type]


def test_waiting_dominates_so_the_short_job_starts_first() -> None:
    snapshot = FederationSnapshot.all_free(_one_pool(), 0.0)
    jobs = [("long", _training(100.0)), ("short", _training(1.0))]
    delay = place_batch(jobs, snapshot, _policy("delay"))
    assert delay.assignment == {"long": None, "short": "only"}
    # pricing only the pending job prefers the run that saves most: the long one
    penalty = place_batch(jobs, snapshot, _policy("penalty"))
    assert penalty.assignment == {"long": "only", "short": None}


def test_delay_model_changes_nothing_without_contention() -> None:
    snapshot = FederationSnapshot.all_free(_one_pool(16), 0.0)
    jobs = [("long", _training(100.0)), ("short", _training(1.0))]
    delay = place_batch(jobs, snapshot, _policy("delay"))
    penalty = place_batch(jobs, snapshot, _policy("penalty"))
    assert delay.assignment == penalty.assignment == {"long": "only", "short": "only"}
    assert delay.objective_cny == pytest.approx(penalty.objective_cny)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.5, 2.0, 10.0, 300.0]), st.sampled_from([1, 2, 4, 8])),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([4, 8, 16]),
)
def test_delay_model_fills_cards_shortest_first(shapes: list[tuple[float, int]], pool: int) -> None:
    """No job is left waiting while it fits, and no started job outlasts a waiting one of the
    same size (swapping them would cut the waiting)."""
    snapshot = FederationSnapshot.all_free(_one_pool(pool), 0.0)
    jobs = [(f"j{i}", _training(h, c)) for i, (h, c) in enumerate(shapes)]
    result = place_batch(jobs, snapshot, _policy("delay"), time_budget_s=5.0)
    started = [
        (h, c) for (job, _), (h, c) in zip(jobs, shapes, strict=True) if result.assignment[job]
    ]
    waiting = [
        (h, c) for (job, _), (h, c) in zip(jobs, shapes, strict=True) if not result.assignment[job]
    ]
    free = pool - sum(c for _, c in started)
    assert all(c > free for _, c in waiting)
    for h_wait, c_wait in waiting:
        assert all(not (h_run > h_wait and c_run == c_wait) for h_run, c_run in started)


def test_pool_cards_follow_the_given_totals() -> None:
    ctx = context_for(FederationSnapshot.all_free(_one_pool(8), 0.0), single_pool=True)
    declared = pool_cards(ctx)
    scaled = pool_cards(ctx, {"only": {"h800": 3}})
    assert declared.max() == 8 and scaled.max() == 3
    assert np.count_nonzero(declared) == np.count_nonzero(scaled) == 1
