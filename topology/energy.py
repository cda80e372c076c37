"""The one energy model of a run: card and host power, PUE, kWh, CNY over its CST window, carbon.

Placement's energy and carbon terms, the simulator and the demo all use it: the power formula
(`it_watts`, `facility_kw`) works elementwise on floats and numpy arrays alike, so the
vectorised placement terms and the scalar `run_energy` compute the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from topology.accelerators import check_workload
from topology.graph import Topology

WATTS_PER_KW = 1000.0

DEFAULT_UTILISATION: dict[str, float] = {
    "llm-training": 0.85,
    "vision-training": 0.8,
    "llm-inference": 0.6,
    "generic": 0.7,
}
"""Modelled mean board power over rated board power, per workload class (see docs/topology.md)."""
DEFAULT_HOST_WATTS_PER_CARD = 200.0
"""Modelled host share of one card's server (CPUs, memory, NICs, fans), W."""
DEFAULT_CPU_WATTS_PER_CORE = 3.0
"""Host power per requested CPU core, W (a 128-core, 360 W server CPU)."""

_N = TypeVar("_N", float, np.ndarray)


class EnergyModel(BaseModel):
    """Parameters of the energy model; every figure is modelled, see docs/topology.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    utilisation: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_UTILISATION),
        description=(
            "Mean board power as a share of rated board power, per workload class "
            "(llm-training, vision-training, llm-inference, generic); classes left out use 1."
        ),
    )
    host_watts_per_card: float = Field(
        DEFAULT_HOST_WATTS_PER_CARD,
        ge=0,
        description=(
            "Host share of each card's server in W (CPUs, memory, NICs, fans): about half of a "
            "DGX A100's non-GPU maximum, (6.5 kW - 8 x 400 W) / 8."
        ),
    )
    cpu_watts_per_core: float = Field(
        DEFAULT_CPU_WATTS_PER_CORE,
        ge=0,
        description="Host power per requested CPU core in W (a 128-core, 360 W server CPU).",
    )

    @field_validator("utilisation")
    @classmethod
    def _known_classes(cls, shares: dict[str, float]) -> dict[str, float]:
        for workload, share in shares.items():
            check_workload(workload)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{workload}: utilisation must be in [0, 1] (got {share})")
        return shares

    def utilisation_of(self, workload: str) -> float:
        """Mean board power over rated board power for that workload class."""
        return self.utilisation.get(check_workload(workload), 1.0)

    def it_watts(self, board_watts: _N, cards: _N, cpu_cores: _N, workload: str) -> _N:
        """IT power of a job: its cards at their utilisation plus its host share.

        `board_watts` is the rated power of all the job's cards together. The host share is the
        larger of the cards' share of their servers and the requested cores' power, so a
        CPU-only job still draws its cores' power.
        """
        host = np.maximum(cards * self.host_watts_per_card, cpu_cores * self.cpu_watts_per_core)
        return board_watts * self.utilisation_of(workload) + host  # type: ignore[no-any-return]


DEFAULT_ENERGY_MODEL = EnergyModel()


@dataclass(frozen=True, slots=True)
class RunEnergy:
    """What a run at a site uses, costs and emits."""

    kw: float
    """Facility power: IT watts x PUE / 1000."""
    kwh: float
    cny: float
    """The site's hourly CST tariff integrated over the run window."""
    carbon_kg: float
    """kWh x grid factor x (1 - green share)."""


def facility_kw(it_watts: _N, pue: _N | float) -> _N:
    """Power drawn from the grid by equipment using `it_watts`, cooling included."""
    return it_watts * pue / WATTS_PER_KW  # type: ignore[return-value]


def run_energy(
    topology: Topology,
    site: str,
    board_watts: float,
    start_hour: float,
    hours: float,
    *,
    cards: int = 0,
    cpu_cores: float = 0.0,
    workload: str = "generic",
    model: EnergyModel = DEFAULT_ENERGY_MODEL,
) -> RunEnergy:
    """Energy of a run at `site` for `hours` from `start_hour` (CST hours since day 0).

    `board_watts` is the rated power of all the run's cards, `cards` how many there are (for
    the host share) and `cpu_cores` the cores it asked for; `hours` is the run time on the
    chosen cards (already scaled by their speed).
    """
    it = model.it_watts(float(board_watts), float(cards), float(cpu_cores), workload)
    kw = float(facility_kw(it, topology.site(site).pue))
    kwh = kw * hours
    return RunEnergy(
        kw=kw,
        kwh=kwh,
        cny=topology.energy_cost_cny(site, kw, start_hour, hours),
        carbon_kg=topology.carbon_kg(site, kwh),
    )
