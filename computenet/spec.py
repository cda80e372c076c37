"""The job spec: its schema, its context-free validation (bounds in `computenet.spec_limits`),
and loading it from YAML or JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from computenet.errors import FieldViolation, SpecError
from computenet.printable import escaped, shortened
from computenet.spec_limits import (
    MAX_ARG_CHARS,
    MAX_COMMAND_ARGS,
    MAX_ID_CHARS,
    MAX_LABELS,
    MAX_NAME_CHARS,
    MAX_SPEC_FILE_BYTES,
    MAX_SPEC_FILE_DEPTH,
    MAX_SPEC_FILE_VALUES,
    MAX_USER_REGIONS,
    Argument,
    ConstraintEntries,
    LabelKey,
    LabelValue,
    ModelIds,
    Text,
    enforced,
    spec_size_violation,
)
from located_yaml import LocatedError, LocatedIssue, load_mapping, read_source, validate_mapping
from located_yaml.issues import is_consequence
from located_yaml.limits import YamlLimits

__all__ = [
    "MAX_COMMAND_ARGS",
    "MAX_NAME_CHARS",
    "WORKLOADS",
    "WORKLOAD_BY_KIND",
    "Checkpoint",
    "Constraints",
    "Dataset",
    "InferenceSpec",
    "JobSpec",
    "RegionDemand",
    "Resources",
    "Workload",
    "checked_spec",
    "load_spec",
    "parse_spec",
    "violations_from",
]

_Frozen = ConfigDict(extra="forbid", frozen=True)

Workload = Literal["llm-training", "vision-training", "llm-inference", "generic"]
WORKLOADS: tuple[Workload, ...] = get_args(Workload)
"""Workload classes of the accelerator catalogue (the same as `topology.WORKLOADS`)."""
WORKLOAD_BY_KIND: dict[str, Workload] = {
    "training": "llm-training",
    "inference": "llm-inference",
    "batch": "generic",
}
"""The workload class of a job that names none, by its kind."""


class Resources(BaseModel):
    """Accelerators and host resources for the job (per replica for inference).

    A job names one accelerator model (`accelerator`), several it accepts (`accelerators`,
    with the `reference` its duration is estimated on), or none (any model, durations taken
    as they are on every model).
    """

    model_config = _Frozen
    accelerator: Text = Field(
        "", max_length=MAX_ID_CHARS, description="Accelerator model id; empty = any."
    )
    count: int = Field(0, ge=0, le=100_000, description="Accelerators.")
    cpu_cores: float = Field(
        1.0, ge=0, le=1_000_000, validation_alias=AliasChoices("cpu_cores", "cpu")
    )
    memory_gb: float = Field(4.0, ge=0, le=100_000_000)
    accelerators: ModelIds = Field(
        (), description="Accelerator models the job accepts; placement chooses one."
    )
    reference: Text = Field(
        "",
        max_length=MAX_ID_CHARS,
        description="Model `duration_hours` is estimated on; default the first accepted one.",
    )
    workload: Text = Field(
        "", description="Workload class that sets the models' relative speed; default by kind."
    )
    min_memory_gb: float = Field(
        0.0, ge=0, le=100_000, description="Device memory each card must have, GB."
    )

    @field_validator("accelerators")
    @classmethod
    def _one_way_to_name_models(
        cls, models: tuple[str, ...], info: ValidationInfo
    ) -> tuple[str, ...]:
        if models and info.data.get("accelerator"):
            raise ValueError("give `accelerator` (one model) or `accelerators`, not both")
        repeated = sorted({m for m in models if models.count(m) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} listed more than once")
        return models

    @field_validator("workload")
    @classmethod
    def _known_workload(cls, workload: str) -> str:
        if workload and workload not in WORKLOADS:
            raise ValueError(f"unknown workload class {workload!r}; known: {', '.join(WORKLOADS)}")
        return workload

    @field_validator("reference")
    @classmethod
    def _reference_is_accepted(cls, reference: str, info: ValidationInfo) -> str:
        if not reference:
            return reference
        accepted = info.data.get("accelerators") or (
            (info.data["accelerator"],) if info.data.get("accelerator") else ()
        )
        if not accepted:
            raise ValueError("a reference model needs `accelerators` (or `accelerator`)")
        if reference not in accepted:
            raise ValueError(
                f"{reference!r} is not one of the accepted models ({', '.join(accepted)})"
            )
        return reference

    @property
    def accepted(self) -> tuple[str, ...]:
        """The models the job may run on; empty means any model."""
        if self.accelerators:
            return tuple(self.accelerators)
        return (self.accelerator,) if self.accelerator else ()

    @property
    def reference_model(self) -> str:
        """The model `duration_hours` is estimated on ("" when the job names no model)."""
        accepted = self.accepted
        return self.reference or (accepted[0] if accepted else "")


class Dataset(BaseModel):
    """Input data: where it is (a topology node id) and how big."""

    model_config = _Frozen
    origin: Text = Field(min_length=1, max_length=MAX_ID_CHARS)
    size_gb: float = Field(ge=0, le=1e9)


class Checkpoint(BaseModel):
    """Checkpointing; a checkpointable job can be migrated and loses less to failures."""

    model_config = _Frozen
    interval_hours: float = Field(gt=0, le=10_000)
    size_gb: float = Field(0.0, ge=0, le=1e8)


class RegionDemand(BaseModel):
    """One user region served, with its relative weight."""

    model_config = _Frozen
    region: Text = Field(min_length=1, max_length=MAX_ID_CHARS)
    weight: float = Field(1.0, gt=0, le=1e9)


class InferenceSpec(BaseModel):
    """Serving requirements: where the users are and the RTT they tolerate."""

    model_config = _Frozen
    user_regions: tuple[RegionDemand, ...] = Field(min_length=1, max_length=MAX_USER_REGIONS)
    latency_slo_ms: float = Field(gt=0, le=10_000)
    replicas: int = Field(1, ge=1, le=10_000)


class Constraints(BaseModel):
    """Hard placement constraints (data residency, exclusions)."""

    model_config = _Frozen
    allowed_provinces: ConstraintEntries = ()
    allowed_sites: ConstraintEntries = ()
    excluded_sites: ConstraintEntries = ()


NonEmptyArg = Annotated[Argument, Field(min_length=1, max_length=MAX_ARG_CHARS)]


class JobSpec(BaseModel):
    """What a user asks the federation to run. Immutable once submitted."""

    model_config = _Frozen
    name: Text = Field(min_length=1, max_length=MAX_NAME_CHARS)
    kind: Literal["training", "inference", "batch"]
    resources: Resources = Resources()
    gang: bool = True
    duration_hours: float = Field(gt=0, le=24 * 365)
    dataset: Dataset | None = None
    checkpoint: Checkpoint | None = None
    inference: InferenceSpec | None = None
    priority: int = Field(0, ge=-1000, le=1000)
    constraints: Constraints = Constraints()
    command: tuple[NonEmptyArg, ...] = Field(min_length=1, max_length=MAX_COMMAND_ARGS)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    on_site_loss: Literal["requeue", "fail"] = "requeue"

    @model_validator(mode="after")
    def _inference_needs_users(self) -> JobSpec:
        if self.kind == "inference" and self.inference is None:
            raise ValueError("inference jobs need an `inference` section (user_regions, slo)")
        return self

    @model_validator(mode="after")
    def _within_size(self, info: ValidationInfo) -> JobSpec:
        if enforced(info):
            # Compact JSON as pydantic writes it (UTF-8, in Rust): the size of the canonical form
            # in a fraction of its time; only the order of keys differs.
            problem = spec_size_violation(len(self.__pydantic_serializer__.to_json(self)))
            if problem:
                raise ValueError(problem)
        return self

    @property
    def replicas(self) -> int:
        """Copies the job runs: an inference job's replicas, else 1."""
        return self.inference.replicas if self.inference else 1

    @property
    def workload(self) -> Workload:
        """The job's workload class: as given, or by kind (training: llm-training, ...)."""
        given = self.resources.workload
        return cast(Workload, given) if given in WORKLOADS else WORKLOAD_BY_KIND[self.kind]

    @property
    def accelerators_total(self) -> int:
        """Accelerators the whole job holds (all replicas), as the broker and agents count it."""
        return self.resources.count * self.replicas

    @property
    def cpu_cores_total(self) -> float:
        """CPU cores the whole job holds (all replicas)."""
        return self.resources.cpu_cores * self.replicas

    @property
    def memory_gb_total(self) -> float:
        """Memory the whole job holds (all replicas), GB."""
        return self.resources.memory_gb * self.replicas

    def in_pool(self, pool: str) -> JobSpec:
        """This spec pinned to the pool placement chose (unchanged if it names one model).

        A job that accepted several models names the chosen one alone; its workload class and
        memory floor stay, its `duration_hours` is still the reference model's estimate.
        """
        if not pool or self.resources.accelerator:
            return self
        update = {"accelerator": pool, "accelerators": (), "reference": ""}
        resources = self.resources.model_copy(update=update)
        return self.model_copy(update={"resources": resources})

    def canonical_json(self) -> str:
        """A stable serialisation used to compare specs for idempotent submission."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


UNENCODABLE = "must be valid Unicode (a lone surrogate cannot be encoded)"
MAX_PATH_KEY_CHARS = 40
"""Longer keys (label keys) are cut in violation paths, which name a place, not repeat a value."""


def _path_part(part: Any) -> str:
    return shortened(escaped(str(part)), MAX_PATH_KEY_CHARS)


def _description(item: Any) -> str:
    if item["type"] == "string_unicode":
        return UNENCODABLE
    error = (item.get("ctx") or {}).get("error")
    return str(error) if item["type"] == "value_error" and error is not None else item["msg"]


def violations_from(error: ValidationError, prefix: str = "spec") -> list[FieldViolation]:
    """Turn a pydantic error into one field violation per problem, with dotted field paths."""
    out = []
    for item in error.errors():
        if is_consequence(item):
            continue
        # "[key]" marks a problem with a mapping's key; the description says so already.
        parts = [prefix, *(_path_part(p) for p in item["loc"] if p != "[key]")]
        path = ".".join(parts).replace(".[", "[")
        out.append(FieldViolation(field=path, description=_description(item)))
    return out


def parse_spec(data: Any, *, source: str = "spec") -> JobSpec:
    """Validate a mapping as a JobSpec, raising SpecError with a violation per bad field."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: a job spec must be a mapping",
            [FieldViolation("spec", f"expected a mapping, got {type(data).__name__}")],
        )
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid job spec", violations_from(exc)) from None


