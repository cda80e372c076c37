"""Usage accounting vocabulary: priced card-hours, energy, carbon and cost, grouped for reports."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

USAGE_FIELDS = ("card_hours", "kwh", "carbon_kg", "card_cny", "energy_cny", "cost_cny")
"""Columns of every usage group, in CSV and JSON."""


class UsageGrouping(StrEnum):
    """What a usage report groups by."""

    TENANT = "tenant"
    SITE = "site"
    MODEL = "model"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Usage summed over some attempts: card-hours, energy, carbon and cost.

    `card_cny` is the card rent (card-hours x the site's tariff per card-hour of the model),
    `energy_cny` the facility energy priced by the site's hourly schedule.
    """

    card_hours: float = 0.0
    kwh: float = 0.0
    carbon_kg: float = 0.0
    card_cny: float = 0.0
    energy_cny: float = 0.0

    @property
    def cost_cny(self) -> float:
        """What the usage costs: card rent plus energy."""
        return self.card_cny + self.energy_cny

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            self.card_hours + other.card_hours,
            self.kwh + other.kwh,
            self.carbon_kg + other.carbon_kg,
            self.card_cny + other.card_cny,
            self.energy_cny + other.energy_cny,
        )


def sum_totals(parts: Iterable[UsageTotals]) -> UsageTotals:
    """Exact-as-possible sum (fsum per field) of many totals."""
    items = list(parts)
    return UsageTotals(
        math.fsum(t.card_hours for t in items),
        math.fsum(t.kwh for t in items),
        math.fsum(t.carbon_kg for t in items),
        math.fsum(t.card_cny for t in items),
        math.fsum(t.energy_cny for t in items),
    )


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Usage of one tenant at one site on cards of one model on one day (CST, YYYY-MM-DD)."""

    tenant: str
    site: str
    model: str
    day: str
    totals: UsageTotals


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """One group of a usage report: the value of the grouping (a tenant, site, model or day)."""

    key: str
    totals: UsageTotals


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Usage grouped one way, with the total over all groups.

    `since_day` and `until_day` (CST dates, both included; "" for open ends) and `tenant` ("":
    every tenant the caller may see) say what was asked for.
    """

    by: UsageGrouping
    groups: tuple[UsageGroup, ...]
    total: UsageTotals
    tenant: str = ""
    since_day: str = ""
    until_day: str = ""


def group_usage(
    records: Iterable[UsageRecord],
    by: UsageGrouping,
    *,
    tenant: str = "",
    since_day: str = "",
    until_day: str = "",
) -> UsageReport:
    """Group records by `by`, groups in key order."""
    buckets: dict[str, list[UsageTotals]] = {}
    for record in records:
        buckets.setdefault(str(getattr(record, by.value)), []).append(record.totals)
    groups = tuple(UsageGroup(key, sum_totals(buckets[key])) for key in sorted(buckets))
    return UsageReport(
        by=by,
        groups=groups,
        total=sum_totals(g.totals for g in groups),
        tenant=tenant,
        since_day=since_day,
        until_day=until_day,
    )


def totals_dict(totals: UsageTotals) -> dict[str, float]:
    """A group's figures by column name."""
    return {name: float(getattr(totals, name)) for name in USAGE_FIELDS}


def usage_csv(report: UsageReport) -> str:
    """A header row, then one row per group: the group's key and its figures (plain numbers).

    One formatter for every place that offers usage as CSV (the CLI's `--csv`, the console's
    download), so a spreadsheet gets the same columns from both.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([report.by.value, *USAGE_FIELDS])
    for group in report.groups:
        writer.writerow([group.key, *(repr(v) for v in totals_dict(group.totals).values())])
    return out.getvalue()


class WaitReason(StrEnum):
    """Why a pending job waits ("other": a retry backoff, the next placement round; see the
    text)."""

    OTHER = "other"
    OVER_QUOTA = "over_quota"
    """Its tenant's cards with the job's would exceed nominal quota plus borrowing limit."""
    BEHIND_FAIR_SHARE = "behind_fair_share"
    """Idle cards were there, but jobs of tenants ahead in the fair-share order took them."""
    NO_CAPACITY = "no_capacity"
    """No idle cards (or no site) that fit the job now."""
    SITE_DRAINING = "site_draining"
    """The cards it needs are at draining sites, which take no new work."""


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """One pending job at its place in the admission order, with why it waits."""

    position: int
    """1 for the job admitted first."""
    job_id: str
    tenant: str
    model: str
    """Accelerator model asked for ("" for any)."""
    cards: int
    priority: int
    created_unix_ms: int
    reason: WaitReason
    reason_text: str


@dataclass(frozen=True, slots=True)
class TenantModelStatus:
    """A tenant's entitlement and use of one accelerator model."""

    model: str
    quota: int
    borrowing_limit: int | None
    """Cards it may borrow beyond its quota (None: no limit)."""
    held: int
    borrowed: int
    """Cards held beyond the nominal quota."""
    card_hours: float
    """Decayed card-hours (what fair share weighs)."""


@dataclass(frozen=True, slots=True)
class TenantStatus:
    """One tenant: weight, whether the broker's tenants table names it, use by model and
    its weighted dominant share (the lowest goes first)."""

    tenant: str
    weight: float
    configured: bool
    models: tuple[TenantModelStatus, ...]
    fair_share: float
