"""Contract tests of the Store protocol, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy.exc import IntegrityError

from broker.store import Hold, JobFilter, SiteRecord, SqlStore, Store, Transition, open_store
from computenet.types import InferenceDemand, JobId, JobKind, JobState, SiteId, SiteStatus, TenantId
from tests.store.factories import START_UNIX_MS, FakeClock, new_job, spec

P, PL, D, R = JobState.PENDING, JobState.PLACED, JobState.DISPATCHED, JobState.RUNNING


def _ids(jobs: list) -> list[str]:
    return [job.job_id for job in jobs]


def _hold(job_id: str, attempt: int = 1, site: str = "gansu-1", count: int = 8) -> Hold:
    return Hold(JobId(job_id), attempt, SiteId(site), "a100", count, 16.0, 128.0)


def _place(job_id: str, site: str = "gansu-1", attempt: int = 1) -> Transition:
    return Transition(
        JobId(job_id),
        PL,
        "placement",
        expect_states=frozenset({P}),
        site=SiteId(site),
        attempt=attempt,
        holds=(_hold(job_id, attempt, site),),
        placement_json=f'{{"chosen": "{site}"}}',
    )


def test_sql_store_satisfies_the_protocol(store: SqlStore) -> None:
    checked: Store = store
    assert checked.last_sequence() == 0


# --- submit -----------------------------------------------------------------------------


def test_submit_writes_job_key_and_first_event_together(store: SqlStore) -> None:
    submission = new_job("j1", time_unix_ms=START_UNIX_MS + 5)
    [outcome] = store.submit_jobs([submission])
    assert outcome.job is not None and not outcome.duplicate and not outcome.conflict
    job = outcome.job
    assert (job.job_id, job.tenant, job.request_id) == ("j1", "tenant-a", "req-j1")
    assert job.state is P and job.site is None and job.attempt == 0
    assert job.spec == submission.spec
    assert job.created_unix_ms == job.updated_unix_ms == START_UNIX_MS + 5
    assert store.get_job(JobId("j1")) == job
    [event] = store.events_after(0)
    assert (event.job_id, event.state, event.cause) == ("j1", P, "submitted")
    assert event.sequence == job.last_sequence == store.last_sequence() == 1
    assert event.time_unix_ms == START_UNIX_MS + 5


def test_spec_round_trips_exactly(store: SqlStore) -> None:
    rich = spec(
        "serve",
        "inference",
        labels={"team": "nlp", "中文": "标签"},
        constraints={"allowed_provinces": ["guizhou"], "excluded_sites": ["x"]},
        dataset={"origin": "beijing", "size_gb": 12.5},
    )
    store.submit_jobs([new_job("j1", job_spec=rich)])
    job = store.get_job(JobId("j1"))
    assert job is not None and job.spec == rich and job.kind is JobKind.INFERENCE


def test_resubmission_with_same_spec_returns_earlier_job(store: SqlStore) -> None:
    [first] = store.submit_jobs([new_job("j1", request_id="r")])
    [again] = store.submit_jobs([new_job("j2", request_id="r", job_spec=spec("j1"))])
    assert again.duplicate and not again.conflict and again.job == first.job
    assert store.get_job(JobId("j2")) is None
    assert store.last_sequence() == 1


def test_resubmission_with_other_spec_conflicts_and_writes_nothing(store: SqlStore) -> None:
    store.submit_jobs([new_job("j1", request_id="r")])
    [clash] = store.submit_jobs([new_job("j2", request_id="r", job_spec=spec("other"))])
    assert clash.conflict and clash.job is None and not clash.duplicate
    assert store.get_job(JobId("j2")) is None
    assert len(store.events_after(0)) == 1
    assert store.get_job(JobId("j1")) is not None


def test_request_ids_are_scoped_by_tenant(store: SqlStore) -> None:
    outcomes = store.submit_jobs(
        [new_job("j1", tenant="a", request_id="r"), new_job("j2", tenant="b", request_id="r")]
    )
    assert [o.job.job_id for o in outcomes if o.job] == ["j1", "j2"]
    assert not any(o.duplicate or o.conflict for o in outcomes)


def test_same_key_inside_one_batch_behaves_as_sequential(store: SqlStore) -> None:
    outcomes = store.submit_jobs(
        [
            new_job("j1", request_id="r"),
            new_job("j2", request_id="r", job_spec=spec("j1")),
            new_job("j3", request_id="r", job_spec=spec("different")),
            new_job("j4"),
        ]
    )
    created, duplicate, conflict, other = outcomes
    assert created.job is not None and not created.duplicate
    assert duplicate.duplicate and duplicate.job == created.job
    assert conflict.conflict and conflict.job is None
    assert other.job is not None and other.job.last_sequence == 2
    assert _ids(store.list_jobs(JobFilter(), 10).jobs) == ["j1", "j4"]
    assert [e.sequence for e in store.events_after(0)] == [1, 2]


def test_known_keys_are_found_in_batches_of_mixed_tenants_and_request_ids(
    store: SqlStore,
) -> None:
    pairs = [("a", "r1"), ("b", "r2"), ("c", "r3")]
    store.submit_jobs([new_job(f"{t}-{r}", tenant=t, request_id=r) for t, r in pairs])
    crossed = [("a", "r2"), ("b", "r3"), ("c", "r1"), ("a", "r4"), ("d", "r1")]
    outcomes = store.submit_jobs(
        [new_job(f"{t}-{r}", tenant=t, request_id=r) for t, r in [*pairs, *crossed]]
    )
    assert [o.duplicate for o in outcomes] == [True] * 3 + [False] * 5
    assert [o.job.job_id for o in outcomes if o.job] == [f"{t}-{r}" for t, r in [*pairs, *crossed]]
    assert store.last_sequence() == 8


def test_a_failing_batch_writes_nothing(store: SqlStore) -> None:
    store.submit_jobs([new_job("j1")])
    with pytest.raises(IntegrityError):
        store.submit_jobs([new_job("j2"), new_job("j1", request_id="fresh")])
    assert store.get_job(JobId("j2")) is None
    assert store.last_sequence() == 1
    [retry] = store.submit_jobs([new_job("j2")])
    assert retry.job is not None and retry.job.last_sequence == 2


def test_empty_batches_are_no_ops(store: SqlStore) -> None:
    assert store.submit_jobs([]) == []
    assert store.apply([]) == []
    assert store.last_sequence() == 0


# --- listing ----------------------------------------------------------------------------


@pytest.fixture
def mixed(store: SqlStore) -> SqlStore:
    """Six jobs over two tenants and three kinds; j2 and j5 placed at two sites."""
    kinds = ["training", "inference", "batch", "training", "inference", "batch"]
    store.submit_jobs(
        [
            new_job(f"j{i}", tenant="a" if i % 2 else "b", job_spec=spec(f"j{i}", kind))
            for i, kind in enumerate(kinds)
        ]
    )
    store.apply([_place("j2", "gansu-1"), _place("j5", "guizhou-1")])
    return store


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (JobFilter(), ["j0", "j1", "j2", "j3", "j4", "j5"]),
        (JobFilter(states=frozenset({P})), ["j0", "j1", "j3", "j4"]),
        (JobFilter(states=frozenset({PL, R})), ["j2", "j5"]),
        (JobFilter(states=frozenset()), []),
        (JobFilter(kind=JobKind.TRAINING), ["j0", "j3"]),
        (JobFilter(site=SiteId("gansu-1")), ["j2"]),
        (JobFilter(tenant=TenantId("a")), ["j1", "j3", "j5"]),
        (JobFilter(tenant=TenantId("a"), kind=JobKind.BATCH, states=frozenset({PL})), ["j5"]),
        (JobFilter(tenant=TenantId("nobody")), []),
    ],
)
def test_list_filters(mixed: SqlStore, flt: JobFilter, expected: list[str]) -> None:
    page = mixed.list_jobs(flt, 100)
    assert _ids(page.jobs) == expected and page.next_page_token == ""


def test_jobs_in_states_in_submission_order(mixed: SqlStore) -> None:
    assert _ids(mixed.jobs_in_states(frozenset({PL}))) == ["j2", "j5"]
    assert _ids(mixed.jobs_in_states(frozenset({P, PL}))) == [f"j{i}" for i in range(6)]
    assert mixed.jobs_in_states(frozenset()) == []


@pytest.mark.parametrize("page_size", [1, 3, 7, 23, 24, 100])
def test_paging_visits_every_job_once_in_order(store: SqlStore, page_size: int) -> None:
    for start in range(0, 23, 8):
        store.submit_jobs([new_job(f"j{i:02d}") for i in range(start, min(start + 8, 23))])
    seen: list[str] = []
    token = ""
    for _ in range(30):
        page = store.list_jobs(JobFilter(), page_size, token)
        assert len(page.jobs) <= page_size
        seen += _ids(page.jobs)
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"j{i:02d}" for i in range(23)]


def test_paging_with_a_filter_and_concurrent_writes(mixed: SqlStore) -> None:
    first = mixed.list_jobs(JobFilter(tenant=TenantId("a")), 2)
    assert _ids(first.jobs) == ["j1", "j3"] and first.next_page_token
    mixed.submit_jobs([new_job("late", tenant="a")])
    second = mixed.list_jobs(JobFilter(tenant=TenantId("a")), 2, first.next_page_token)
    assert _ids(second.jobs) == ["j5", "late"] and second.next_page_token == ""


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "token",
    ["!!!", "a", "abc", "not a token", _b64("jobs.v1:"), _b64("jobs.v1:-1"), _b64("x:1"), "é"],
)
def test_malformed_page_token_raises_value_error(store: SqlStore, token: str) -> None:
    with pytest.raises(ValueError):
        store.list_jobs(JobFilter(), 10, token)


def test_page_size_must_be_positive(store: SqlStore) -> None:
    with pytest.raises(ValueError):
        store.list_jobs(JobFilter(), 0)


# --- apply ------------------------------------------------------------------------------


def test_apply_records_event_and_updates_job(mixed: SqlStore, clock: FakeClock) -> None:
    [event] = mixed.apply(
        [
            Transition(
                JobId("j2"),
                D,
                "dispatch",
                expect_states=frozenset({PL}),
                expect_attempt=1,
                message="sent",
            )
        ]
    )
    assert event is not None and event.sequence == mixed.last_sequence()
    assert (event.state, event.cause, event.message) == (D, "dispatch", "sent")
    assert (event.site, event.attempt, event.time_unix_ms) == ("gansu-1", 1, clock.now_unix_ms)
    job = mixed.get_job(JobId("j2"))
    assert job is not None and (job.state, job.site, job.attempt) == (D, "gansu-1", 1)
    assert job.last_sequence == event.sequence and job.updated_unix_ms == clock.now_unix_ms


def test_apply_with_unmet_expectation_writes_nothing(mixed: SqlStore) -> None:
    before, last = mixed.get_job(JobId("j2")), mixed.last_sequence()
    results = mixed.apply(
        [
            Transition(JobId("j2"), R, "x", expect_states=frozenset({P})),
            Transition(JobId("j2"), R, "x", expect_attempt=7),
            Transition(JobId("missing"), R, "x"),
            Transition(JobId("j2"), R, "x", release_hold=True, expect_states=frozenset({D})),
        ]
    )
    assert results == [None, None, None, None]
    assert mixed.get_job(JobId("j2")) == before and mixed.last_sequence() == last
    assert len(mixed.holds()) == 2


def test_apply_without_expected_states_refuses_final_jobs(mixed: SqlStore) -> None:
    done = Transition(JobId("j0"), JobState.CANCELLED, "user", release_hold=True)
    assert mixed.apply([done])[0] is not None
    assert mixed.apply([Transition(JobId("j0"), P, "requeue")]) == [None]
    explicit = Transition(JobId("j0"), P, "revive", expect_states=frozenset({JobState.CANCELLED}))
    assert mixed.apply([explicit])[0] is not None


def test_apply_mixes_applied_and_refused_in_order(mixed: SqlStore) -> None:
    results = mixed.apply(
        [
            _place("j0"),
            _place("j0"),  # already placed by the first: refused
            Transition(JobId("j0"), D, "dispatch", expect_states=frozenset({PL})),
            _place("j1", "guizhou-1", attempt=3),
        ]
    )
    applied = [r for r in results if r is not None]
    assert results[1] is None and len(applied) == 3
    assert [e.sequence for e in applied] == sorted({e.sequence for e in applied})
    assert [e.job_id for e in applied] == ["j0", "j0", "j1"]
    assert mixed.get_job(JobId("j0")).state is D  # type: ignore[union-attr]
    assert mixed.get_job(JobId("j1")).attempt == 3  # type: ignore[union-attr]


def test_site_and_attempt_keep_set_or_clear(mixed: SqlStore) -> None:
    mixed.apply([Transition(JobId("j2"), D, "keep")])
    job = mixed.get_job(JobId("j2"))
    assert job is not None and (job.site, job.attempt) == ("gansu-1", 1)
    [event] = mixed.apply([Transition(JobId("j2"), P, "requeue", site="", reason="site lost")])
    job = mixed.get_job(JobId("j2"))
    assert job is not None and job.site is None and job.reason == "site lost"
    assert event is not None and event.site is None and event.attempt == 1
    mixed.apply([Transition(JobId("j2"), P, "progress")])
    job = mixed.get_job(JobId("j2"))
    assert job is not None and job.reason == "site lost", "no reason given keeps the reason"
    mixed.apply(
        [Transition(JobId("j2"), PL, "again", site=SiteId("ningxia-1"), attempt=2, reason="")]
    )
    job = mixed.get_job(JobId("j2"))
    assert job is not None and (job.site, job.attempt, job.reason) == ("ningxia-1", 2, "")


def test_exit_code_is_recorded(mixed: SqlStore) -> None:
    [event] = mixed.apply([Transition(JobId("j2"), JobState.FAILED, "report", exit_code=3)])
    job = mixed.get_job(JobId("j2"))
    assert event is not None and event.exit_code == 3
    assert job is not None and job.exit_code == 3 and job.state.is_final


def test_holds_are_created_and_released(mixed: SqlStore) -> None:
    assert mixed.holds() == [_hold("j2"), _hold("j5", site="guizhou-1")]
    mixed.apply([Transition(JobId("j2"), JobState.SUCCEEDED, "done", release_hold=True)])
    assert mixed.holds() == [_hold("j5", site="guizhou-1")]
    moved = _hold("j5", attempt=2, site="gansu-1", count=4)
    mixed.apply(
        [Transition(JobId("j5"), JobState.MIGRATING, "move", release_hold=True, holds=(moved,))]
    )
    assert mixed.holds() == [moved]


def test_holds_follow_the_order_of_one_batch(mixed: SqlStore) -> None:
    mixed.apply(
        [
            Transition(JobId("j0"), PL, "p", holds=(_hold("j0"),)),
            Transition(JobId("j0"), P, "undo", release_hold=True),
            Transition(JobId("j1"), PL, "p", release_hold=True),
            Transition(JobId("j1"), D, "d", holds=(_hold("j1", 2),)),
        ]
    )
    assert [(h.job_id, h.attempt) for h in mixed.holds()] == [("j1", 2), ("j2", 1), ("j5", 1)]


def test_hold_of_another_job_is_rejected(mixed: SqlStore) -> None:
    last = mixed.last_sequence()
    with pytest.raises(ValueError):
        mixed.apply([_place("j0"), Transition(JobId("j1"), PL, "p", holds=(_hold("j0"),))])
    assert mixed.last_sequence() == last and mixed.get_job(JobId("j0")).state is P  # type: ignore[union-attr]


def test_placement_json_is_stored_and_replaced(mixed: SqlStore) -> None:
    assert mixed.placement_json(JobId("j2")) == '{"chosen": "gansu-1"}'
    assert mixed.placement_json(JobId("j0")) is None
    assert mixed.placement_json(JobId("missing")) is None
    mixed.apply([Transition(JobId("j2"), D, "d")])
    assert mixed.placement_json(JobId("j2")) == '{"chosen": "gansu-1"}'
    mixed.apply([Transition(JobId("j2"), PL, "re", placement_json='{"chosen": "x"}')])
    assert mixed.placement_json(JobId("j2")) == '{"chosen": "x"}'


# --- events -----------------------------------------------------------------------------


def test_events_after_orders_filters_and_limits(mixed: SqlStore) -> None:
    events = mixed.events_after(0)
    sequences = [e.sequence for e in events]
    assert sequences == list(range(1, 9)) and mixed.last_sequence() == 8
    assert [e.job_id for e in mixed.events_after(0, job_id=JobId("j2"))] == ["j2", "j2"]
    assert [e.job_id for e in mixed.events_after(6)] == ["j2", "j5"]
    assert [e.job_id for e in mixed.events_after(0, tenant=TenantId("a"))] == [
        "j1",
        "j3",
        "j5",
        "j5",
    ]
    assert [e.job_id for e in mixed.events_after(0, kind=JobKind.BATCH)] == ["j2", "j5", "j2", "j5"]
    assert [e.sequence for e in mixed.events_after(2, limit=3)] == [3, 4, 5]
    assert mixed.events_after(8) == [] and mixed.events_after(0, limit=0) == []


def test_sequences_increase_across_submits_and_applies(store: SqlStore) -> None:
    seen: list[int] = []
    for i in range(5):
        [outcome] = store.submit_jobs([new_job(f"j{i}")])
        assert outcome.job is not None
        seen.append(outcome.job.last_sequence)
        [event] = store.apply([_place(f"j{i}")])
        assert event is not None
        seen.append(event.sequence)
        assert store.last_sequence() == event.sequence
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert [e.sequence for e in store.events_after(0)] == seen


# --- sites ------------------------------------------------------------------------------


def test_sites_round_trip_and_replace(store: SqlStore) -> None:
    gansu = SiteRecord(
        SiteId("gansu-1"),
        SiteStatus.ACTIVE,
        last_report_unix_ms=START_UNIX_MS,
        report_json='{"pools": []}',
        executor="slurm",
        agent_version="0.1.0",
        agent_epoch="e1",
    )
    beijing = SiteRecord(SiteId("beijing-1"), SiteStatus.OFFLINE)
    store.save_site(gansu)
    store.save_site(beijing)
    assert store.sites() == [beijing, gansu]
    drained = SiteRecord(SiteId("gansu-1"), SiteStatus.DRAINING, drained=True)
    store.save_site(drained)
    assert store.sites() == [beijing, drained]


# --- durability -------------------------------------------------------------------------


def test_reopening_keeps_everything_and_continues_sequences(store_url: str) -> None:
    with open_store(store_url) as first:
        first.submit_jobs([new_job("j1"), new_job("j2")])
        first.apply([_place("j1")])
        first.save_site(SiteRecord(SiteId("s"), SiteStatus.ACTIVE))
        job, holds = first.get_job(JobId("j1")), first.holds()
    for _ in range(2):
        with open_store(store_url) as again:
            assert again.get_job(JobId("j1")) == job and again.holds() == holds
            assert again.last_sequence() == 3 and len(again.sites()) == 1
    with open_store(store_url) as last:
        [dup] = last.submit_jobs([new_job("x", request_id="req-j2", job_spec=spec("j2"))])
        assert dup.duplicate and dup.job is not None and dup.job.job_id == "j2"
        [fresh] = last.submit_jobs([new_job("j3")])
        assert fresh.job is not None and fresh.job.last_sequence == 4


def test_get_jobs_and_counts_by_state(store: SqlStore) -> None:
    outcomes = store.submit_jobs([new_job(f"g{i}", request_id=f"g{i}") for i in range(5)])
    ids = [o.job.job_id for o in outcomes if o.job is not None]
    store.apply([Transition(ids[1], JobState.CANCELLED, "test")])
    got = store.get_jobs([ids[3], JobId("missing"), ids[0]])
    assert [j.job_id for j in got] == [ids[0], ids[3]], "existing ones, in submission order"
    assert store.count_by_state() == {JobState.PENDING: 4, JobState.CANCELLED: 1}
    assert store.get_jobs([]) == []


def test_typed_job_fields_keep_set_or_clear(mixed: SqlStore) -> None:
    mixed.apply([Transition(JobId("j2"), D, "cancel asked", cancel_requested=True)])
    job = mixed.get_job(JobId("j2"))
    assert job is not None and job.cancel_requested and job.reason == ""
    mixed.apply([Transition(JobId("j2"), R, "progress")])
    job = mixed.get_job(JobId("j2"))
    assert job is not None and job.cancel_requested, "None keeps the flag"
    mixed.apply([Transition(JobId("j5"), JobState.MIGRATING, "move", migration_target="ningxia-1")])
    job = mixed.get_job(JobId("j5"))
    assert job is not None and job.migration_target == "ningxia-1"
    mixed.apply([Transition(JobId("j5"), PL, "moved", migration_target="", pool="910b")])
    job = mixed.get_job(JobId("j5"))
    assert job is not None and job.migration_target is None and job.pool == "910b"


def test_one_placement_may_hold_several_pools(mixed: SqlStore) -> None:
    a800 = Hold(JobId("j0"), 1, SiteId("gansu-1"), "a800", 8, 16.0, 128.0, 5_000)
    ascend = Hold(JobId("j0"), 1, SiteId("gansu-1"), "910b", 8, 0.0, 0.0, 5_000)
    mixed.apply([Transition(JobId("j0"), PL, "p", attempt=1, holds=(a800, ascend))])
    mine = [h for h in mixed.holds() if h.job_id == "j0"]
    assert sorted(mine, key=lambda h: h.pool) == [ascend, a800]
    mixed.apply([Transition(JobId("j0"), JobState.CANCELLED, "c", release_hold=True)])
    assert [h for h in mixed.holds() if h.job_id == "j0"] == []


def test_the_restore_checkpoint_is_kept_replaced_and_cleared(
    mixed: SqlStore, store_url: str
) -> None:
    j5 = JobId("j5")
    move = Transition(
        j5, JobState.MIGRATING, "move", migration_target="n", migration_checkpoint=True
    )
    mixed.apply([move])
    job = mixed.get_job(j5)
    assert job is not None and job.migration_checkpoint and job.restore_ref == ""
    mixed.apply([Transition(j5, PL, "moved", attempt=2, restore_ref="ckpt://a/j5/1")])
    job = mixed.get_job(j5)
    assert job is not None and job.restore_ref == "ckpt://a/j5/1"
    assert job.migration_checkpoint, "None keeps the flag"
    mixed.apply([Transition(j5, P, "site lost", site="", release_hold=True)])
    with open_store(store_url) as again:
        job = again.get_job(j5)
        assert job is not None and job.restore_ref == "ckpt://a/j5/1", "durable, and None keeps it"
    mixed.apply([Transition(j5, PL, "placed", migration_checkpoint=False)])
    mixed.apply([Transition(j5, JobState.SUCCEEDED, "done", restore_ref="")])
    job = mixed.get_job(j5)
    assert job is not None and job.restore_ref == "" and not job.migration_checkpoint


# --- inference demand ---------------------------------------------------------------------


def test_demand_is_stored_stamped_and_replaced_per_job(store: SqlStore, clock: FakeClock) -> None:
    store.submit_jobs([new_job("j1"), new_job("j2")])
    before = clock.now_unix_ms
    first = store.save_demand(InferenceDemand(JobId("j1"), {"beijing": 3.0, "shanghai": 1.0}))
    assert first.reported_unix_ms == before + 1  # the store's clock, read once
    assert first.weights == {"beijing": 3.0, "shanghai": 1.0}
    assert store.demands() == {JobId("j1"): first}
    clock.now_unix_ms += 1000
    newer = store.save_demand(InferenceDemand(JobId("j1"), {"guangzhou": 2.5}))
    other = store.save_demand(InferenceDemand(JobId("j2"), {"beijing": 1.0}))
    assert newer.reported_unix_ms > first.reported_unix_ms + 1000
    assert store.demands() == {JobId("j1"): newer, JobId("j2"): other}
    assert store.demands([JobId("j2"), JobId("nope")]) == {JobId("j2"): other}
    assert store.demands([]) == {}


def test_demand_of_an_unknown_job_is_refused(store: SqlStore) -> None:
    with pytest.raises(IntegrityError):
        store.save_demand(InferenceDemand(JobId("ghost"), {"beijing": 1.0}))
