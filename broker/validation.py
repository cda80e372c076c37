"""Checks a job spec against the served topology: every named node, site and model must exist."""

from __future__ import annotations

import functools

from computenet.errors import FieldViolation
from computenet.spec import JobSpec
from topology import Topology


@functools.cache
def _known_models(topology: Topology) -> dict[str, int]:
    """Accelerator models of the topology with the largest pool of each (computed once)."""
    largest: dict[str, int] = {}
    for site in topology.sites:
        for pool in site.pools:
            largest[pool.model] = max(largest.get(pool.model, 0), pool.count)
    return largest


@functools.cache
def _site_ids(topology: Topology) -> frozenset[str]:
    return frozenset(topology.site_ids)


@functools.cache
def _region_ids(topology: Topology) -> frozenset[str]:
    return frozenset(topology.region_ids)


@functools.cache
def _provinces(topology: Topology) -> frozenset[str]:
    return frozenset(s.province for s in topology.sites)


@functools.cache
def _memory_gb(topology: Topology) -> dict[str, float]:
    """Largest per-card memory of each pooled model."""
    memory: dict[str, float] = {}
    for site in topology.sites:
        for pool in site.pools:
            memory[pool.model] = max(memory.get(pool.model, 0.0), pool.memory_gb)
    return memory


def violations_against(spec: JobSpec, topology: Topology) -> list[FieldViolation]:
    """Every way the spec refers to something the topology does not have."""
    out = _accelerator_violations(spec, topology)
    if spec.dataset is not None and not topology.has_node(spec.dataset.origin):
        out.append(FieldViolation("spec.dataset.origin", f"unknown node {spec.dataset.origin!r}"))
    if spec.inference is not None:
        regions = _region_ids(topology)
        for i, demand in enumerate(spec.inference.user_regions):
            if demand.region not in regions:
                out.append(
                    FieldViolation(
                        f"spec.inference.user_regions[{i}].region",
                        f"unknown user region {demand.region!r}",
                    )
                )
    sites = _site_ids(topology)
    for name in ("allowed_sites", "excluded_sites"):
        for i, site in enumerate(getattr(spec.constraints, name)):
            if site not in sites:
                out.append(
                    FieldViolation(f"spec.constraints.{name}[{i}]", f"unknown site {site!r}")
                )
    provinces = _provinces(topology)
    for i, province in enumerate(spec.constraints.allowed_provinces):
        if province not in provinces:
            out.append(
                FieldViolation(
                    f"spec.constraints.allowed_provinces[{i}]", f"no site in {province!r}"
                )
            )
    return out


def _accelerator_violations(spec: JobSpec, topology: Topology) -> list[FieldViolation]:
    """Unknown models, no model with the memory asked for, more cards than any pool has."""
    out: list[FieldViolation] = []
    models = _known_models(topology)
    res = spec.resources
    known = ", ".join(sorted(models))
    if res.accelerator and res.accelerator not in models:
        message = f"unknown accelerator {res.accelerator!r}; known: {known}"
        return [FieldViolation("spec.resources.accelerator", message)]
    # a catalogued model no site pools yet may be listed: the job runs on the others
    catalogue = topology.accelerators
    unknown = [
        FieldViolation(
            f"spec.resources.accelerators[{i}]", f"unknown accelerator {model!r}; known: {known}"
        )
        for i, model in enumerate(res.accelerators)
        if model not in models and model not in catalogue
    ]
    if unknown:
        return unknown
    if res.count == 0:
        return out
    usable = [m for m in (res.accepted or tuple(models)) if m in models]
    memory = _memory_gb(topology)
    if res.min_memory_gb > 0:
        roomy = [m for m in usable if memory.get(m, 0.0) + 1e-9 >= res.min_memory_gb]
        if not roomy:
            most = max((memory.get(m, 0.0) for m in usable), default=0.0)
            message = f"no accepted model has {res.min_memory_gb:g} GB per card (at most {most:g})"
            return [FieldViolation("spec.resources.min_memory_gb", message)]
        usable = roomy
    # Every job runs at one site (gang or not), so it must fit the largest pool.
    biggest = max((models[m] for m in usable), default=0)
    if spec.accelerators_total > biggest:
        out.append(
            FieldViolation(
                "spec.resources.count",
                f"{spec.accelerators_total} accelerators exceed the largest pool ({biggest})",
            )
        )
    return out
