"""Energy of a run at a site: facility power, kWh, CNY over its CST window, and carbon."""

from __future__ import annotations

from dataclasses import dataclass

from topology.graph import Topology

WATTS_PER_KW = 1000.0


@dataclass(frozen=True, slots=True)
class RunEnergy:
    """What drawing a board power at a site for a while uses, costs and emits."""

    kw: float
    """Facility power: board watts x PUE / 1000."""
    kwh: float
    cny: float
    """The site's hourly CST tariff integrated over the run window."""
    carbon_kg: float
    """kWh x grid factor x (1 - green share)."""


def facility_kw(board_watts: float, pue: float) -> float:
    """Power drawn from the grid by equipment using `board_watts`, cooling included."""
    return board_watts * pue / WATTS_PER_KW


def run_energy(
    topology: Topology, site: str, board_watts: float, start_hour: float, hours: float
) -> RunEnergy:
    """Energy of `board_watts` at `site` for `hours` from `start_hour` (CST hours since day 0)."""
    kw = facility_kw(board_watts, topology.site(site).pue)
    kwh = kw * hours
    return RunEnergy(
        kw=kw,
        kwh=kwh,
        cny=topology.energy_cost_cny(site, kw, start_hour, hours),
        carbon_kg=topology.carbon_kg(site, kwh),
    )
