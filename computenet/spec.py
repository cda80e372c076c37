"""The job spec: its schema, its context-free validation, and loading it from YAML or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from computenet.errors import FieldViolation, SpecError

MAX_COMMAND_ARGS = 256
MAX_NAME_CHARS = 128

_Frozen = ConfigDict(extra="forbid", frozen=True)


class Resources(BaseModel):
    """Accelerators and host resources for the job (per replica for inference)."""

    model_config = _Frozen
    accelerator: str = Field("", max_length=64, description="Accelerator model id; empty = any.")
    count: int = Field(0, ge=0, le=100_000, description="Accelerators.")
    cpu_cores: float = Field(
        1.0, ge=0, le=1_000_000, validation_alias=AliasChoices("cpu_cores", "cpu")
    )
    memory_gb: float = Field(4.0, ge=0, le=100_000_000)


class Dataset(BaseModel):
    """Input data: where it is (a topology node id) and how big."""

    model_config = _Frozen
    origin: str = Field(min_length=1, max_length=64)
    size_gb: float = Field(ge=0, le=1e9)


class Checkpoint(BaseModel):
    """Checkpointing; a checkpointable job can be migrated and loses less to failures."""

    model_config = _Frozen
    interval_hours: float = Field(gt=0, le=10_000)
    size_gb: float = Field(0.0, ge=0, le=1e8)


class RegionDemand(BaseModel):
    """One user region served, with its relative weight."""

    model_config = _Frozen
    region: str = Field(min_length=1, max_length=64)
    weight: float = Field(1.0, gt=0, le=1e9)


class InferenceSpec(BaseModel):
    """Serving requirements: where the users are and the RTT they tolerate."""

    model_config = _Frozen
    user_regions: tuple[RegionDemand, ...] = Field(min_length=1, max_length=256)
    latency_slo_ms: float = Field(gt=0, le=10_000)
    replicas: int = Field(1, ge=1, le=10_000)


class Constraints(BaseModel):
    """Hard placement constraints (data residency, exclusions)."""

    model_config = _Frozen
    allowed_provinces: tuple[str, ...] = ()
    allowed_sites: tuple[str, ...] = ()
    excluded_sites: tuple[str, ...] = ()


NonEmptyArg = Annotated[str, Field(min_length=1, max_length=4096)]


class JobSpec(BaseModel):
    """What a user asks the federation to run. Immutable once submitted."""

    model_config = _Frozen
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
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
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    on_site_loss: Literal["requeue", "fail"] = "requeue"

    @model_validator(mode="after")
    def _inference_needs_users(self) -> JobSpec:
        if self.kind == "inference" and self.inference is None:
            raise ValueError("inference jobs need an `inference` section (user_regions, slo)")
        return self

    @property
    def replicas(self) -> int:
        """Copies the job runs: an inference job's replicas, else 1."""
        return self.inference.replicas if self.inference else 1

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
        """This spec pinned to the pool placement chose (unchanged if it names a model)."""
        if not pool or self.resources.accelerator:
            return self
        resources = self.resources.model_copy(update={"accelerator": pool})
        return self.model_copy(update={"resources": resources})

    def canonical_json(self) -> str:
        """A stable serialisation used to compare specs for idempotent submission."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def violations_from(error: ValidationError, prefix: str = "spec") -> list[FieldViolation]:
    """Turn a pydantic error into one field violation per problem, with dotted field paths."""
    out = []
    for item in error.errors():
        parts = [prefix, *(str(p) for p in item["loc"])]
        path = ".".join(parts).replace(".[", "[")
        out.append(FieldViolation(field=path, description=item["msg"]))
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


def load_spec(path: str | Path) -> JobSpec:
    """Read a job spec from a YAML or JSON file (JSON is YAML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{p}{where}: not valid YAML: {problem}") from None
    return parse_spec(data, source=str(p))
