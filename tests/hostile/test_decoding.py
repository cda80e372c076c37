"""What decoding refuses anywhere in a request: unknown enum values, 64-bit numbers beyond the
database, NaN and infinities; each named by its field path."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from broker.rpc.decoding import MAX_INT64, field_violations
from computenet.v1 import job_service_pb2 as pb
from computenet.v1 import types_pb2


def _fields(message: object) -> list[str]:
    return [v.field for v in field_violations(message)]  # type: ignore[arg-type]


def test_violations_are_named_by_their_path_however_deep() -> None:
    spec = types_pb2.JobSpec(kind=9, duration_hours=math.nan)  # type: ignore[arg-type]
    spec.inference.user_regions.add(region="r", weight=math.inf)
    assert sorted(_fields(pb.SubmitJobRequest(spec=spec))) == [
        "spec.duration_hours",
        "spec.inference.user_regions[0].weight",
        "spec.kind",
    ]
    placement = types_pb2.Placement()
    placement.candidates.add(site="s").terms_cny["energy"] = -math.inf
    assert _fields(placement) == ["candidates[0].terms_cny['energy']"]


@given(st.integers(0, 2**64 - 1))
def test_sequence_numbers_are_refused_exactly_beyond_int64(after: int) -> None:
    refused = _fields(pb.WatchJobsRequest(after_sequence=after)) == ["after_sequence"]
    assert refused == (after > MAX_INT64)


@given(st.integers(-(2**31), 2**31 - 1))
def test_enum_values_are_refused_exactly_when_unknown(value: int) -> None:
    known = {v.number for v in types_pb2.JobState.DESCRIPTOR.values}
    assert (_fields(pb.ListJobsRequest(state=value)) == ["state"]) == (value not in known)  # type: ignore[arg-type]
