"""The `tenants` and `tenancy` sections of the broker config file: each tenant's weight, quota
and borrowing limit per accelerator model, priority classes, fair share and preemption."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from broker.config.fields import STRICT, Kind
from broker.tenancy import FairSharePolicy, PreemptionPolicy, TenantPolicy, TenantsTable
from broker.tenancy.policy import DEFAULT_PRIORITY_CLASSES

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"),
    Kind("name"),
]
"""A tenant, accelerator model or priority class name."""
Cards = Annotated[int, Field(ge=0, le=10_000_000)]


class TenantConfig(BaseModel):
    """One tenant's entitlement, e.g.
    `lab-a: {weight: 1, quota: {a800: 4}, borrowing_limit: {a800: 4}}`."""

    model_config = STRICT

    weight: float = Field(
        1.0,
        gt=0,
        le=1_000_000,
        description="Fair-share weight: a tenant of weight 2 is entitled to twice the share of 1.",
    )
    quota: dict[Name, Cards] = Field(
        default_factory=dict,
        description=(
            "Nominal quota: cards per accelerator model the tenant is guaranteed (reclaimed by "
            "preemption when others borrow them); a model not named: 0."
        ),
    )
    borrowing_limit: dict[Name, Cards] = Field(
        default_factory=dict,
        description=(
            "Cards per model the tenant may hold beyond its quota while they are idle; a model "
            "not named borrows without limit."
        ),
    )
    max_priority_class: Name | None = Field(
        None,
        description=(
            "The highest priority class the tenant's jobs run at (a job asking more is capped); "
            "null: no cap."
        ),
    )

    def policy(self) -> TenantPolicy:
        """This entry as the tenancy core takes it."""
        return TenantPolicy(
            weight=self.weight,
            quota=dict(self.quota),
            borrowing_limit=dict(self.borrowing_limit),
            max_priority_class=self.max_priority_class,
        )


class PreemptionConfig(BaseModel):
    """Reclaiming borrowed cards for tenants below their nominal quota."""

    model_config = STRICT

    enabled: bool = Field(
        True, description="Preempt borrowed jobs for tenants that wait below their quota."
    )
    grace_s: float = Field(
        30.0,
        gt=0,
        le=86_400,
        description=(
            "Seconds the broker waits for a preempted job's cards (its checkpoint and stop) "
            "before it may preempt again for the same demand."
        ),
    )
    budget_per_round: int = Field(
        8, ge=0, le=100_000, description="Most jobs preempted in one placement round."
    )


class TenancyConfig(BaseModel):
    """Rules shared by all tenants: unlisted tenants, priority classes, fair share, preemption."""

    model_config = STRICT

    unlisted_borrowing_limit: dict[Name, Cards] = Field(
        default_factory=dict,
        description=(
            "Cards per model a tenant missing from `tenants` may borrow (it has no quota); a "
            "model not named: all idle cards."
        ),
    )
    priority_classes: dict[Name, Annotated[int, Field(ge=-1000, le=1000)]] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITY_CLASSES),
        description=(
            "Named job priorities (a job's `priority` is a number; its class is the highest "
            "one not above it); tenants' `max_priority_class` names one of them."
        ),
    )
    fair_share_half_life_h: float = Field(
        24.0,
        gt=0,
        le=100_000,
        description="Hours after which a tenant's past card-hours count half in the fair share.",
    )
    preemption: PreemptionConfig = Field(
        default_factory=PreemptionConfig,
        description="Reclaiming borrowed cards: on or off, grace, budget per round.",
    )


def tenants_table(tenants: Mapping[str, TenantConfig], tenancy: TenancyConfig) -> TenantsTable:
    """The tenants sections as the tenancy core takes them."""
    return TenantsTable(
        tenants={name: entry.policy() for name, entry in tenants.items()},
        unlisted=TenantPolicy(borrowing_limit=dict(tenancy.unlisted_borrowing_limit)),
        priority_classes=dict(tenancy.priority_classes),
        fair_share=FairSharePolicy(half_life_h=tenancy.fair_share_half_life_h),
        preemption=PreemptionPolicy(
            enabled=tenancy.preemption.enabled,
            grace_s=tenancy.preemption.grace_s,
            budget_per_round=tenancy.preemption.budget_per_round,
        ),
    )
