"""Contract tests of attempt runs and usage records, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from broker.store import Fence, FenceLostError, Hold, SqlStore, Transition, open_rebalance_store
from broker.store.accounting import UsageIncrement, UsageLine
from computenet.types import JobId, JobState, SiteId, TenantId
from computenet.usage import UsageTotals
from tests.store.factories import FakeClock, new_job

P, PL, D, R, M = (
    JobState.PENDING,
    JobState.PLACED,
    JobState.DISPATCHED,
    JobState.RUNNING,
    JobState.MIGRATING,
)


def _placed(job_id: str, attempt: int = 1, pools: tuple[tuple[str, int], ...] = (("a800", 8),)):
    holds = tuple(
        Hold(JobId(job_id), attempt, SiteId("gansu-1"), model, cards, 4.0, 64.0)
        for model, cards in pools
    )
    return Transition(
        JobId(job_id), PL, "placement", site=SiteId("gansu-1"), attempt=attempt, holds=holds
    )


def _to(job_id: str, state: JobState, **extra: object) -> Transition:
    return Transition(JobId(job_id), state, "test", **extra)  # type: ignore[arg-type]


def _start(store: SqlStore, job_id: str, tenant: str = "tenant-a", **placed: object) -> int:
    store.submit_jobs([new_job(job_id, tenant=tenant)])
    store.apply([_placed(job_id, **placed)])  # type: ignore[arg-type]
    [event] = store.apply([_to(job_id, R)])
    assert event is not None
    return event.time_unix_ms


def _line(model: str = "a800", day: str = "2023-11-15", hours: float = 1.0) -> UsageLine:
    return UsageLine(model, day, 8, 8 * hours, 4.0 * hours, 2.0 * hours, 56 * hours, 3 * hours)


def _inc(job_id: str, start: int, end: int, *lines: UsageLine, tenant: str = "tenant-a"):
    return UsageIncrement(
        JobId(job_id), 1, TenantId(tenant), SiteId("gansu-1"), start, end, lines or (_line(),)
    )


def test_running_opens_a_run_with_the_attempts_cards(store: SqlStore) -> None:
    started = _start(store, "j1", pools=(("a800", 8), ("h20", 2)))
    [run] = store.open_runs()
    assert (run.job_id, run.attempt, run.tenant, run.site) == ("j1", 1, "tenant-a", "gansu-1")
    assert run.pools == (("a800", 8), ("h20", 2))
    assert run.cpu_cores == 8.0
    assert run.started_unix_ms == run.accounted_until_unix_ms == started
    assert run.running and not run.settled


def test_placed_and_dispatched_jobs_have_no_run(store: SqlStore) -> None:
    store.submit_jobs([new_job("j1")])
    store.apply([_placed("j1"), _to("j1", D)])
    assert store.open_runs() == [] and store.runs_of(JobId("j1")) == []


def test_the_ending_transition_closes_the_run_at_its_time(store: SqlStore) -> None:
    started = _start(store, "j1")
    [ended] = store.apply([_to("j1", JobState.SUCCEEDED, release_hold=True)])
    assert ended is not None
    [run] = store.runs_of(JobId("j1"))
    assert (run.started_unix_ms, run.ended_unix_ms) == (started, ended.time_unix_ms)
    assert not run.running and not run.settled
    assert store.open_runs() == [run]  # still to be priced


def test_migrating_keeps_the_attempt_running_until_it_stops(store: SqlStore) -> None:
    _start(store, "j1")
    store.apply([_to("j1", M), _to("j1", R)])  # a move begun, then abandoned
    [run] = store.runs_of(JobId("j1"))
    assert run.running
    store.apply([_to("j1", M)])
    [requeued] = store.apply([_to("j1", P, release_hold=True)])
    assert requeued is not None
    [run] = store.runs_of(JobId("j1"))
    assert run.ended_unix_ms == requeued.time_unix_ms


def test_each_attempt_has_its_own_run(store: SqlStore) -> None:
    _start(store, "j1")
    store.apply([_to("j1", P, release_hold=True)])
    store.apply([_placed("j1", attempt=2), _to("j1", R)])
    runs = store.runs_of(JobId("j1"))
    assert [(r.attempt, r.running) for r in runs] == [(1, False), (2, True)]


def test_increments_apply_once_and_settle_the_run(store: SqlStore, clock: FakeClock) -> None:
    started = _start(store, "j1")
    clock.now_unix_ms += 100_000
    [ended] = store.apply([_to("j1", JobState.FAILED, release_hold=True)])
    assert ended is not None
    end = ended.time_unix_ms
    middle = started + (end - started) // 2
    first = _inc("j1", started, middle)
    assert store.record_usage([first, first]) == [True, False]
    assert store.record_usage([_inc("j1", started, end)]) == [False]  # stale: from the start
    assert store.open_runs() != []
    assert store.record_usage([_inc("j1", middle, end)]) == [True]
    assert store.open_runs() == []
    [run] = store.runs_of(JobId("j1"))
    assert run.settled and run.accounted_until_unix_ms == end
    [record] = store.usage_records()
    assert record.totals == UsageTotals(16.0, 8.0, 4.0, 112.0, 6.0)


def test_an_empty_increment_is_refused(store: SqlStore) -> None:
    started = _start(store, "j1")
    with pytest.raises(ValueError, match="empty"):
        store.record_usage([_inc("j1", started, started)])


def test_increments_of_a_running_attempt_leave_it_open(store: SqlStore, clock: FakeClock) -> None:
    started = _start(store, "j1")
    assert store.record_usage([_inc("j1", started, started + 60_000)]) == [True]
    [run] = store.open_runs()
    assert run.accounted_until_unix_ms == started + 60_000 and not run.settled


def test_an_attempt_ending_before_its_accounted_time_is_settled_at_once(
    store: SqlStore, clock: FakeClock
) -> None:
    started = _start(store, "j1")
    store.record_usage([_inc("j1", started, clock.now_unix_ms + 10_000)])
    store.apply([_to("j1", JobState.CANCELLED, release_hold=True)])
    assert store.open_runs() == []


def test_usage_records_group_filter_by_tenant_and_days(store: SqlStore) -> None:
    a = _start(store, "a1", tenant="lab-a")
    b = _start(store, "b1", tenant="lab-b")
    store.record_usage(
        [
            _inc(
                "a1", a, a + 1, _line(day="2026-12-01"), _line("h20", "2026-12-02"), tenant="lab-a"
            ),
            _inc("b1", b, b + 1, _line(day="2026-12-02", hours=2.0), tenant="lab-b"),
        ]
    )
    everything = store.usage_records()
    assert [(r.tenant, r.model, r.day) for r in everything] == [
        ("lab-a", "a800", "2026-12-01"),
        ("lab-a", "h20", "2026-12-02"),
        ("lab-b", "a800", "2026-12-02"),
    ]
    assert [r.tenant for r in store.usage_records(tenant=TenantId("lab-b"))] == ["lab-b"]
    days = store.usage_records(since_day="2026-12-02", until_day="2026-12-02")
    assert [(r.tenant, r.totals.card_hours) for r in days] == [("lab-a", 8.0), ("lab-b", 16.0)]
    assert store.usage_records(until_day="2026-11-30") == []


def test_increments_of_one_day_add_up_in_one_record(store: SqlStore) -> None:
    started = _start(store, "j1")
    store.record_usage([_inc("j1", started, started + 5)])
    store.record_usage([_inc("j1", started + 5, started + 9)])
    [record] = store.usage_records()
    assert record.totals.card_hours == pytest.approx(16.0)


def test_a_fenced_increment_needs_the_live_token(
    store: SqlStore, store_url: str, clock: FakeClock
) -> None:
    started = _start(store, "j1")
    leases = open_rebalance_store(store_url, lease_name="leader", clock=clock)
    token = leases.lease.try_acquire("me", 60.0)
    leases.close()
    assert token is not None
    with pytest.raises(FenceLostError):
        store.record_usage([_inc("j1", started, started + 5)], fence=Fence("leader", token + 1))
    assert store.usage_records() == []
    assert store.record_usage([_inc("j1", started, started + 5)], fence=Fence("leader", token))


def test_open_runs_can_be_limited_to_ended_ones(store: SqlStore) -> None:
    _start(store, "j1")
    _start(store, "j2")
    store.apply([_to("j2", JobState.SUCCEEDED, release_hold=True)])
    assert [r.job_id for r in store.open_runs()] == ["j1", "j2"]
    assert [r.job_id for r in store.open_runs(ended_only=True)] == ["j2"]
