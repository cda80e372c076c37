"""Checks a report of an inference job's user demand against the job and the topology."""

from __future__ import annotations

import math
from collections.abc import Sequence

from computenet.errors import FieldViolation
from computenet.types import Job, JobKind
from topology import Topology

MAX_REGIONS = 1000


def demand_violations(
    job: Job, weights: Sequence[tuple[str, float]], topology: Topology
) -> list[FieldViolation]:
    """Every reason the report cannot be taken; empty when it can."""
    out: list[FieldViolation] = []
    if job.kind != JobKind.INFERENCE or job.spec.inference is None:
        out.append(
            FieldViolation(
                "job_id", f"job {job.job_id!r} is a {job.kind.value} job; demand is for inference"
            )
        )
    if not weights:
        out.append(FieldViolation("weights", "give at least one region=weight"))
    if len(weights) > MAX_REGIONS:
        out.append(FieldViolation("weights", f"at most {MAX_REGIONS} regions"))
        return out
    regions = frozenset(topology.region_ids)
    seen: set[str] = set()
    for k, (region, weight) in enumerate(weights):
        if region not in regions:
            out.append(FieldViolation(f"weights[{k}].region", f"unknown user region {region!r}"))
        elif region in seen:
            out.append(FieldViolation(f"weights[{k}].region", f"region {region!r} given twice"))
        seen.add(region)
        if not math.isfinite(weight) or weight < 0:
            out.append(
                FieldViolation(f"weights[{k}].weight", f"must be a number >= 0 (got {weight:g})")
            )
    if weights and not any(w > 0 for _, w in weights if math.isfinite(w)):
        out.append(FieldViolation("weights", "at least one weight must be above 0"))
    return out
