"""Pure round trips of the row codecs and page tokens (no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.store import Hold, SiteRecord
from broker.store.codecs import (
    event_from_row,
    event_to_row,
    first_event_row,
    hold_from_row,
    hold_to_row,
    job_from_row,
    job_to_row,
    site_from_row,
    site_to_row,
    spec_sha256,
)
from broker.store.paging import decode_page_token, encode_page_token
from broker.store.submission import Submission
from computenet.types import JobEvent, JobId, JobState, SiteId, SiteStatus
from tests.store.factories import new_job, spec


def test_job_row_round_trip() -> None:
    submission = new_job("j1", job_spec=spec("j1", "inference"))
    row = job_to_row(Submission.of(submission), 7)
    job = job_from_row(row)
    assert job == job_from_row(row, spec=submission.spec)
    assert (job.job_id, job.state, job.last_sequence, job.spec) == (
        "j1",
        JobState.PENDING,
        7,
        submission.spec,
    )


def test_first_event_row_is_the_submitted_event() -> None:
    submission = Submission.of(new_job("j1", tenant="t", job_spec=spec("j1", "batch")))
    row = first_event_row(submission, 9)
    assert row == event_to_row(
        JobEvent(9, JobId("j1"), JobState.PENDING, "submitted", submission.time_unix_ms),
        tenant="t",
        kind="batch",
    )


def test_event_row_round_trip() -> None:
    event = JobEvent(3, JobId("j"), JobState.FAILED, "report", 5, SiteId("s"), 2, "oom", 137)
    assert event_from_row(event_to_row(event, tenant="t", kind="batch")) == event


def test_hold_and_site_round_trips() -> None:
    hold = Hold(JobId("j"), 1, SiteId("s"), "h800", 64, 8.5, 512.0)
    assert hold_from_row(hold_to_row(hold)) == hold
    site = SiteRecord(SiteId("s"), SiteStatus.SUSPECT, 9, '{"a": 1}', "slurm", "1", "e", True)
    assert site_from_row(site_to_row(site)) == site


def test_spec_hash_depends_only_on_canonical_json() -> None:
    a = spec("x", labels={"b": "2", "a": "1"})
    b = spec("x", labels={"a": "1", "b": "2"})
    assert spec_sha256(a.canonical_json()) == spec_sha256(b.canonical_json())
    assert spec_sha256(a.canonical_json()) != spec_sha256(spec("y").canonical_json())


@given(st.integers(0, 2**62))
def test_page_token_round_trip(created_seq: int) -> None:
    token = encode_page_token(created_seq)
    assert decode_page_token(token) == created_seq
    assert token.isascii() and "=" not in token


@given(st.text(max_size=40))
def test_arbitrary_text_is_a_token_or_a_value_error(text: str) -> None:
    try:
        decoded = decode_page_token(text)
    except ValueError:
        return
    assert decoded >= 0
    assert decode_page_token(encode_page_token(decoded)) == decoded


def test_empty_token_is_the_first_page() -> None:
    assert decode_page_token("") == 0
    for bad in ("=", encode_page_token(5) + "!", "+" + encode_page_token(5)):
        with pytest.raises(ValueError):
            decode_page_token(bad)
