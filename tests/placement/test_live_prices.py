"""Live reported prices and carbon factors in placement's energy and carbon terms and in explain."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.placement import FederationSnapshot, Policy, place
from broker.placement.live_prices import report_hour_cst, scaled_schedule
from broker.placement.snapshot import ReportedEnergy
from computenet.spec import parse_spec
from computenet.types import EnergyInputs
from tests.placement.fakes import site, small_topology
from topology import Topology

NOW = 1_767_236_400.0  # 2026-01-01T11:00:00+08:00
TRAINING = {
    "name": "t",
    "kind": "training",
    "resources": {"accelerator": "h800", "count": 8},
    "duration_hours": 200.0,
    "command": ["train"],
}


def snapshot(topology: Topology, **reported: ReportedEnergy) -> FederationSnapshot:
    base = FederationSnapshot.all_free(topology, NOW)
    return dataclasses.replace(base, reported_energy=reported)


def candidate_terms(
    placement_site: str, snap: FederationSnapshot, spec: dict[str, object] = TRAINING
) -> dict[str, float]:
    placement = place(parse_spec(spec), snap, Policy.default())
    (found,) = [c for c in placement.candidates if c.site == placement_site]
    return found.terms_cny


def test_a_reported_price_sets_the_energy_term_of_its_site_only() -> None:
    topology = small_topology()  # flat schedules: east 0.7, west 0.3 CNY/kWh
    plain = snapshot(topology)
    live = snapshot(topology, east=ReportedEnergy(price_cny_per_kwh=0.35, reported_unix_s=NOW))
    before, after = candidate_terms("east", plain), candidate_terms("east", live)
    assert after["energy"] == pytest.approx(before["energy"] * 0.35 / 0.7, rel=1e-3)
    assert after["carbon"] == before["carbon"]  # no carbon reported: the topology's
    assert candidate_terms("west", live) == candidate_terms("west", plain)


def test_a_cheap_enough_reported_price_moves_the_job() -> None:
    topology = small_topology()
    assert place(parse_spec(TRAINING), snapshot(topology), Policy.default()).chosen == "west"
    cheap_east = ReportedEnergy(price_cny_per_kwh=0.01, carbon_kg_per_kwh=0.01, reported_unix_s=NOW)
    placement = place(parse_spec(TRAINING), snapshot(topology, east=cheap_east), Policy.default())
    assert placement.chosen == "east"
    east = placement.candidates[0]
    assert east.energy_inputs == EnergyInputs(0.01, 0.01, int(NOW * 1000))
    west = next(c for c in placement.candidates if c.site == "west")
    assert west.energy_inputs is None


def test_a_reported_carbon_factor_keeps_the_green_share() -> None:
    topology = small_topology()  # west: grid factor 0.6, green share 0.5
    live = snapshot(topology, west=ReportedEnergy(carbon_kg_per_kwh=0.3, reported_unix_s=NOW))
    before, after = candidate_terms("west", snapshot(topology)), candidate_terms("west", live)
    assert after["carbon"] == pytest.approx(before["carbon"] * 0.3 / 0.6, rel=1e-3)
    assert after["energy"] == before["energy"]


def test_the_schedule_shape_is_kept_around_the_reported_hour() -> None:
    """A time-of-use site reports half its valley rate at 03:00 CST; a 10-hour run spans the
    valley and the peak, priced by the whole schedule at half its level (not the valley flat)."""
    hourly = [0.2] * 8 + [1.0] * 16  # valley 0:00-8:00, peak after
    tou = site("east", price=0.5).model_copy(update={"hourly_price_cny_per_kwh": tuple(hourly)})
    topology = Topology([tou], [], [])
    at_three = 1_767_196_800 + 3 * 3600.0  # 2026-01-01T03:00:00+08:00
    report = ReportedEnergy(price_cny_per_kwh=0.1, reported_unix_s=at_three)

    ten_hours = {**TRAINING, "duration_hours": 10.0}

    def energy(snap: FederationSnapshot) -> float:
        at = dataclasses.replace(snap, now_unix_s=at_three)
        return candidate_terms("east", at, ten_hours)["energy"]

    before = energy(snapshot(topology))  # 5 h at 0.2 + 5 h at 1.0 per kW
    after = energy(snapshot(topology, east=report))
    assert after == pytest.approx(before * 0.5, rel=1e-3)
    assert after > before * (10 * 0.1) / (5 * 0.2 + 5 * 1.0) * 2  # far above the flat 0.1


@given(
    schedule=st.lists(st.floats(0.01, 5.0), min_size=24, max_size=24),
    price=st.floats(0.01, 5.0),
    hour=st.integers(0, 23),
)
def test_scaling_matches_the_report_and_keeps_ratios(
    schedule: list[float], price: float, hour: int
) -> None:
    day = scaled_schedule(np.asarray(schedule), price, hour)
    assert day[hour] == pytest.approx(price)
    assert day / day[0] == pytest.approx(np.asarray(schedule) / schedule[0])


def test_a_zero_hour_is_replaced_by_the_flat_reported_price() -> None:
    day = scaled_schedule(np.asarray([0.0] * 12 + [1.0] * 12), 0.4, 3)
    assert day.tolist() == [0.4] * 24


@pytest.mark.parametrize(("hour", "expected"), [(0.0, 0), (11.5, 11), (23.99, 23)])
def test_report_hour_is_china_standard_time(hour: float, expected: int) -> None:
    midnight_cst = 1_767_196_800  # 2026-01-01T00:00:00+08:00
    assert report_hour_cst(midnight_cst + hour * 3600) == expected
