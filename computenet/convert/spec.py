"""The job spec on the wire: encoded field by field, and decoded straight into `JobSpec`.

Decoding builds each section of the spec from its message and validates it where it is built,
so every problem is reported as one field violation with the path a user wrote it under
(`spec.resources.count`, `spec.inference.user_regions.0.weight`), all of them at once. Zero
numbers the schema gives a default to (cores, memory, replicas) read as unset, as proto3 sends
them; an enum value this build does not know is refused, never read as a default.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from computenet.convert.enums import (
    kind_from_proto,
    kind_to_proto,
    site_loss_policy_from_proto,
    site_loss_policy_to_proto,
)
from computenet.errors import FieldViolation, SpecError
from computenet.spec import (
    Checkpoint,
    Constraints,
    Dataset,
    InferenceSpec,
    JobSpec,
    RegionDemand,
    Resources,
    violations_from,
)
from computenet.spec_limits import ACCEPTED
from computenet.v1 import types_pb2 as pb

M = TypeVar("M", bound=BaseModel)

SPEC_PATH = "spec"
_FIELD_ORDER = {name: k for k, name in enumerate(JobSpec.model_fields)}


def spec_to_proto(spec: JobSpec) -> pb.JobSpec:
    """Domain spec to wire spec."""
    msg = pb.JobSpec(
        name=spec.name,
        kind=kind_to_proto(spec.kind),
        resources=pb.Resources(
            accelerator=spec.resources.accelerator,
            count=spec.resources.count,
            cpu_cores=spec.resources.cpu_cores,
            memory_gb=spec.resources.memory_gb,
            accelerators=list(spec.resources.accelerators),
            reference=spec.resources.reference,
            workload=spec.resources.workload,
            min_memory_gb=spec.resources.min_memory_gb,
        ),
        gang=spec.gang,
        duration_hours=spec.duration_hours,
        priority=spec.priority,
        command=list(spec.command),
        labels=dict(spec.labels),
        on_site_loss=site_loss_policy_to_proto(spec.on_site_loss),
        constraints=pb.Constraints(
            allowed_provinces=list(spec.constraints.allowed_provinces),
            allowed_sites=list(spec.constraints.allowed_sites),
            excluded_sites=list(spec.constraints.excluded_sites),
        ),
    )
    if spec.dataset is not None:
        msg.dataset.CopyFrom(pb.Dataset(origin=spec.dataset.origin, size_gb=spec.dataset.size_gb))
    if spec.checkpoint is not None:
        msg.checkpoint.CopyFrom(
            pb.Checkpoint(
                interval_hours=spec.checkpoint.interval_hours, size_gb=spec.checkpoint.size_gb
            )
        )
    if spec.inference is not None:
        msg.inference.CopyFrom(
            pb.InferenceSpec(
                user_regions=[
                    pb.RegionDemand(region=r.region, weight=r.weight)
                    for r in spec.inference.user_regions
                ],
                latency_slo_ms=spec.inference.latency_slo_ms,
                replicas=spec.inference.replicas,
            )
        )
    return msg


def spec_from_proto(msg: pb.JobSpec, *, accepted: bool = False) -> JobSpec:
    """Wire spec to domain spec; raises SpecError with a violation per bad field.

    `accepted` marks a spec the broker accepted earlier (a job it returns): the size bounds and
    text checks of submission (`computenet.spec_limits`) are not applied again, so a job
    accepted before a bound existed can still be read.
    """
    sections = _Sections(ACCEPTED if accepted else None)
    kind = kind_from_proto(msg.kind)
    fields: dict[str, Any] = {
        "name": msg.name,
        # A value this build does not know goes to the schema as it came, which refuses it.
        "kind": kind.value if kind is not None else msg.kind,
        "resources": sections.build(
            "resources",
            Resources,
            accelerator=msg.resources.accelerator,
            count=msg.resources.count,
            cpu_cores=msg.resources.cpu_cores or _default(Resources, "cpu_cores"),
            memory_gb=msg.resources.memory_gb or _default(Resources, "memory_gb"),
            accelerators=tuple(msg.resources.accelerators),
            reference=msg.resources.reference,
            workload=msg.resources.workload,
            min_memory_gb=msg.resources.min_memory_gb,
        ),
        "gang": msg.gang,
        "duration_hours": msg.duration_hours,
        "dataset": _dataset(msg, sections),
        "checkpoint": _checkpoint(msg, sections),
        "inference": _inference(msg, sections),
        "priority": msg.priority,
        "constraints": sections.build(
            "constraints",
            Constraints,
            allowed_provinces=tuple(msg.constraints.allowed_provinces),
            allowed_sites=tuple(msg.constraints.allowed_sites),
            excluded_sites=tuple(msg.constraints.excluded_sites),
        ),
        "command": tuple(msg.command),
        "labels": dict(msg.labels),
    }
    if msg.on_site_loss:  # UNSPECIFIED keeps the schema's default
        loss = site_loss_policy_from_proto(msg.on_site_loss)
        fields["on_site_loss"] = loss.value if loss is not None else msg.on_site_loss
    try:
        spec = JobSpec.model_validate(fields, context=sections.context)
    except ValidationError as exc:
        sections.violations.extend(violations_from(exc, SPEC_PATH))
    if sections.violations:
        raise SpecError(f"{SPEC_PATH}: invalid job spec", sections.sorted_violations())
    return spec


class _Sections:
    """Builds the spec's sections, collecting the violations of those that do not validate."""

    def __init__(self, context: dict[str, Any] | None) -> None:
        self.violations: list[FieldViolation] = []
        self.context = context

    def build(self, path: str, model: type[M], **fields: Any) -> M:
        """The section at `path` (below `spec`) built from `fields`.

        An invalid section records its violations and comes back unvalidated, so that the
        sections around it are still checked on their own terms; the spec is refused anyway.
        """
        try:
            return model.model_validate(fields, context=self.context)
        except ValidationError as exc:
            self.violations.extend(violations_from(exc, f"{SPEC_PATH}.{path}"))
            return model.model_construct(**fields)

    def sorted_violations(self) -> list[FieldViolation]:
        """The violations in the order of the spec's fields (as a whole-spec check lists them)."""

        def position(v: FieldViolation) -> int:
            top = v.field.removeprefix(f"{SPEC_PATH}.").split(".")[0]
            return _FIELD_ORDER.get(top, -1)

        return sorted(self.violations, key=position)


def _default(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].default


def _dataset(msg: pb.JobSpec, sections: _Sections) -> Dataset | None:
    if not msg.HasField("dataset"):
        return None
    d = msg.dataset
    return sections.build("dataset", Dataset, origin=d.origin, size_gb=d.size_gb)


def _checkpoint(msg: pb.JobSpec, sections: _Sections) -> Checkpoint | None:
    if not msg.HasField("checkpoint"):
        return None
    c = msg.checkpoint
    return sections.build(
        "checkpoint", Checkpoint, interval_hours=c.interval_hours, size_gb=c.size_gb
    )


def _inference(msg: pb.JobSpec, sections: _Sections) -> InferenceSpec | None:
    if not msg.HasField("inference"):
        return None
    i = msg.inference
    regions = tuple(
        sections.build(
            f"inference.user_regions.{k}", RegionDemand, region=r.region, weight=r.weight
        )
        for k, r in enumerate(i.user_regions)
    )
    return sections.build(
        "inference",
        InferenceSpec,
        user_regions=regions,
        latency_slo_ms=i.latency_slo_ms,
        replicas=i.replicas or _default(InferenceSpec, "replicas"),
    )
