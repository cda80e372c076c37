"""Reported inference demand between the wire and the domain."""

from __future__ import annotations

from collections.abc import Iterable

from computenet.types import InferenceDemand, JobId
from computenet.v1 import job_service_pb2 as pb
from computenet.v1 import types_pb2


def region_weights_to_proto(weights: Iterable[tuple[str, float]]) -> list[types_pb2.RegionDemand]:
    """(region, weight) pairs, in order, as wire RegionDemand entries."""
    return [types_pb2.RegionDemand(region=r, weight=w) for r, w in weights]


def region_weights_from_proto(
    entries: Iterable[types_pb2.RegionDemand],
) -> list[tuple[str, float]]:
    """Wire RegionDemand entries as (region, weight) pairs, in order, repeats kept."""
    return [(e.region, e.weight) for e in entries]


def demand_to_proto(demand: InferenceDemand) -> pb.InferenceDemand:
    """Domain demand report to the wire (regions in name order)."""
    return pb.InferenceDemand(
        job_id=demand.job_id,
        weights=region_weights_to_proto(sorted(demand.weights.items())),
        reported_unix_ms=demand.reported_unix_ms,
    )


def demand_from_proto(msg: pb.InferenceDemand) -> InferenceDemand:
    """Wire demand report to the domain."""
    return InferenceDemand(
        job_id=JobId(msg.job_id),
        weights=dict(region_weights_from_proto(msg.weights)),
        reported_unix_ms=msg.reported_unix_ms,
    )
