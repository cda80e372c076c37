"""A point-in-time picture of what each tenant holds and has used, by accelerator model.

Cards held come from the capacity ledger (every hold of a placed, dispatched, running or
migrating attempt). Card-hours are decayed: each hour of history counts
`0.5 ** (age_h / half_life_h)`, so a tenant's past use fades and a tenant that used nothing
for a few half-lives stands level with a new one. The broker accrues them in memory from the
ledger since its leader term began (docs/tenants.md: Fair share).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """One tenant's cards held now and decayed card-hours used, by model."""

    held: Mapping[str, int] = field(default_factory=dict)
    card_hours: Mapping[str, float] = field(default_factory=dict)

    def held_cards(self, model: str) -> int:
        """Cards of `model` the tenant holds now."""
        return self.held.get(model, 0)


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    """Every tenant's usage and the federation's cards per model (what shares are taken of)."""

    tenants: Mapping[str, TenantUsage] = field(default_factory=dict)
    capacity: Mapping[str, int] = field(default_factory=dict)
    """Cards of each model at the sites that report, in service or not (the denominator of
    every share)."""

    def of(self, tenant: str) -> TenantUsage:
        """The tenant's usage (empty if it holds and used nothing)."""
        return self.tenants.get(tenant, TenantUsage())


def held_by_tenant(lines: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """Cards held per tenant per model from (tenant, model, cards) lines (host-only ones
    dropped)."""
    out: dict[str, dict[str, int]] = {}
    for tenant, model, cards in lines:
        if model and cards > 0:
            by_model = out.setdefault(tenant, {})
            by_model[model] = by_model.get(model, 0) + cards
    return out


def accrue_card_hours(
    card_hours: Mapping[str, Mapping[str, float]],
    held: Mapping[str, Mapping[str, int]],
    elapsed_h: float,
    half_life_h: float,
) -> dict[str, dict[str, float]]:
    """Decayed card-hours after `elapsed_h` more hours during which `held` was held.

    The old total decays by `0.5 ** (elapsed_h / half_life_h)`; the cards held during the
    interval add their integral of the decay over it, so short and long steps agree.
    """
    if elapsed_h <= 0:
        return {t: dict(m) for t, m in card_hours.items()}
    decay = 0.5 ** (elapsed_h / half_life_h)
    window_h = half_life_h / 0.6931471805599453
    added_per_card = window_h * (1.0 - decay)
    out: dict[str, dict[str, float]] = {}
    for tenant in card_hours.keys() | held.keys():
        past = card_hours.get(tenant, {})
        now = held.get(tenant, {})
        models = past.keys() | now.keys()
        values = {m: past.get(m, 0.0) * decay + now.get(m, 0) * added_per_card for m in models}
        kept = {m: v for m, v in values.items() if v > 1e-9}
        if kept:
            out[tenant] = kept
    return out


class DecayedUsage:
    """Tenants' decayed card-hours accrued round by round from the cards they hold.

    At each `snapshot` the cards held then stand for the whole step since the last one (steps
    are short: a placement round in the broker, a decision instant in the simulator). Both
    keep one of these, so the fair share they order by is accrued the same way.
    """

    def __init__(self) -> None:
        self._card_hours: dict[str, dict[str, float]] = {}
        self._at_h: float | None = None

    def snapshot(
        self,
        held: Mapping[str, Mapping[str, int]],
        capacity: Mapping[str, int],
        now_h: float,
        half_life_h: float,
    ) -> UsageSnapshot:
        """Usage at `now_h` (hours on any clock that only moves forward): `held` cards by
        tenant and model, card-hours accrued up to now, shares taken of `capacity`."""
        if self._at_h is not None:
            self._card_hours = accrue_card_hours(
                self._card_hours, held, now_h - self._at_h, half_life_h
            )
        self._at_h = now_h
        tenants = {
            t: TenantUsage(held=held.get(t, {}), card_hours=self._card_hours.get(t, {}))
            for t in held.keys() | self._card_hours.keys()
        }
        return UsageSnapshot(tenants=tenants, capacity=dict(capacity))
