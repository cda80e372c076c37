"""Property tests of the store: idempotent submission, paging and transitions against a model."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.store import JobFilter, SqlStore, Transition
from computenet.types import JobId, JobState, TenantId
from tests.store.factories import new_job, spec

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# (request id, spec name) pairs: few of each, so keys and specs repeat often.
submissions = st.lists(
    st.tuples(st.sampled_from("abcdef"), st.sampled_from(["s1", "s2"])), min_size=1, max_size=30
)


def _batches(items: list, sizes: list[int]) -> list[list]:
    out, start = [], 0
    for size in sizes:
        if start >= len(items):
            break
        out.append(items[start : start + size])
        start += size
    if start < len(items):
        out.append(items[start:])
    return out


@PROPERTY_SETTINGS
@given(items=submissions, sizes=st.lists(st.integers(1, 8), max_size=10))
def test_each_key_creates_one_job_with_its_first_spec(
    store: SqlStore, items: list[tuple[str, str]], sizes: list[int]
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    first_spec: dict[str, str] = {}
    created_by_key: dict[str, str] = {}
    numbered = [(f"{tenant}-{i}", key, name) for i, (key, name) in enumerate(items)]
    for batch in _batches(numbered, sizes):
        submitted = [
            new_job(job_id, tenant=tenant, request_id=key, job_spec=spec(name))
            for job_id, key, name in batch
        ]
        for (job_id, key, name), outcome in zip(batch, store.submit_jobs(submitted), strict=True):
            if key not in first_spec:
                first_spec[key] = name
                assert outcome.job is not None and not outcome.duplicate
                created_by_key[key] = job_id
            elif first_spec[key] == name:
                assert outcome.duplicate and outcome.job is not None
                assert outcome.job.job_id == created_by_key[key]
            else:
                assert outcome.conflict and outcome.job is None
    jobs = store.list_jobs(JobFilter(tenant=TenantId(tenant)), 1000).jobs
    assert len(jobs) == len(first_spec)
    assert {job.request_id: job.spec.name for job in jobs} == first_spec
    assert [job.job_id for job in jobs] == sorted(created_by_key.values(), key=_order)


def _order(job_id: str) -> int:
    return int(job_id.rsplit("-", 1)[1])


@PROPERTY_SETTINGS
@given(count=st.integers(0, 25), page_size=st.integers(1, 30))
def test_pages_concatenate_to_the_full_listing(store: SqlStore, count: int, page_size: int) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    store.submit_jobs([new_job(f"{tenant}-{i}", tenant=tenant) for i in range(count)])
    flt = JobFilter(tenant=TenantId(tenant))
    pages, token = [], ""
    while True:
        page = store.list_jobs(flt, page_size, token)
        pages.append(page)
        token = page.next_page_token
        if not token:
            break
    listed = [job.job_id for page in pages for job in page.jobs]
    assert listed == [f"{tenant}-{i}" for i in range(count)]
    assert len(pages) == max(1, -(-count // page_size))


STATES = list(JobState)
transitions = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(STATES),
        st.frozensets(st.sampled_from(STATES), max_size=2),
        st.one_of(st.none(), st.integers(0, 2)),
        st.one_of(st.none(), st.integers(0, 2)),
    ),
    max_size=20,
)


@PROPERTY_SETTINGS
@given(steps=transitions, split=st.integers(1, 20))
def test_transitions_follow_a_simple_model(store: SqlStore, steps: list[tuple], split: int) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    ids = [JobId(f"{tenant}-{i}") for i in range(3)]
    store.submit_jobs([new_job(job_id, tenant=tenant) for job_id in ids])
    model = {job_id: (JobState.PENDING, 0) for job_id in ids}
    before = store.last_sequence()
    batch = [
        Transition(ids[i], new, "test", expect_states=expect, expect_attempt=ea, attempt=a)
        for i, new, expect, ea, a in steps
    ]
    results = [e for part in _batches(batch, [split] * 20) for e in store.apply(part)]
    for t, event in zip(batch, results, strict=True):
        state, attempt = model[t.job_id]
        allowed = (state in t.expect_states) if t.expect_states else not state.is_final
        allowed = allowed and t.expect_attempt in (None, attempt)
        assert (event is not None) == allowed
        if allowed:
            model[t.job_id] = (t.new_state, attempt if t.attempt is None else t.attempt)
    for job_id, (state, attempt) in model.items():
        job = store.get_job(job_id)
        assert job is not None and (job.state, job.attempt) == (state, attempt)
    sequences = [e.sequence for e in results if e is not None]
    assert sequences == list(range(before + 1, before + 1 + len(sequences)))
    assert store.last_sequence() == before + len(sequences)
