"""What a job asks of a site, flattened from its spec into plain, hashable values, one or many."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from broker.placement.tables import BoolArray, FloatArray, IntArray
from computenet.spec import JobSpec

_K = TypeVar("_K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class JobDemand:
    """Everything about a job that placement looks at, and nothing else.

    Two jobs with equal demands are interchangeable for placement, which is what lets batch
    placement group them into classes. Host resources and cards cover all inference replicas.
    `accelerator` is the one model the job names ("" for any or several); `accepted` lists
    every model it accepts (empty: any), `duration_h` is its run on `reference` ("": the same
    on every model) for work of class `workload`.
    """

    accelerator: str
    cards: int
    cpu_cores: float
    memory_gb: float
    gang: bool
    duration_h: float
    dataset_origin: str | None
    dataset_gb: float
    checkpoint_h: float | None
    serving: bool
    replicas: int
    regions: tuple[tuple[str, float], ...]
    slo_ms: float | None
    allowed_provinces: frozenset[str]
    allowed_sites: frozenset[str]
    excluded_sites: frozenset[str]
    accepted: tuple[str, ...] = ()
    reference: str = ""
    workload: str = "generic"
    min_memory_gb: float = 0.0

    @property
    def models(self) -> tuple[str, ...]:
        """The models the job may use (empty: any), also for demands built with `accelerator`."""
        return self.accepted or ((self.accelerator,) if self.accelerator else ())

    @property
    def has_residency_rules(self) -> bool:
        """True if the job limits where it may run."""
        return bool(self.allowed_provinces or self.allowed_sites or self.excluded_sites)

    @classmethod
    def from_spec(cls, spec: JobSpec) -> JobDemand:
        """Read the placement-relevant fields of a validated spec."""
        res, inference, cons = spec.resources, spec.inference, spec.constraints
        replicas = inference.replicas if inference is not None else 1
        dataset, checkpoint = spec.dataset, spec.checkpoint
        accepted = res.accepted
        return cls(
            accelerator=accepted[0] if len(accepted) == 1 else "",
            cards=res.count * replicas,
            cpu_cores=res.cpu_cores * replicas,
            memory_gb=res.memory_gb * replicas,
            gang=spec.gang,
            duration_h=spec.duration_hours,
            dataset_origin=dataset.origin if dataset is not None else None,
            dataset_gb=dataset.size_gb if dataset is not None else 0.0,
            checkpoint_h=checkpoint.interval_hours if checkpoint is not None else None,
            serving=inference is not None,
            replicas=replicas,
            regions=_merged_regions(spec),
            slo_ms=inference.latency_slo_ms if inference is not None else None,
            allowed_provinces=frozenset(cons.allowed_provinces),
            allowed_sites=frozenset(cons.allowed_sites),
            excluded_sites=frozenset(cons.excluded_sites),
            # sorted: the order of accepted models is no part of the demand
            accepted=tuple(sorted(accepted)),
            reference=res.reference_model,
            workload=spec.workload,
            min_memory_gb=res.min_memory_gb,
        )


def _merged_regions(spec: JobSpec) -> tuple[tuple[str, float], ...]:
    """User regions with weights summed per region and sorted, so equal demands compare equal."""
    if spec.inference is None:
        return ()
    weights: dict[str, float] = {}
    for item in spec.inference.user_regions:
        weights[item.region] = weights.get(item.region, 0.0) + item.weight
    return tuple(sorted(weights.items()))


@dataclass(frozen=True, slots=True)
class DemandArrays:
    """Many demands as one array per field (one entry per job), to evaluate them in one pass.

    Filters and cost terms that offer a batch form take these and return one row per job (or
    a single row when the verdict does not depend on the job) over the options asked about.
    """

    demands: tuple[JobDemand, ...]
    cards: FloatArray
    cpu_cores: FloatArray
    memory_gb: FloatArray
    gang: BoolArray
    duration_h: FloatArray
    dataset_gb: FloatArray
    checkpoint_h: FloatArray  # inf where the job does not checkpoint
    serving: BoolArray
    replicas: FloatArray
    slo_ms: FloatArray  # NaN where the job has no latency SLO

    @classmethod
    def of(cls, demands: Sequence[JobDemand]) -> DemandArrays:
        """The arrays of `demands`, in their order."""

        def floats(values: Iterable[float | None], missing: float = np.nan) -> FloatArray:
            return np.asarray([missing if v is None else v for v in values], dtype=np.float64)

        jobs = tuple(demands)
        return cls(
            demands=jobs,
            cards=floats(d.cards for d in jobs),
            cpu_cores=floats(d.cpu_cores for d in jobs),
            memory_gb=floats(d.memory_gb for d in jobs),
            gang=np.asarray([d.gang for d in jobs], dtype=np.bool_),
            duration_h=floats(d.duration_h for d in jobs),
            dataset_gb=floats(d.dataset_gb for d in jobs),
            checkpoint_h=floats((d.checkpoint_h for d in jobs), np.inf),
            serving=np.asarray([d.serving for d in jobs], dtype=np.bool_),
            replicas=floats(d.replicas for d in jobs),
            slo_ms=floats(d.slo_ms for d in jobs),
        )

    def __len__(self) -> int:
        return len(self.demands)

    def groups(self, key: Callable[[JobDemand], _K]) -> list[tuple[_K, IntArray]]:
        """Positions of the jobs sharing each value of `key`, in order of first appearance."""
        rows: dict[_K, list[int]] = {}
        for i, demand in enumerate(self.demands):
            rows.setdefault(key(demand), []).append(i)
        return [(k, np.asarray(v, dtype=np.int64)) for k, v in rows.items()]
