"""Small builders shared by the site agent tests."""

from __future__ import annotations

from computenet.spec import JobSpec


def make_spec(*command: str, on_site_loss: str = "requeue", **resources: object) -> JobSpec:
    """A batch job spec running `command` (default `true`)."""
    return JobSpec.model_validate(
        {
            "name": "t",
            "kind": "batch",
            "duration_hours": 0.1,
            "command": list(command or ("true",)),
            "on_site_loss": on_site_loss,
            "resources": {"cpu_cores": 1, "memory_gb": 0.1, **resources},
        }
    )
