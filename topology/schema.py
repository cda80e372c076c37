"""Pydantic schema of the topology YAML file (docs/topology.md) and its conversion to records."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from located_yaml import Loc, Problem
from topology.accelerators import (
    WORKLOADS,
    AcceleratorModel,
    Catalogue,
    catalogue_from_pools,
    complete_throughput,
)
from topology.model import (
    ID_PATTERN,
    AcceleratorPool,
    Link,
    Site,
    SiteBase,
    UserRegion,
    check_hourly_prices,
)
from topology.pricing import expand_bands

Provenance = dict[str, str]
_PROVENANCE = re.compile(r"^(?P<basis>[SDM]):(?P<refs>[^\s]+)(?:\s.*)?$")
PositiveFloat = Annotated[float, Field(gt=0)]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class AcceleratorSpec(_Entry):
    """Per-card figures of an accelerator model, shared by every pool of that model."""

    name: str = ""
    memory_gb: PositiveFloat
    tflops_bf16: PositiveFloat
    watts: PositiveFloat
    throughput: dict[str, PositiveFloat] = Field(default_factory=dict)
    """Relative throughput per workload class (`throughput_reference` = 1.0); classes left out
    default to the dense TFLOPS ratio to the reference model."""
    provenance: Provenance = Field(default_factory=dict)


class TouBand(_Entry):
    """Hours `[start, end)` of a time-of-use band (wrapping past midnight if start > end)."""

    hours: tuple[int, int]
    multiplier: float = Field(ge=0)


class Tariff(_Entry):
    """A flat price shaped by a named time-of-use profile."""

    flat_cny_per_kwh: float = Field(ge=0)
    profile: str


class PoolEntry(_Entry):
    """An accelerator pool; per-card figures default to the `accelerators` catalogue."""

    model: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    count: int = Field(gt=0)
    memory_gb: PositiveFloat | None = None
    tflops_bf16: PositiveFloat | None = None
    watts: PositiveFloat | None = None


class SiteEntry(SiteBase):
    """A site as written in YAML: a tariff or an explicit 24-value hourly price list."""

    pools: list[PoolEntry] = Field(default_factory=list)
    tariff: Tariff | None = None
    price_cny_per_kwh: list[float] | None = None
    provenance: Provenance = Field(default_factory=dict)

    @field_validator("price_cny_per_kwh")
    @classmethod
    def _check_prices(cls, prices: list[float] | None) -> list[float] | None:
        return None if prices is None else list(check_hourly_prices(prices))

    @model_validator(mode="after")
    def _one_price(self) -> SiteEntry:
        if (self.tariff is None) == (self.price_cny_per_kwh is None):
            raise ValueError("give exactly one of `tariff` and `price_cny_per_kwh`")
        return self


class RegionEntry(UserRegion):
    """A user region as written in YAML."""

    provenance: Provenance = Field(default_factory=dict)


class LinkEntry(Link):
    """A link as written in YAML."""

    provenance: Provenance = Field(default_factory=dict)


class TopologyFile(BaseModel):
    """The whole YAML document."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    version: int = 1
    description: str = ""
    sources: dict[str, str] = {}
    models: dict[str, str] = {}
    accelerators: dict[Annotated[str, Field(pattern=ID_PATTERN)], AcceleratorSpec] = {}
    throughput_reference: str | None = None
    """The accelerator whose throughput is 1.0 in every class (the unit of `throughput`)."""
    tou_profiles: dict[str, list[TouBand]] = {}
    sites: list[SiteEntry] = Field(min_length=1)
    user_regions: list[RegionEntry] = []
    links: list[LinkEntry] = []


def build_records(
    doc: TopologyFile,
) -> tuple[list[Site], list[UserRegion], list[Link], Catalogue, list[Problem]]:
    """Resolve catalogue references and tariffs, collecting problems rather than stopping."""
    problems = _provenance_problems(doc)
    declared = _catalogue(doc, problems)
    sites: list[Site] = []
    for i, entry in enumerate(doc.sites):
        pools = [
            _pool(doc, (("sites", i, "pools", k)), p, problems) for k, p in enumerate(entry.pools)
        ]
        prices = _prices(doc, ("sites", i), entry, problems)
        if prices is None or any(p is None for p in pools):
            continue
        fields = entry.model_dump(include=set(SiteBase.model_fields))
        sites.append(
            Site(**fields, pools=tuple(p for p in pools if p), hourly_price_cny_per_kwh=prices)
        )
    regions = [UserRegion(**r.model_dump(exclude={"provenance"})) for r in doc.user_regions]
    links = [Link(**x.model_dump(exclude={"provenance"})) for x in doc.links]
    catalogue = catalogue_from_pools(sites, declared, doc.throughput_reference)
    return sites, regions, links, catalogue, problems


