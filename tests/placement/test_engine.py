"""Single-job placement on a small hand-built federation: filters, reasons and cost terms."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from broker.placement import FederationSnapshot, Policy, PolicyConfig, SiteCapacity, place
from computenet.spec import JobSpec, parse_spec
from computenet.types import CandidateSite, Placement, SiteStatus
from tests.placement.fakes import small_topology

NOW_UNIX_S = 1_750_000_000.0


def _spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {
        "name": "job",
        "kind": "training",
        "command": ["run"],
        "duration_hours": 10,
    }
    return parse_spec(base | fields)


def _snapshot(**changes: SiteCapacity) -> FederationSnapshot:
    snapshot = FederationSnapshot.all_free(small_topology(), NOW_UNIX_S)
    return replace(snapshot, sites={**snapshot.sites, **changes})


def _by_site(placement: Placement) -> dict[str, CandidateSite]:
    return {c.site: c for c in placement.candidates}


def test_energy_and_carbon_terms_match_the_topology_formulas() -> None:
    snapshot = _snapshot()
    topology = snapshot.topology
    spec = _spec(resources={"accelerator": "h800", "count": 8, "cpu_cores": 0, "memory_gb": 0})
    placement = place(spec, snapshot, Policy.default(PolicyConfig(carbon_price_cny_per_t=80)))
    west = _by_site(placement)["west"]
    # 8 cards at training utilisation plus each card's host share, x PUE
    power_kw = (700 * 8 * 0.85 + 8 * 200) * 1.2 / 1000
    hour = snapshot.hour_of_day_cst
    expected_energy = topology.energy_cost_cny("west", power_kw, hour, 10)
    assert west.terms_cny["energy"] == pytest.approx(expected_energy, abs=0.01)
    expected_carbon = topology.carbon_kg("west", power_kw * 10) * 80 / 1000
    assert west.terms_cny["carbon"] == pytest.approx(expected_carbon, abs=0.01)
    assert placement.chosen == "west"


def test_rejections_name_the_first_filter_that_failed() -> None:
    draining = SiteCapacity("east", SiteStatus.DRAINING, {"h800": 16}, 256, 4096)
    spec = _spec(resources={"accelerator": "h800", "count": 12})
    placement = place(spec, _snapshot(east=draining), Policy.default())
    sites = _by_site(placement)
    assert sites["east"].reason == "site is draining"
    assert sites["far"].reason == "no h800 accelerators"
    assert placement.chosen == "west"


def test_an_alive_site_with_long_stale_capacity_takes_no_new_work() -> None:
    west = _snapshot().sites["west"]
    stale = replace(west, capacity_stale=True)
    spec = _spec(resources={"accelerator": "h800", "count": 8})
    placement = place(spec, _snapshot(west=stale), Policy.default())
    assert _by_site(placement)["west"].reason == (
        "site is active with stale capacity (probe failing)"
    )
    assert placement.chosen != "west"


def test_gang_jobs_need_one_pool_but_others_may_span_pools() -> None:
    policy, snapshot = Policy.default(), _snapshot()
    gang = place(_spec(resources={"count": 20}), snapshot, policy)
    assert _by_site(gang)["west"].reason == "gang of 20 h800 needs one pool, 16 free"
    assert gang.chosen == "far"
    spread = place(_spec(resources={"count": 20}, gang=False), snapshot, policy)
    assert _by_site(spread)["west"].feasible


def test_residency_constraints_reject_with_their_rule() -> None:
    spec = _spec(
        resources={"accelerator": "910b", "count": 4},
        constraints={"allowed_provinces": ["Q", "R"], "excluded_sites": ["west"]},
    )
    placement = place(spec, _snapshot(), Policy.default())
    sites = _by_site(placement)
    assert sites["east"].reason == "province P is not in allowed_provinces"
    assert sites["west"].reason == "site is excluded by the job's constraints"
    assert placement.chosen == "far"


def test_host_and_data_filters() -> None:
    short = SiteCapacity("far", SiteStatus.ACTIVE, {"910b": 32}, cpu_free=2, memory_gb_free=10)
    spec = _spec(resources={"accelerator": "910b", "count": 4, "cpu_cores": 8})
    assert _by_site(place(spec, _snapshot(far=short), Policy.default()))["far"].reason == (
        "needs 8 cpu cores, 2 free"
    )
    lost = _spec(resources={"count": 1}, dataset={"origin": "atlantis", "size_gb": 1})
    placement = place(lost, _snapshot(), Policy.default())
    assert placement.chosen is None
    assert {c.reason for c in placement.candidates} == {"unknown dataset origin 'atlantis'"}


def test_latency_slo_checks_every_region_and_unknown_regions() -> None:
    spec = _spec(
        kind="inference",
        resources={"count": 1},
        inference={"user_regions": [{"region": "city"}], "latency_slo_ms": 10},
    )
    placement = place(spec, _snapshot(), Policy.default())
    assert placement.chosen == "east"
    assert _by_site(placement)["west"].reason == "rtt 24.0 ms > slo 10 ms (from city)"
    ghost = _spec(
        kind="inference",
        resources={"count": 1},
        inference={"user_regions": [{"region": "ghost"}], "latency_slo_ms": 10},
    )
    assert place(ghost, _snapshot(), Policy.default()).candidates[0].reason == (
        "unknown user region 'ghost'"
    )


def test_cpu_only_jobs_run_on_host_cores() -> None:
    spec = _spec(kind="batch", resources={"count": 0, "cpu_cores": 16}, gang=False)
    placement = place(spec, _snapshot(), Policy.default())
    assert all(c.feasible for c in placement.candidates)
    assert placement.chosen in {"west", "far"}


def test_queue_wait_and_term_weights() -> None:
    busy = SiteCapacity("west", SiteStatus.ACTIVE, {"h800": 16, "910b": 8}, 384, 6144, 30.0)
    spec = _spec(resources={"accelerator": "h800", "count": 8})
    placement = place(spec, _snapshot(west=busy), Policy.default())
    assert _by_site(placement)["west"].terms_cny["queue_wait"] == pytest.approx(30 * 8 * 10)
    assert placement.chosen == "east"
    no_wait = Policy.default(PolicyConfig(term_weights={"queue_wait": 0}))
    assert place(spec, _snapshot(west=busy), no_wait).chosen == "west"


def test_silent_sites_take_no_work() -> None:
    snapshot = _snapshot()
    silent = replace(snapshot, sites={k: v for k, v in snapshot.sites.items() if k != "west"})
    placement = place(_spec(resources={"count": 4}), silent, Policy.default())
    assert _by_site(placement)["west"].reason == "site is not reporting"
    assert placement.chosen in {"east", "far"}