def checked_spec(spec: JobSpec) -> JobSpec:
    """`spec` validated again, for one that may have been built without validation
    (`model_construct`, `model_copy(update=...)`); raises SpecError."""
    return parse_spec(spec.model_dump(by_alias=False, warnings=False))


SPEC_FILE_LIMITS = YamlLimits(max_depth=MAX_SPEC_FILE_DEPTH, max_values=MAX_SPEC_FILE_VALUES)
MAX_ISSUES_SHOWN = 5


def load_spec(path: str | Path) -> JobSpec:
    """Read a job spec from a YAML or JSON file (JSON is YAML).

    Anything wrong (unreadable, not a regular file, too big, not UTF-8, not YAML, nested too
    deep, aliases expanding too far, an invalid spec) raises SpecError whose message is one
    line, `FILE:LINE: FIELD: PROBLEM` (and how many more problems there are); its violations
    list every problem with its field.
    """
    name = os.fspath(path)
    try:
        text = read_source(name, max_bytes=MAX_SPEC_FILE_BYTES)
        doc = load_mapping(text, file=name, limits=SPEC_FILE_LIMITS)
        return validate_mapping(JobSpec, doc, file=name)
    except LocatedError as exc:
        raise _file_error(name, exc.issues) from None


def _again(issue: LocatedIssue) -> str:
    """A later issue of the same file, without repeating the file's name."""
    where = f"line {issue.line}: " if issue.line else ""
    return f"{where}{issue.field}: {issue.message}" if issue.field else where + issue.message


def _file_error(name: str, issues: tuple[LocatedIssue, ...]) -> SpecError:
    first, *rest = issues
    shown = "; ".join([str(first), *(_again(issue) for issue in rest[: MAX_ISSUES_SHOWN - 1])])
    more = len(issues) - MAX_ISSUES_SHOWN
    message = shown + (f" (+{more} more)" if more > 0 else "")
    violations = [
        FieldViolation(
            f"spec.{issue.field}" if issue.field else "spec",
            f"line {issue.line}: {issue.message}" if issue.line else issue.message,
        )
        for issue in issues
    ]
    return SpecError(message, violations)
