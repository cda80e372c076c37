"""What a job asks of a site, flattened from its spec into plain, hashable values."""

from __future__ import annotations

from dataclasses import dataclass

from computenet.spec import JobSpec


@dataclass(frozen=True, slots=True)
class JobDemand:
    """Everything about a job that placement looks at, and nothing else.

    Two jobs with equal demands are interchangeable for placement, which is what lets batch
    placement group them into classes. Host resources and cards cover all inference replicas.
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
        return cls(
            accelerator=res.accelerator,
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
        )


def _merged_regions(spec: JobSpec) -> tuple[tuple[str, float], ...]:
    """User regions with weights summed per region and sorted, so equal demands compare equal."""
    if spec.inference is None:
        return ()
    weights: dict[str, float] = {}
    for item in spec.inference.user_regions:
        weights[item.region] = weights.get(item.region, 0.0) + item.weight
    return tuple(sorted(weights.items()))
