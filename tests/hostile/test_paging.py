"""Pages bounded in bytes: what fits is sent, the token resumes right after it, and an item
too large to send alone is shortened instead of failing the page forever."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.rpc.paging import ITEM_OVERHEAD_BYTES, TRUNCATION_MARK, bounded_page, fit
from computenet.v1 import types_pb2


def _job(i: int, label_chars: int) -> types_pb2.Job:
    job = types_pb2.Job(job_id=f"job-{i}")
    job.spec.labels["blob"] = "x" * label_chars
    return job


@given(
    sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=12),
    budget=st.integers(600, 12_000),
    last_page=st.booleans(),
)
def test_a_page_fits_its_budget_and_resumes_right_after_its_last_item(
    sizes: list[int], budget: int, last_page: bool
) -> None:
    jobs = [_job(i, n) for i, n in enumerate(sizes)]
    tokens = [f"after-{i}" for i in range(len(jobs))]
    next_token = "" if last_page else "after-page"
    kept, token = bounded_page(jobs, tokens, next_token, budget)
    assert kept, "a page always holds at least one item"
    assert sum(j.ByteSize() + ITEM_OVERHEAD_BYTES for j in kept) <= budget
    assert [j.job_id for j in kept] == [f"job-{i}" for i in range(len(kept))]
    if len(kept) < len(jobs):
        assert token == tokens[len(kept) - 1]
    else:
        assert token == next_token


def test_an_item_too_large_alone_is_shortened_not_dropped() -> None:
    job = _job(0, 100_000)
    job.spec.command.extend(["y" * 50_000])
    small = fit(job, 20_000)
    assert small.ByteSize() <= 20_000
    assert small.job_id == "job-0"
    assert small.spec.labels["blob"].endswith(TRUNCATION_MARK)
    assert job.spec.labels["blob"] == "x" * 100_000  # the original is untouched


def test_an_item_that_fits_is_sent_as_it_is() -> None:
    job = _job(1, 10)
    assert fit(job, 10_000) is job
