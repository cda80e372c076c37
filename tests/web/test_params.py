"""Console parameters: every bad value is a BadInput naming the parameter, never another error."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.web.params import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    BadInput,
    JobQuery,
    UsageQuery,
    drain_flag,
    job_query,
    move_budget,
    position_token,
    usage_query,
)
from computenet.types import JobKind, JobState
from computenet.usage import UsageGrouping


def test_an_empty_query_means_any_job_on_the_first_page() -> None:
    assert job_query({}) == JobQuery()
    assert job_query({"state": "", "kind": " "}) == JobQuery()


def test_a_full_query_is_read() -> None:
    query = job_query(
        {
            "state": "Running",
            "kind": "training",
            "site": "guian",
            "tenant": "tenant-a",
            "page_size": "20",
            "page_token": "abc",
        }
    )
    assert query == JobQuery(JobState.RUNNING, JobKind.TRAINING, "guian", "tenant-a", 20, "abc")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"state": "sleeping"}, "state"),
        ({"kind": "x"}, "kind"),
        ({"site": "a b"}, "site"),
        ({"tenant": "../x"}, "tenant"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": str(MAX_PAGE_SIZE + 1)}, "page_size"),
        ({"page_size": "1e3"}, "page_size"),
        ({"page_token": "x" * 300}, "page_token"),
        ({"page_token": "a b"}, "page_token"),
        ({"unknown": "1"}, "unknown"),
    ],
)
def test_bad_values_name_their_parameter(params: dict[str, str], name: str) -> None:
    with pytest.raises(BadInput) as info:
        job_query(params)
    assert info.value.name == name
    assert str(info.value).startswith(f"{name}: ")


PARAM_NAMES = st.sampled_from(["state", "kind", "site", "tenant", "page_size", "page_token", "x"])


@given(st.dictionaries(PARAM_NAMES, st.text(max_size=60), max_size=6))
def test_any_input_is_read_or_refused_as_bad_input(params: dict[str, str]) -> None:
    try:
        query = job_query(params)
    except BadInput:
        return
    assert 1 <= query.page_size <= MAX_PAGE_SIZE
    assert job_query(dict(parse_qsl(query.link()))) == query  # its own link reads back


def test_links_keep_filters_and_drop_defaults() -> None:
    query = JobQuery(state=JobState.PENDING, page_size=DEFAULT_PAGE_SIZE)
    assert query.link() == "state=pending"
    assert query.link(page_token="t1") == "state=pending&page_token=t1"


def test_forms() -> None:
    assert drain_flag({"action": "drain"}) is True
    assert drain_flag({"action": "resume"}) is False
    with pytest.raises(BadInput):
        drain_flag({"action": "DROP"})
    assert move_budget({}) == 0 and move_budget({"move_budget": "5"}) == 5
    with pytest.raises(BadInput):
        move_budget({"move_budget": "-2"})


def test_a_usage_query_is_read_with_defaults() -> None:
    assert usage_query({}) == UsageQuery()
    query = usage_query({"by": "Day", "since": "2026-12-01", "until": "2026-12-01", "tenant": "t"})
    assert query == UsageQuery(UsageGrouping.DAY, "2026-12-01", "2026-12-01", "t")
    assert query.link() == "by=day&since=2026-12-01&until=2026-12-01&tenant=t"
    assert UsageQuery().link() == ""


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"by": "week"}, "by"),
        ({"since": "2026-02-30"}, "since"),
        ({"since": "26-12-01"}, "since"),
        ({"until": "2026-12-1"}, "until"),
        ({"until": "１２３４-12-01"}, "until"),  # digits of other scripts are not a day
        ({"since": "2026-12-02", "until": "2026-12-01"}, "until"),
        ({"tenant": "a/b"}, "tenant"),
        ({"page_size": "10"}, "page_size"),
    ],
)
def test_bad_usage_values_name_their_parameter(params: dict[str, str], name: str) -> None:
    with pytest.raises(BadInput) as info:
        usage_query(params)
    assert info.value.name == name


USAGE_NAMES = st.sampled_from(["by", "since", "until", "tenant", "x"])


@given(st.dictionaries(USAGE_NAMES, st.text(max_size=30), max_size=5))
def test_any_usage_input_is_read_or_refused_as_bad_input(params: dict[str, str]) -> None:
    try:
        query = usage_query(params)
    except BadInput:
        return
    assert not (query.since and query.until) or query.since <= query.until
    assert usage_query(dict(parse_qsl(query.link()))) == query


def test_the_queue_token_is_a_position() -> None:
    assert position_token({}) == 0
    assert position_token({"page_token": "150"}) == 150
    for bad in ("-1", "1.5", "x", "9" * 12):
        with pytest.raises(BadInput):
            position_token({"page_token": bad})
