"""Builders of specs, submissions and transitions for the store tests."""

from __future__ import annotations

from dataclasses import dataclass

from broker.store import NewJob
from computenet.spec import JobSpec
from computenet.types import JobId, TenantId

START_UNIX_MS = 1_700_000_000_000


@dataclass
class FakeClock:
    """A settable millisecond clock; each reading advances it by one millisecond."""

    now_unix_ms: int = START_UNIX_MS

    def __call__(self) -> int:
        self.now_unix_ms += 1
        return self.now_unix_ms


class SetClock:
    """A millisecond clock that moves only when a test moves it."""

    def __init__(self, now_unix_ms: int = START_UNIX_MS) -> None:
        self.now_unix_ms = now_unix_ms

    def __call__(self) -> int:
        return self.now_unix_ms


def spec(name: str = "job", kind: str = "training", **extra: object) -> JobSpec:
    """A valid spec of `kind`; inference specs get a user region and an SLO."""
    data: dict[str, object] = {
        "name": name,
        "kind": kind,
        "duration_hours": 2.0,
        "command": ["python", "train.py"],
        "resources": {"accelerator": "a100", "count": 8},
    }
    if kind == "inference":
        data["inference"] = {"user_regions": [{"region": "shanghai"}], "latency_slo_ms": 30}
    data.update(extra)
    return JobSpec.model_validate(data)


def new_job(
    job_id: str,
    *,
    tenant: str = "tenant-a",
    request_id: str | None = None,
    job_spec: JobSpec | None = None,
    time_unix_ms: int = START_UNIX_MS,
) -> NewJob:
    """A submission whose request id defaults to `req-<job_id>`."""
    return NewJob(
        job_id=JobId(job_id),
        tenant=TenantId(tenant),
        request_id=request_id if request_id is not None else f"req-{job_id}",
        spec=job_spec if job_spec is not None else spec(job_id),
        time_unix_ms=time_unix_ms,
    )
