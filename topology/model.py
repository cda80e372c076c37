"""Immutable records of the federation graph: sites, accelerator pools, user regions, links."""

from __future__ import annotations

import math
from typing import Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, field_validator

SiteId = NewType("SiteId", str)
RegionId = NewType("RegionId", str)

Side = Literal["east", "west"]
SiteKind = Literal["hpc", "cloud", "intelligent"]

HOURS_PER_DAY = 24
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class AcceleratorPool(_Frozen):
    """A homogeneous pool of accelerator cards offered by one site."""

    model: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="lowercase model id, e.g. h20")
    count: int = Field(gt=0, description="cards offered to the federation")
    memory_gb: float = Field(gt=0, description="device memory per card")
    tflops_bf16: float = Field(gt=0, description="dense BF16/FP16 TFLOPS per card")
    watts: float = Field(gt=0, description="board power per card")

    @property
    def total_tflops_bf16(self) -> float:
        """Dense BF16 TFLOPS of the whole pool."""
        return self.count * self.tflops_bf16


class SiteBase(_Frozen):
    """Fields of a site shared by the domain record and the YAML entry."""

    id: SiteId = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    province: str = Field(min_length=1)
    hub: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    side: Side
    kind: SiteKind
    cpu_cores: int = Field(ge=0)
    memory_gb: float = Field(ge=0)
    interconnect_gbps: float = Field(gt=0)
    pue: float = Field(ge=1.0, le=3.0)
    carbon_kg_per_kwh: float = Field(ge=0, le=2.0, description="grid emission factor")
    green_share: float = Field(ge=0, le=1, description="share of power bought as green power")
    mtbf_hours: float = Field(gt=0, description="mean time between site-level interruptions")


class Site(SiteBase):
    """A member compute centre with its pools, hourly power price (CST) and carbon figures."""

    pools: tuple[AcceleratorPool, ...] = ()
    hourly_price_cny_per_kwh: tuple[float, ...] = Field(
        description="price for each hour of the day in China Standard Time, 24 values"
    )
    tariff_cny_per_card_hour: tuple[tuple[str, float], ...] = Field(
        default=(),
        description="card rent by accelerator model, (model, CNY per card-hour) sorted by model",
    )

    @field_validator("hourly_price_cny_per_kwh")
    @classmethod
    def _check_schedule(cls, prices: tuple[float, ...]) -> tuple[float, ...]:
        return check_hourly_prices(prices)

    @property
    def accelerator_count(self) -> int:
        """Cards over all pools."""
        return sum(pool.count for pool in self.pools)

    @property
    def mean_price_cny_per_kwh(self) -> float:
        """Daily mean of the hourly price schedule."""
        return math.fsum(self.hourly_price_cny_per_kwh) / HOURS_PER_DAY

    @property
    def effective_carbon_kg_per_kwh(self) -> float:
        """Grid factor net of the green-power share."""
        return self.carbon_kg_per_kwh * (1.0 - self.green_share)

    def card_tariff_cny_per_hour(self, model: str) -> float:
        """What one card of `model` costs per hour at this site besides energy (0 if unpriced)."""
        return dict(self.tariff_cny_per_card_hour).get(model, 0.0)

    def pool(self, model: str) -> AcceleratorPool | None:
        """The pool of that accelerator model, if the site has one."""
        return next((p for p in self.pools if p.model == model), None)


class UserRegion(_Frozen):
    """A place where users (and inference demand) are, weighted by its share of demand."""

    id: RegionId = Field(pattern=ID_PATTERN)
    name: str = ""
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    demand_weight: float = Field(ge=0)


class Link(_Frozen):
    """An undirected network link between two nodes (sites or user regions)."""

    a: str = Field(min_length=1)
    b: str = Field(min_length=1)
    rtt_ms: float = Field(gt=0)
    bandwidth_gbps: float = Field(gt=0)
    cny_per_gb: float = Field(default=0.0, ge=0)


def check_hourly_prices(prices: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """Return the schedule as a tuple, or raise ValueError unless it has 24 finite prices >= 0."""
    if len(prices) != HOURS_PER_DAY:
        raise ValueError(f"must have {HOURS_PER_DAY} hourly values (got {len(prices)})")
    for hour, price in enumerate(prices):
        if not math.isfinite(price) or price < 0:
            raise ValueError(f"hour {hour}: price must be >= 0 (got {price})")
    return tuple(float(p) for p in prices)
