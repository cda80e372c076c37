"""Presentation of per-tenant outcomes: the `tenants` object of the JSON report and the tables."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from broker.simulate.fairness import SLOWDOWN_FLOOR_S, TenantOutcome, TenantsOutcome
from broker.simulate.metrics import PolicyMetrics

FAIRNESS_METRIC = (
    "Jain's index over tenants of 1 / mean bounded slowdown, slowdown = (finish - submit) / "
    f"max(run, {SLOWDOWN_FLOOR_S:g} s)"
)


def _outcome(metrics: PolicyMetrics) -> TenantsOutcome:
    if metrics.tenants is None:
        raise ValueError("the replay was not given a tenants table")
    return metrics.tenants


def tenants_json(
    with_tenancy: Mapping[str, PolicyMetrics],
    without_tenancy: Mapping[str, PolicyMetrics],
    *,
    file: str,
    preemption: bool = False,
) -> dict[str, object]:
    """The `tenants` object of `simulate --json`: each policy's per-tenant outcome and Jain's
    index with tenancy (admission and fair-share order) and without (the plain queue)."""
    return {
        "file": file,
        "fairness_metric": FAIRNESS_METRIC,
        "preemption": preemption,
        "policies": {
            name: {
                "with_tenancy": _outcome(metrics).to_json(),
                "without_tenancy": _outcome(without_tenancy[name]).to_json(),
            }
            for name, metrics in with_tenancy.items()
        },
    }


def _pair(without: float | None, with_: float | None, fmt: str) -> str:
    def one(value: float | None) -> str:
        return "-" if value is None else format(value, fmt)

    return f"{one(without)} → {one(with_)}"


def _row(name: str, without: TenantOutcome | None, with_: TenantOutcome | None) -> list[str]:
    either = with_ or without
    assert either is not None

    def get(outcome: TenantOutcome | None, attribute: str) -> float | None:
        return None if outcome is None else float(getattr(outcome, attribute))

    return [
        name,
        str(either.jobs),
        f"{either.weight_share:.3f}",
        _pair(get(without, "card_hour_share"), get(with_, "card_hour_share"), ".3f"),
        _pair(get(without, "wait_mean_h"), get(with_, "wait_mean_h"), ".2f"),
        _pair(get(without, "wait_p95_h"), get(with_, "wait_p95_h"), ".2f"),
        _pair(get(without, "slowdown_mean"), get(with_, "slowdown_mean"), ".2f"),
    ]


def render_tenants(
    with_tenancy: Mapping[str, PolicyMetrics],
    without_tenancy: Mapping[str, PolicyMetrics],
    console: Console | None = None,
) -> None:
    """Print, per policy, each tenant's outcome without → with tenancy, and Jain's index."""
    out = console or Console()
    for name, metrics in with_tenancy.items():
        with_ = _outcome(metrics)
        without = _outcome(without_tenancy[name])
        table = Table(
            title=f"{name}: tenants, without → with tenancy",
            caption=(
                f"Jain's index {without.jain:.3f} → {with_.jain:.3f} "
                "(over 1 / mean bounded slowdown; 1: every tenant slowed alike)"
            ),
        )
        for column in ("tenant", "jobs", "weight share", "card-h share", "wait mean h"):
            table.add_column(column, justify="left" if column == "tenant" else "right")
        table.add_column("wait p95 h", justify="right")
        table.add_column("slowdown", justify="right")
        for tenant in sorted(with_.tenants.keys() | without.tenants.keys()):
            table.add_row(*_row(tenant, without.tenants.get(tenant), with_.tenants.get(tenant)))
        out.print(table)
