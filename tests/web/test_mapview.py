"""The map layout: every node on the canvas, areas by capacity, colours by status, flows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.web.mapview import (
    MAX_RADIUS,
    MIN_RADIUS,
    STATUS_COLOURS,
    flow_origins,
    layout,
    radius_for,
)
from computenet.spec import JobSpec
from topology import default_topology


def test_every_site_region_and_link_of_the_topology_is_drawn_inside_the_canvas() -> None:
    topology = default_topology()
    drawn = layout(topology, {})
    assert [s.site_id for s in drawn.sites] == list(topology.site_ids)
    assert [r.region_id for r in drawn.regions] == list(topology.region_ids)
    assert len(drawn.links) == len(topology.links)
    for mark in (*drawn.sites, *drawn.regions):
        assert 0 <= mark.x <= drawn.width and 0 <= mark.y <= drawn.height
    for site in drawn.sites:
        assert site.x - site.radius >= 0 and site.x + site.radius <= drawn.width


def test_north_is_up_and_west_is_left() -> None:
    drawn = layout(default_topology(), {})
    at = {s.site_id: s for s in drawn.sites}
    assert at["horinger"].y < at["shaoguan"].y  # Inner Mongolia above Guangdong
    assert at["zhongwei"].x < at["yangtze-demo"].x  # Ningxia left of Shanghai


def test_status_picks_the_colour_and_unknown_sites_are_offline() -> None:
    drawn = layout(default_topology(), {"guian": "lost", "horinger": "draining"})
    at = {s.site_id: s for s in drawn.sites}
    assert at["guian"].colour == STATUS_COLOURS["lost"]
    assert at["horinger"].colour == STATUS_COLOURS["draining"]
    assert at["wuhu"].status == "offline" and at["wuhu"].colour == STATUS_COLOURS["offline"]


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_radius_grows_with_cards_within_bounds(a: int, b: int) -> None:
    most = max(a, b, 1)
    ra, rb = radius_for(a, most), radius_for(b, most)
    assert MIN_RADIUS <= ra <= MAX_RADIUS and MIN_RADIUS <= rb <= MAX_RADIUS
    if a <= b:
        assert ra <= rb


def test_reported_cards_override_the_topology() -> None:
    drawn = layout(default_topology(), {}, {"guian": 10**6})
    at = {s.site_id: s for s in drawn.sites}
    assert at["guian"].radius == MAX_RADIUS
    assert all(s.radius < MAX_RADIUS for s in drawn.sites if s.site_id != "guian")


def test_flows_start_at_users_or_at_the_data() -> None:
    base = {"name": "j", "duration_hours": 1, "command": ["true"]}
    inference = JobSpec.model_validate(
        {
            **base,
            "kind": "inference",
            "inference": {
                "user_regions": [{"region": "beijing"}, {"region": "shanghai"}],
                "latency_slo_ms": 50,
            },
        }
    )
    training = JobSpec.model_validate(
        {**base, "kind": "training", "dataset": {"origin": "shanghai", "size_gb": 1}}
    )
    plain = JobSpec.model_validate({**base, "kind": "batch"})
    assert flow_origins(inference) == ["beijing", "shanghai"]
    assert flow_origins(training) == ["shanghai"]
    assert flow_origins(plain) == []
