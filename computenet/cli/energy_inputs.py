"""How `plan` and `explain` say which power price and carbon factor each site was priced with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from computenet.types import EnergyInputs, Placement

CST = timezone(timedelta(hours=8), "CST")
TOPOLOGY = "price: topology schedule; carbon: topology"


def describe(inputs: EnergyInputs | None) -> str:
    """`price: reported 0.31 CNY/kWh at 10:00 CST; carbon: topology` and the like."""
    if inputs is None:
        return TOPOLOGY
    at = datetime.fromtimestamp(inputs.reported_unix_ms / 1000, UTC).astimezone(CST)
    when = f" at {at:%H:%M} CST"
    price = (
        f"price: reported {inputs.price_cny_per_kwh:g} CNY/kWh{when}"
        if inputs.price_cny_per_kwh
        else "price: topology schedule"
    )
    carbon = (
        # one report carried both: its time is said once, with the price
        f"carbon: reported {inputs.carbon_kg_per_kwh:g} kgCO2/kWh"
        + ("" if inputs.price_cny_per_kwh else when)
        if inputs.carbon_kg_per_kwh
        else "carbon: topology"
    )
    return f"{price}; {carbon}"


def energy_lines(placement: Placement) -> list[str]:
    """One line per feasible site priced with live figures, then one for all the others."""
    by_site = {c.site: c for c in placement.candidates if c.feasible}  # a row per model: one site
    feasible = list(by_site.values())
    lines = [f"  {c.site}: {describe(c.energy_inputs)}" for c in feasible if c.energy_inputs]
    if not lines:
        return [f"energy inputs: {TOPOLOGY} (no site reported live figures)"] if feasible else []
    if len(lines) < len(feasible):
        lines.append(f"  other sites: {TOPOLOGY}")
    return ["energy inputs:", *lines]
