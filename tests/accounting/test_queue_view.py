"""The pieces the queue and tenants views are built from: demands, held cards, decayed hours."""

from __future__ import annotations

import pytest

from broker.accounting.pricing import MS_PER_HOUR, cst_day_start_ms
from broker.jobs_api.accounting import Caller, checked_days, scoped_tenant
from broker.jobs_api.queue_view import decayed_card_hours, demand_of, usage_snapshot
from broker.tenancy import TenantPolicy, TenantsTable
from computenet.errors import InvalidArgumentError, PermissionDeniedError
from computenet.types import Job, JobId, JobState, TenantId
from computenet.usage import UsageRecord, UsageTotals
from tests.store.factories import spec


def _job(job_id: str, tenant: str, priority: int = 0) -> Job:
    return Job(
        JobId(job_id),
        TenantId(tenant),
        spec(job_id, priority=priority),
        JobState.PENDING,
        created_unix_ms=7,
    )


def test_a_pending_job_demands_its_cards_at_its_capped_priority() -> None:
    table = TenantsTable(
        tenants={"t": TenantPolicy(max_priority_class="normal")},
    )
    demand = demand_of(_job("j", "t", priority=500), table)
    assert (demand.model, demand.cards, demand.priority) == ("a100", 8, 0)
    assert demand_of(_job("k", "other", priority=500), table).priority == 500


def test_held_cards_follow_the_holds_of_active_jobs() -> None:
    active = [_job("a", "t1"), _job("b", "t2")]
    holds = [("a", "a800", 4), ("a", "a800", 2), ("b", "h20", 8), ("gone", "a800", 8), ("b", "", 0)]
    snap = usage_snapshot(active, holds, {"t3": {"a800": 1.5}}, {"a800": 16})
    assert snap.of("t1").held == {"a800": 6}
    assert snap.of("t2").held == {"h20": 8}
    assert snap.of("t3").card_hours == {"a800": 1.5} and snap.of("t3").held == {}
    assert snap.capacity == {"a800": 16}


def test_card_hours_fade_with_the_half_life() -> None:
    day = "2026-12-05"
    middle = cst_day_start_ms(day) + 12 * MS_PER_HOUR
    record = UsageRecord("t", "s", "a800", day, UsageTotals(card_hours=10.0))
    assert decayed_card_hours([record], middle, 24.0) == {"t": {"a800": 10.0}}
    later = decayed_card_hours([record, record], middle + 24 * MS_PER_HOUR, 24.0)
    assert later["t"]["a800"] == pytest.approx(10.0)


def test_users_see_their_own_tenant_and_operators_any() -> None:
    user = Caller("lab-a", operator=False)
    assert scoped_tenant(user, "") == "lab-a" == scoped_tenant(user, "lab-a")
    with pytest.raises(PermissionDeniedError, match="may not see tenant 'lab-b'"):
        scoped_tenant(user, "lab-b")
    ops = Caller("ops", operator=True)
    assert scoped_tenant(ops, "") is None and scoped_tenant(ops, "lab-b") == "lab-b"


@pytest.mark.parametrize(
    ("since", "until", "fields"),
    [("2026-13-01", "", ["since_day"]), ("", "yesterday", ["until_day"]),
     ("2026-12-05", "2026-12-01", ["until_day"])],
)  # fmt: skip
def test_bad_day_ranges_name_their_fields(since: str, until: str, fields: list[str]) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        checked_days(since, until)
    assert [v.field for v in info.value.violations] == fields
    assert checked_days("2026-12-01", "2026-12-01") == ("2026-12-01", "2026-12-01")