def _catalogue(doc: TopologyFile, problems: list[Problem]) -> list[AcceleratorModel]:
    """The declared accelerator models with every workload class filled in."""
    reference = doc.accelerators.get(doc.throughput_reference or "")
    if doc.throughput_reference is not None and reference is None:
        problems.append(
            Problem(
                ("throughput_reference",),
                f"unknown accelerator {doc.throughput_reference!r} (add it to `accelerators`)",
            )
        )
    models: list[AcceleratorModel] = []
    for key, spec in doc.accelerators.items():
        loc: Loc = ("accelerators", key, "throughput")
        for workload, value in spec.throughput.items():
            if workload not in WORKLOADS:
                problems.append(
                    Problem(
                        (*loc, workload),
                        f"unknown workload class {workload!r} (expected one of "
                        f"{', '.join(WORKLOADS)})",
                    )
                )
            elif spec is reference and value != 1.0:
                problems.append(
                    Problem((*loc, workload), f"the throughput reference must be 1.0 (got {value})")
                )
        if spec.throughput and reference is None:
            problems.append(Problem(loc, "relative throughput needs `throughput_reference`"))
        unit = reference.tflops_bf16 if reference is not None else 1.0
        given: dict[str, float] = {w: v for w, v in spec.throughput.items() if w in WORKLOADS}
        figures, filled = complete_throughput(given, spec.tflops_bf16, unit)
        models.append(
            AcceleratorModel(
                id=key,
                name=spec.name or key,
                memory_gb=spec.memory_gb,
                tflops_bf16=spec.tflops_bf16,
                watts=spec.watts,
                throughput=MappingProxyType(figures),
                provenance=MappingProxyType({**spec.provenance, **filled}),
            )
        )
    return models


def _pool(
    doc: TopologyFile, loc: Loc, entry: PoolEntry, problems: list[Problem]
) -> AcceleratorPool | None:
    spec = doc.accelerators.get(entry.model)
    figures: dict[str, float] = {}
    for name in ("memory_gb", "tflops_bf16", "watts"):
        value = getattr(entry, name)
        value = getattr(spec, name, None) if value is None else value
        if value is not None:
            figures[name] = value
    if len(figures) < 3:
        problems.append(
            Problem(
                (*loc, "model"), f"unknown accelerator {entry.model!r} (add it to `accelerators`)"
            )
        )
        return None
    return AcceleratorPool(model=entry.model, count=entry.count, **figures)


def _prices(
    doc: TopologyFile, loc: Loc, entry: SiteEntry, problems: list[Problem]
) -> tuple[float, ...] | None:
    if entry.price_cny_per_kwh is not None:
        return tuple(entry.price_cny_per_kwh)
    assert entry.tariff is not None
    bands = doc.tou_profiles.get(entry.tariff.profile)
    if bands is None:
        problems.append(
            Problem((*loc, "tariff", "profile"), f"unknown tou profile {entry.tariff.profile!r}")
        )
        return None
    try:
        return expand_bands(
            entry.tariff.flat_cny_per_kwh, [(*b.hours, b.multiplier) for b in bands]
        )
    except ValueError as exc:
        problems.append(Problem(("tou_profiles", entry.tariff.profile), str(exc)))
        return None


def _provenance_problems(doc: TopologyFile) -> list[Problem]:
    """Provenance keys name fields; values are `S:<source keys>`, `M:<model keys>` or `D:...`."""
    problems: list[Problem] = []
    groups: list[tuple[Loc, BaseModel, Provenance]] = [
        (("accelerators", key), spec, spec.provenance) for key, spec in doc.accelerators.items()
    ]
    groups += [(("sites", i), e, e.provenance) for i, e in enumerate(doc.sites)]
    groups += [(("user_regions", i), e, e.provenance) for i, e in enumerate(doc.user_regions)]
    groups += [(("links", i), e, e.provenance) for i, e in enumerate(doc.links)]
    for loc, entry, provenance in groups:
        for field, basis in provenance.items():
            where = (*loc, "provenance", field)
            if not _names_a_field(entry, field):
                problems.append(Problem(where, f"provenance for unknown field {field!r}"))
                continue
            match = _PROVENANCE.match(basis)
            if match is None:
                problems.append(
                    Problem(where, f"must look like 'S:key', 'D:text' or 'M:key' (got {basis!r})")
                )
                continue
            known = {"S": doc.sources, "M": doc.models}.get(match["basis"])
            missing = [
                ref for ref in match["refs"].split(",") if known is not None and ref not in known
            ]
            if missing:
                table = "sources" if match["basis"] == "S" else "models"
                problems.append(Problem(where, f"unknown {table} key(s) {', '.join(missing)}"))
    for key, spec in doc.accelerators.items():
        untagged = [w for w in spec.throughput if f"throughput.{w}" not in spec.provenance]
        problems += [
            Problem(
                ("accelerators", key, "throughput", w),
                f"give its basis in `provenance` as 'throughput.{w}'",
            )
            for w in untagged
            if w in WORKLOADS
        ]
    return problems


def _names_a_field(entry: BaseModel, field: str) -> bool:
    """A field of the entry, or `throughput.<class>` for a class the accelerator gives."""
    if field in type(entry).model_fields:
        return True
    prefix, _, workload = field.partition(".")
    return (
        isinstance(entry, AcceleratorSpec)
        and prefix == "throughput"
        and (workload in entry.throughput)
    )
