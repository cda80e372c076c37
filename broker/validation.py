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


def violations_against(spec: JobSpec, topology: Topology) -> list[FieldViolation]:
    """Every way the spec refers to something the topology does not have."""
    out: list[FieldViolation] = []
    models = _known_models(topology)
    model = spec.resources.accelerator
    if model and model not in models:
        known = ", ".join(sorted(models))
        out.append(
            FieldViolation(
                "spec.resources.accelerator", f"unknown accelerator {model!r}; known: {known}"
            )
        )
    elif spec.resources.count > 0:
        # Every job runs at one site (gang or not), so it must fit the largest pool.
        biggest = models.get(model, 0) if model else max(models.values(), default=0)
        if spec.accelerators_total > biggest:
            out.append(
                FieldViolation(
                    "spec.resources.count",
                    f"{spec.accelerators_total} accelerators exceed the largest pool ({biggest})",
                )
            )
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
