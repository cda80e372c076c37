"""What each tenant is entitled to: weight, nominal quota and borrowing limit per accelerator
model, the priority classes it may use, and the federation-wide fair-share and preemption rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_PRIORITY_CLASSES: Mapping[str, int] = MappingProxyType(
    {"low": -100, "normal": 0, "high": 100}
)
"""Named priorities; a job's `priority` is a number, its class the highest one not above it."""


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """One tenant's entitlement.

    `quota` maps accelerator model to the cards the tenant is guaranteed (its nominal quota;
    a model not named: 0). `borrowing_limit` maps model to the cards it may hold beyond its
    quota while they are idle; a model not named borrows without limit (idle capacity only).
    `max_priority_class` caps the priority of the tenant's jobs (None: no cap).
    """

    weight: float = 1.0
    quota: Mapping[str, int] = field(default_factory=dict)
    borrowing_limit: Mapping[str, int] = field(default_factory=dict)
    max_priority_class: str | None = None

    def nominal(self, model: str) -> int:
        """Cards of `model` the tenant is guaranteed."""
        return self.quota.get(model, 0)

    def ceiling(self, model: str) -> int | None:
        """The most cards of `model` the tenant may hold: quota plus borrowing (None: no limit)."""
        limit = self.borrowing_limit.get(model)
        return None if limit is None else self.nominal(model) + limit


UNLISTED = TenantPolicy()
"""A tenant missing from the tenants table: no quota, borrows idle capacity without limit."""


@dataclass(frozen=True, slots=True)
class FairSharePolicy:
    """How past use counts in the fair-share order (docs/tenants.md: Fair share)."""

    half_life_h: float = 24.0
    """Card-hours used this many hours ago count half."""

    @property
    def window_h(self) -> float:
        """The decayed window: a card held forever accrues this many decayed card-hours."""
        return self.half_life_h / 0.6931471805599453


@dataclass(frozen=True, slots=True)
class PreemptionPolicy:
    """Whether and how fast the broker reclaims borrowed cards for tenants below their quota."""

    enabled: bool = True
    grace_s: float = 30.0
    """After preempting, how long the broker waits for the freed cards before it counts them as
    still taken and may preempt again for the same demand."""
    budget_per_round: int = 8
    """Most jobs preempted in one placement round."""


@dataclass(frozen=True, slots=True)
class TenantsTable:
    """Every configured tenant's policy, the policy of unlisted tenants and the shared rules."""

    tenants: Mapping[str, TenantPolicy] = field(default_factory=dict)
    unlisted: TenantPolicy = UNLISTED
    priority_classes: Mapping[str, int] = field(default_factory=lambda: DEFAULT_PRIORITY_CLASSES)
    fair_share: FairSharePolicy = field(default_factory=FairSharePolicy)
    preemption: PreemptionPolicy = field(default_factory=PreemptionPolicy)

    def policy(self, tenant: str) -> TenantPolicy:
        """The tenant's policy (the unlisted one if the table does not name it)."""
        return self.tenants.get(tenant, self.unlisted)

    def priority(self, tenant: str, asked: int) -> int:
        """A job's effective priority: what it asked, capped by its tenant's highest class."""
        cap_class = self.policy(tenant).max_priority_class
        if cap_class is None or cap_class not in self.priority_classes:
            return asked
        return min(asked, self.priority_classes[cap_class])

    def priority_class(self, priority: int) -> str:
        """The name of the highest class not above `priority` ("" below every class)."""
        best = ""
        best_value: int | None = None
        for name, value in sorted(self.priority_classes.items()):
            if value <= priority and (best_value is None or value > best_value):
                best, best_value = name, value
        return best
