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
    drain_flag,
    job_query,
    move_budget,
)
from computenet.types import JobKind, JobState


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
