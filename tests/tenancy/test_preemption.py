"""The choice of preemptions: borrowed jobs only, lowest priority first, within a budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.tenancy import (
    FreeCapacity,
    JobDemand,
    PreemptionPolicy,
    RunningJob,
    TenantPolicy,
    TenantsTable,
    choose_preemptions,
    within_nominal,
)

TABLE = TenantsTable(
    tenants={
        "lab-a": TenantPolicy(quota={"a800": 4}, borrowing_limit={"a800": 4}),
        "lab-b": TenantPolicy(quota={"a800": 4}, borrowing_limit={"a800": 0}),
    }
)


def running(job_id: str, tenant: str, cards: int = 1, **kw: object) -> RunningJob:
    return RunningJob(job_id=job_id, tenant=tenant, model="a800", cards=cards, **kw)  # type: ignore[arg-type]


def waiting(job_id: str, tenant: str, cards: int) -> JobDemand:
    return JobDemand(job_id=job_id, tenant=tenant, model="a800", cards=cards)


FULL_A = [running(f"a{i}", "lab-a", started_unix_ms=i) for i in range(8)]


def test_the_youngest_borrowed_jobs_go_and_the_nominal_ones_stay() -> None:
    victims = choose_preemptions([waiting("b1", "lab-b", 4)], FULL_A, TABLE, FreeCapacity())
    assert sorted(v.job_id for v in victims) == ["a4", "a5", "a6", "a7"]
    assert victims[0].reason == (
        "preempted: lab-b below nominal quota a800 4 waits; lab-a borrowing 4"
    )
    assert within_nominal(FULL_A, TABLE) == {"a0", "a1", "a2", "a3"}


def test_lowest_priority_goes_first() -> None:
    jobs = [*FULL_A[:7], running("a-low", "lab-a", priority=-5, started_unix_ms=0)]
    victims = choose_preemptions([waiting("b1", "lab-b", 1)], jobs, TABLE, FreeCapacity())
    assert [v.job_id for v in victims] == ["a-low"]


def test_idle_and_reclaiming_cards_count_against_the_shortfall() -> None:
    wants = [waiting("b1", "lab-b", 4)]
    assert choose_preemptions(wants, FULL_A, TABLE, FreeCapacity({"a800": 4})) == []
    assert choose_preemptions(wants, FULL_A, TABLE, FreeCapacity(), reclaiming={"a800": 4}) == []
    assert len(choose_preemptions(wants, FULL_A, TABLE, FreeCapacity({"a800": 1}))) == 3


def test_jobs_already_stopping_are_not_chosen_again_but_count_as_held() -> None:
    wants = [waiting("b1", "lab-b", 2)]
    stopping = {"a7", "a6"}
    victims = choose_preemptions(wants, FULL_A, TABLE, FreeCapacity(), stopping=stopping)
    assert [v.job_id for v in victims] == ["a5", "a4"]
    assert victims[0].reason.endswith("lab-a borrowing 4")


def test_a_budget_and_the_switch() -> None:
    wants = [waiting("b1", "lab-b", 4)]
    assert len(choose_preemptions(wants, FULL_A, TABLE, FreeCapacity(), budget=2)) == 2
    off = TenantsTable(tenants=TABLE.tenants, preemption=PreemptionPolicy(enabled=False))
    assert choose_preemptions(wants, FULL_A, off, FreeCapacity()) == []


def test_no_preemption_for_a_tenant_at_or_beyond_its_quota() -> None:
    jobs = [*FULL_A[:4], *(running(f"b{i}", "lab-b") for i in range(4))]
    assert choose_preemptions([waiting("b9", "lab-b", 1)], jobs, TABLE, FreeCapacity()) == []


TENANTS = ["t0", "t1", "t2"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[TenantsTable, list[RunningJob], list[JobDemand]]:
    table = TenantsTable(
        tenants={t: TenantPolicy(quota={"a800": draw(st.integers(0, 6))}) for t in TENANTS}
    )
    jobs = [
        RunningJob(
            job_id=f"r{i}",
            tenant=draw(st.sampled_from(TENANTS)),
            model="a800",
            cards=draw(st.integers(1, 4)),
            priority=draw(st.integers(-2, 2)),
            started_unix_ms=draw(st.integers(0, 50)),
            checkpointable=draw(st.booleans()),
        )
        for i in range(draw(st.integers(0, 20)))
    ]
    wants = [
        JobDemand(
            job_id=f"w{i}",
            tenant=draw(st.sampled_from(TENANTS)),
            model="a800",
            cards=draw(st.integers(1, 4)),
        )
        for i in range(draw(st.integers(0, 8)))
    ]
    return table, jobs, wants


@settings(max_examples=300, deadline=None)
@given(worlds(), st.integers(0, 6), st.integers(0, 10))
def test_preemption_never_picks_a_job_within_nominal_and_keeps_its_budget(
    world: tuple[TenantsTable, list[RunningJob], list[JobDemand]], idle: int, budget: int
) -> None:
    table, jobs, wants = world
    victims = choose_preemptions(wants, jobs, table, FreeCapacity({"a800": idle}), budget=budget)
    inside = within_nominal(jobs, table)
    assert len(victims) <= budget
    assert len({v.job_id for v in victims}) == len(victims)
    for victim in victims:
        assert victim.job_id not in inside
        assert victim.reason.startswith("preempted: ")
    by_tenant: dict[str, int] = {}
    for job in jobs:
        if job.job_id in inside:
            by_tenant[job.tenant] = by_tenant.get(job.tenant, 0) + job.cards
    for tenant, cards in by_tenant.items():
        assert cards <= table.policy(tenant).nominal("a800")
