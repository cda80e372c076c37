"""The accelerator catalogue: per-card figures and relative throughput per workload class."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

from topology.model import Site

Workload = Literal["llm-training", "vision-training", "llm-inference", "generic"]
WORKLOADS: Final[tuple[Workload, ...]] = get_args(Workload)
"""Workload classes the throughput matrix distinguishes, in catalogue order."""

DERIVED_FROM_TFLOPS = "D:dense-tflops-ratio"
"""Provenance of a throughput figure filled in from the dense BF16 TFLOPS ratio."""


class UnknownAcceleratorError(KeyError):
    """A query named an accelerator model that is not in the catalogue."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"unknown accelerator model {model!r}")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class AcceleratorModel:
    """One accelerator model of the catalogue.

    `throughput` holds a figure for every workload class, in a common unit per class (the
    catalogue's reference model is 1.0), so the ratio of two models' figures is how much faster
    one runs that class of work than the other. `provenance` maps a field name (or
    `throughput.<class>`) to its basis: `S:<source keys>`, `D:<derivation>` or `M:<model keys>`.
    """

    id: str
    name: str
    memory_gb: float
    tflops_bf16: float
    watts: float
    throughput: Mapping[str, float]
    provenance: Mapping[str, str] = field(default_factory=dict)

    def throughput_for(self, workload: str) -> float:
        """Relative throughput in that workload class; ValueError for an unknown class."""
        check_workload(workload)
        return self.throughput[workload]


def check_workload(workload: str) -> Workload:
    """The workload class itself, or ValueError naming the known classes."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload class {workload!r} (expected one of {_known()})")
    return workload  # type: ignore[return-value]


def _known() -> str:
    return ", ".join(WORKLOADS)


def complete_throughput(
    given: Mapping[str, float], tflops_bf16: float, reference_tflops_bf16: float
) -> tuple[dict[str, float], dict[str, str]]:
    """Every class's throughput: the given figures, the others from the dense TFLOPS ratio.

    Returns the figures and the provenance of the filled-in ones (`D:dense-tflops-ratio`).
    """
    figures: dict[str, float] = {}
    filled: dict[str, str] = {}
    for workload in WORKLOADS:
        if workload in given:
            figures[workload] = float(given[workload])
        else:
            figures[workload] = tflops_bf16 / reference_tflops_bf16
            filled[f"throughput.{workload}"] = DERIVED_FROM_TFLOPS
    return figures, filled


class Catalogue:
    """Accelerator models by id, and the speed of one model relative to another.

    A speed-blind catalogue (`equal_speeds`) keeps every figure but answers 1.0 to every speed
    query, so a replay can ask "what if all cards were equally fast".
    """

    __slots__ = ("_models", "reference", "speed_blind")

    def __init__(
        self, models: Iterable[AcceleratorModel], *, reference: str | None, speed_blind: bool
    ) -> None:
        self._models: Mapping[str, AcceleratorModel] = MappingProxyType({m.id: m for m in models})
        self.reference = reference
        """The model whose throughput is 1.0 in every class (None if it is not catalogued)."""
        self.speed_blind = speed_blind
        """True if every speed is 1.0 (see `equal_speeds`)."""

    @property
    def models(self) -> Mapping[str, AcceleratorModel]:
        """Models by id, read-only."""
        return self._models

    def model(self, model: str) -> AcceleratorModel:
        """The model with that id; UnknownAcceleratorError otherwise."""
        try:
            return self._models[model]
        except KeyError:
            raise UnknownAcceleratorError(model) from None

    def speed(self, model: str, reference: str, workload: str) -> float:
        """How many times faster `model` runs `workload` than `reference` (1.0 for itself).

        A job estimated at `h` hours on `reference` takes `h / speed(...)` hours on `model`.
        """
        check_workload(workload)
        chosen, base = self.model(model), self.model(reference)
        if self.speed_blind or model == reference:
            return 1.0
        return chosen.throughput[workload] / base.throughput[workload]

    def equal_speeds(self) -> Catalogue:
        """The same catalogue with every speed 1.0 (for "as if all cards were equal" replays)."""
        return Catalogue(self._models.values(), reference=self.reference, speed_blind=True)


def catalogue_from_pools(
    sites: Iterable[Site],
    declared: Iterable[AcceleratorModel] = (),
    reference: str | None = None,
) -> Catalogue:
    """The declared models plus any model only pools know, filled from its first pool's figures.

    Models seen only in pools get every class from the dense TFLOPS ratio to the reference
    model (or, without one, TFLOPS themselves: a consistent unit, since only ratios are used).
    """
    models = {m.id: m for m in declared}
    ref = models.get(reference) if reference is not None else None
    unit = ref.tflops_bf16 if ref is not None else 1.0
    for site in sites:
        for pool in site.pools:
            if pool.model in models:
                continue
            figures, provenance = complete_throughput({}, pool.tflops_bf16, unit)
            models[pool.model] = AcceleratorModel(
                id=pool.model,
                name=pool.model,
                memory_gb=pool.memory_gb,
                tflops_bf16=pool.tflops_bf16,
                watts=pool.watts,
                throughput=MappingProxyType(figures),
                provenance=MappingProxyType(provenance),
            )
    return Catalogue(models.values(), reference=reference, speed_blind=False)
