"""Admission against quotas and borrowing limits: table cases and properties of whole rounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.tenancy import (
    AdmissionKind,
    Admitted,
    FreeCapacity,
    JobDemand,
    TenantPolicy,
    TenantsTable,
    TenantUsage,
    UsageSnapshot,
    Waiting,
    WaitReason,
    admit,
    admit_round,
    pending_order,
)

LAB_A = TenantPolicy(quota={"a800": 4}, borrowing_limit={"a800": 4})
LAB_B = TenantPolicy(quota={"a800": 4}, borrowing_limit={"a800": 0})
TABLE = TenantsTable(tenants={"lab-a": LAB_A, "lab-b": LAB_B})


def job(tenant: str, cards: int, model: str = "a800", job_id: str = "j") -> JobDemand:
    return JobDemand(job_id=job_id, tenant=tenant, model=model, cards=cards)


def test_within_quota_is_nominal() -> None:
    decision = admit(job("lab-a", 4), LAB_A, {}, FreeCapacity({"a800": 8}))
    assert decision == Admitted(AdmissionKind.NOMINAL, "a800")


def test_beyond_quota_borrows_idle_cards_within_the_limit() -> None:
    decision = admit(job("lab-a", 2), LAB_A, {"a800": 4}, FreeCapacity({"a800": 8}))
    assert decision == Admitted(AdmissionKind.BORROWING, "a800")


def test_beyond_quota_and_limit_is_over_quota() -> None:
    decision = admit(job("lab-a", 1), LAB_A, {"a800": 8}, FreeCapacity({"a800": 8}))
    assert isinstance(decision, Waiting) and decision.reason == WaitReason.OVER_QUOTA
    assert "nominal quota 4 + borrowing limit 4" in decision.text


def test_a_tenant_without_borrowing_waits_over_its_quota() -> None:
    decision = admit(job("lab-b", 1), LAB_B, {"a800": 4}, FreeCapacity({"a800": 8}))
    assert isinstance(decision, Waiting) and decision.reason == WaitReason.OVER_QUOTA


def test_an_unlisted_tenant_only_borrows_idle_cards() -> None:
    unlisted = TABLE.policy("lab-z")
    borrowed = admit(job("lab-z", 8), unlisted, {}, FreeCapacity({"a800": 8}))
    assert borrowed == Admitted(AdmissionKind.BORROWING, "a800")
    waiting = admit(job("lab-z", 9), unlisted, {}, FreeCapacity({"a800": 8}))
    assert isinstance(waiting, Waiting) and waiting.reason == WaitReason.NO_CAPACITY


def test_cards_only_at_draining_sites() -> None:
    free = FreeCapacity({"a800": 1}, draining={"a800": 8})
    decision = admit(job("lab-a", 2), LAB_A, {}, free)
    assert isinstance(decision, Waiting) and decision.reason == WaitReason.SITE_DRAINING


def test_a_job_of_any_model_takes_the_model_of_its_quota_first() -> None:
    policy = TenantPolicy(quota={"h100": 2}, borrowing_limit={"a800": 2, "h100": 0})
    free = FreeCapacity({"a800": 8, "h100": 2})
    assert admit(job("t", 2, model=""), policy, {}, free) == Admitted(AdmissionKind.NOMINAL, "h100")
    assert admit(job("t", 2, model=""), policy, {"h100": 2}, free) == Admitted(
        AdmissionKind.BORROWING, "a800"
    )


def test_a_job_of_any_model_is_left_to_placement_when_no_limit_applies() -> None:
    decision = admit(
        job("t", 2, model=""), TenantPolicy(), {}, FreeCapacity({"a800": 8, "h100": 2})
    )
    assert isinstance(decision, Admitted) and not decision.pinned


def test_a_job_of_any_model_is_pinned_when_a_model_with_room_is_closed_to_its_tenant() -> None:
    # a100 has room but the tenant holds its quota and may not borrow it; h20 is unlimited:
    # left to placement, the job could land on a100 and pass the tenant's ceiling
    policy = TenantPolicy(quota={"a100": 4}, borrowing_limit={"a100": 0})
    several = JobDemand(job_id="j", tenant="t", model="", cards=2, accepted=("a100", "h20"))
    decision = admit(several, policy, {"a100": 4}, FreeCapacity({"a100": 16, "h20": 2}))
    assert decision == Admitted(AdmissionKind.BORROWING, "h20", pinned=True)


def test_a_job_of_several_models_is_admitted_only_on_one_it_accepts() -> None:
    policy = TenantPolicy(quota={"h100": 2}, borrowing_limit={"a800": 2, "910b": 4})
    free = FreeCapacity({"a800": 8, "h100": 2, "910b": 8})
    several = JobDemand(job_id="j", tenant="t", model="", cards=4, accepted=("910b", "a800"))
    # h100 is within quota but not accepted; a800's limit is 2 cards: 910b is the one left
    assert admit(several, policy, {}, free) == Admitted(AdmissionKind.BORROWING, "910b")
    full = admit(several, policy, {"910b": 4, "a800": 2}, free)
    assert isinstance(full, Waiting) and full.reason == WaitReason.OVER_QUOTA


def test_host_only_jobs_are_always_admitted() -> None:
    assert isinstance(
        admit(job("lab-b", 0, model=""), LAB_B, {"a800": 9}, FreeCapacity()), Admitted
    )


def test_a_round_counts_admitted_jobs_and_names_who_took_the_cards() -> None:
    jobs = [
        job("lab-a", 4, job_id="a1"),
        job("lab-b", 4, job_id="b1"),
        job("lab-a", 4, job_id="a2"),
    ]
    usage = UsageSnapshot(capacity={"a800": 8})
    decided = dict(
        (d.job_id, v) for d, v in admit_round(jobs, TABLE, usage, FreeCapacity({"a800": 8}))
    )
    assert decided["a1"] == Admitted(AdmissionKind.NOMINAL, "a800")
    assert decided["b1"] == Admitted(AdmissionKind.NOMINAL, "a800")
    behind_b = decided["a2"]
    assert isinstance(behind_b, Waiting) and behind_b.reason == WaitReason.BEHIND_FAIR_SHARE
    assert "lab-b" in behind_b.text
    too_big = admit_round([job("lab-a", 9, job_id="a9")], TABLE, usage, FreeCapacity({"a800": 8}))
    assert isinstance(too_big[0][1], Waiting) and too_big[0][1].reason == WaitReason.OVER_QUOTA
    none_idle = admit_round([job("lab-a", 2, job_id="a8")], TABLE, usage, FreeCapacity({"a800": 1}))
    assert isinstance(none_idle[0][1], Waiting)
    assert none_idle[0][1].reason == WaitReason.NO_CAPACITY
    behind = admit_round(
        [job("lab-a", 6, job_id="a3"), job("lab-b", 4, job_id="b2")],
        TABLE,
        usage,
        FreeCapacity({"a800": 8}),
    )[1][1]
    assert isinstance(behind, Waiting) and behind.reason == WaitReason.BEHIND_FAIR_SHARE
    assert "lab-a" in behind.text


TENANTS = ["t0", "t1", "t2"]
MODELS = ["a800", "h100"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[TenantsTable, UsageSnapshot, FreeCapacity, list[JobDemand]]:
    policies = {
        t: TenantPolicy(
            weight=draw(st.sampled_from([0.5, 1.0, 2.0])),
            quota={m: draw(st.integers(0, 6)) for m in MODELS},
            borrowing_limit={
                m: b for m in MODELS if (b := draw(st.none() | st.integers(0, 6))) is not None
            },
        )
        for t in TENANTS[: draw(st.integers(1, 3))]
    }
    table = TenantsTable(tenants=policies)
    capacity = {m: draw(st.integers(0, 16)) for m in MODELS}
    free = {m: draw(st.integers(0, capacity[m])) for m in MODELS}
    held: dict[str, dict[str, int]] = {}
    for m in MODELS:
        left = capacity[m] - free[m]
        for t in TENANTS:
            take = draw(st.integers(0, left))
            held.setdefault(t, {})[m] = take
            left -= take
    usage = UsageSnapshot(
        tenants={t: TenantUsage(held=h) for t, h in held.items()}, capacity=capacity
    )
    jobs = [
        JobDemand(
            job_id=f"j{i}",
            tenant=draw(st.sampled_from(TENANTS)),
            model=draw(st.sampled_from([*MODELS, ""])),
            cards=draw(st.integers(0, 5)),
            priority=draw(st.integers(-2, 2)),
            created_unix_ms=draw(st.integers(0, 100)),
        )
        for i in range(draw(st.integers(0, 25)))
    ]
    return table, usage, FreeCapacity(free), jobs


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_no_admitted_set_takes_a_tenant_over_quota_plus_borrowing_nor_beyond_idle_cards(
    scenario: tuple[TenantsTable, UsageSnapshot, FreeCapacity, list[JobDemand]],
) -> None:
    table, usage, free, jobs = scenario
    decided = admit_round(pending_order(jobs, table, usage), table, usage, free)
    added: dict[tuple[str, str], int] = {}
    for demand, decision in decided:
        if isinstance(decision, Admitted) and demand.cards:
            assert not demand.model or decision.model == demand.model
            key = (demand.tenant, decision.model)
            added[key] = added.get(key, 0) + demand.cards
        elif isinstance(decision, Waiting):
            assert decision.text
    for (tenant, model), cards in added.items():
        before = usage.of(tenant).held_cards(model)
        ceiling = table.policy(tenant).ceiling(model)
        # Jobs only add to what was held; a tenant over its ceiling before gets nothing more.
        assert ceiling is None or before + cards <= max(ceiling, before)
        if ceiling is not None:
            assert before + cards <= ceiling
    for model in MODELS:
        taken = sum(c for (_, m), c in added.items() if m == model)
        assert taken <= free.free.get(model, 0)
