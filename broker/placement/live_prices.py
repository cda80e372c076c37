"""Sites' own live power prices and carbon factors, laid over the topology's per-option arrays.

The rule for a reported price: the topology's hourly schedule keeps its shape (the site's
time-of-use tariff: valley, flat and peak hours in their ratios) and is scaled so that the
hour of the report costs exactly the reported price. A run window is then priced with that
scaled schedule. A single number cannot say how the tariff moves through the day, and a run
often spans peak and valley hours; using the reported price flat would make a site that
reports its cheap night price look cheap all day. Where the schedule is 0 at that hour (it
cannot be scaled) the reported price is used flat.

A reported carbon factor replaces the topology's grid factor; the site's green share still
applies (its own green supply contracts are not part of the grid's intensity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from broker.placement.snapshot import (
    CST_OFFSET_HOURS,
    HOURS_PER_DAY,
    SECONDS_PER_HOUR,
    FederationSnapshot,
    ReportedEnergy,
)
from computenet.types import EnergyInputs
from topology import Topology

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
MS_PER_S = 1000


@dataclass(frozen=True, slots=True)
class LiveEnergy:
    """Per-option price schedules and carbon factors for one snapshot.

    `opt_hourly` / `opt_prefix` / `opt_carbon_kg_per_kwh` have the layout of the table's
    arrays of the same names (they are those arrays when no site reports). `site_inputs`
    says, per site in table order, which reported figures were used (None: the topology's).
    """

    opt_hourly: FloatArray
    opt_prefix: FloatArray
    opt_carbon_kg_per_kwh: FloatArray
    site_inputs: tuple[EnergyInputs | None, ...]


def report_hour_cst(reported_unix_s: float) -> int:
    """The CST hour of day (0-23) in which a report was made."""
    hour = int((reported_unix_s / SECONDS_PER_HOUR + CST_OFFSET_HOURS) % HOURS_PER_DAY)
    return min(hour, int(HOURS_PER_DAY) - 1)


def scaled_schedule(schedule: FloatArray, price_cny_per_kwh: float, hour: int) -> FloatArray:
    """The schedule scaled so that `hour` costs `price_cny_per_kwh` (flat if it cannot be)."""
    level = float(schedule[hour])
    if level <= 0:
        return np.full(schedule.shape, price_cny_per_kwh, dtype=np.float64)
    return schedule * (price_cny_per_kwh / level)


def live_energy(
    *,
    topology: Topology,
    site_ids: tuple[str, ...],
    site_options: tuple[IntArray, ...],
    opt_hourly: FloatArray,
    opt_prefix: FloatArray,
    opt_carbon_kg_per_kwh: FloatArray,
    snapshot: FederationSnapshot,
) -> LiveEnergy:
    """The topology's arrays with every reporting site's options priced by its own figures."""
    reported = {s: r for s, r in snapshot.reported_energy.items() if _reports(r)}
    inputs: list[EnergyInputs | None] = [None] * len(site_ids)
    if not reported:
        return LiveEnergy(opt_hourly, opt_prefix, opt_carbon_kg_per_kwh, tuple(inputs))
    hourly, prefix, carbon = opt_hourly.copy(), opt_prefix.copy(), opt_carbon_kg_per_kwh.copy()
    position = {site_id: i for i, site_id in enumerate(site_ids)}
    for site_id, report in reported.items():
        at = position.get(site_id)
        if at is None:
            continue  # a site the topology does not have: nothing to price
        opts = site_options[at]
        site = topology.site(site_id)
        if report.price_cny_per_kwh > 0:
            schedule = np.asarray(site.hourly_price_cny_per_kwh, dtype=np.float64)
            day = scaled_schedule(
                schedule, report.price_cny_per_kwh, report_hour_cst(report.reported_unix_s)
            )
            hourly[opts] = day
            prefix[opts] = np.concatenate(([0.0], np.cumsum(day)))
        if report.carbon_kg_per_kwh > 0:
            carbon[opts] = report.carbon_kg_per_kwh * (1.0 - site.green_share)
        inputs[at] = EnergyInputs(
            price_cny_per_kwh=report.price_cny_per_kwh,
            carbon_kg_per_kwh=report.carbon_kg_per_kwh,
            reported_unix_ms=int(report.reported_unix_s * MS_PER_S),
        )
    return LiveEnergy(hourly, prefix, carbon, tuple(inputs))


def _reports(report: ReportedEnergy) -> bool:
    return report.price_cny_per_kwh > 0 or report.carbon_kg_per_kwh > 0
