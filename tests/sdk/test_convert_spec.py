"""Decoding a wire spec straight into JobSpec: every bad field at once, by the path users write."""

from __future__ import annotations

import pytest

from computenet import convert
from computenet.errors import SpecError
from computenet.v1 import types_pb2 as pb


def _valid(**fields: object) -> pb.JobSpec:
    msg = pb.JobSpec(
        name="train",
        kind=pb.JOB_KIND_TRAINING,
        resources=pb.Resources(accelerator="a800", count=8),
        duration_hours=2.0,
        command=["python", "train.py"],
    )
    for name, value in fields.items():
        if isinstance(value, pb.Resources | pb.Dataset | pb.Checkpoint | pb.InferenceSpec):
            getattr(msg, name).CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


def _fields(msg: pb.JobSpec) -> list[str]:
    with pytest.raises(SpecError) as info:
        convert.spec_from_proto(msg)
    return [v.field for v in info.value.violations]


def test_zero_numbers_with_a_default_read_as_unset() -> None:
    inference = pb.InferenceSpec(
        user_regions=[pb.RegionDemand(region="shanghai", weight=1.0)], latency_slo_ms=30
    )
    spec = convert.spec_from_proto(_valid(kind=pb.JOB_KIND_INFERENCE, inference=inference))
    assert (spec.resources.cpu_cores, spec.resources.memory_gb) == (1.0, 4.0)
    assert spec.inference is not None and spec.inference.replicas == 1
    assert spec.on_site_loss == "requeue" and spec.dataset is None and spec.checkpoint is None


def test_every_bad_field_is_reported_at_once_in_spec_order() -> None:
    msg = _valid(
        name="",
        kind=pb.JOB_KIND_INFERENCE,
        resources=pb.Resources(accelerator="a800", count=100_001),
        dataset=pb.Dataset(origin="", size_gb=1.0),
        checkpoint=pb.Checkpoint(interval_hours=0.0),
        inference=pb.InferenceSpec(
            user_regions=[
                pb.RegionDemand(region="shanghai", weight=1.0),
                pb.RegionDemand(region="", weight=-2.0),
            ],
            latency_slo_ms=0.0,
        ),
        priority=5000,
    )
    assert _fields(msg) == [
        "spec.name",
        "spec.resources.count",
        "spec.dataset.origin",
        "spec.checkpoint.interval_hours",
        "spec.inference.user_regions.1.region",
        "spec.inference.user_regions.1.weight",
        "spec.inference.latency_slo_ms",
        "spec.priority",
    ]


def test_an_inference_job_needs_its_section() -> None:
    assert _fields(_valid(kind=pb.JOB_KIND_INFERENCE)) == ["spec"]


def test_a_missing_command_and_an_empty_argument_are_refused() -> None:
    msg = _valid()
    del msg.command[:]
    assert _fields(msg) == ["spec.command"]
    msg.command.extend(["python", ""])
    assert _fields(msg) == ["spec.command.1"]


@pytest.mark.parametrize("kind", [pb.JOB_KIND_UNSPECIFIED, 99])
def test_an_unspecified_or_unknown_kind_is_refused(kind: int) -> None:
    assert _fields(_valid(kind=kind)) == ["spec.kind"]


def test_an_unknown_site_loss_policy_is_refused_not_defaulted() -> None:
    assert _fields(_valid(on_site_loss=7)) == ["spec.on_site_loss"]
    spec = convert.spec_from_proto(_valid(on_site_loss=pb.SITE_LOSS_POLICY_FAIL))
    assert spec.on_site_loss == "fail"


def test_the_error_reads_like_the_schema_check() -> None:
    with pytest.raises(SpecError) as info:
        convert.spec_from_proto(_valid(name=""))
    assert str(info.value).startswith("spec: invalid job spec")
    assert info.value.reason == "INVALID_JOB_SPEC"
