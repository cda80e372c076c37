"""The order the agent dials broker replicas in, and when it backs off."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from site_agent.brokers import BrokerRotation, Step

A, B, C, LEADER = "a:1", "b:1", "c:1", "leader:1"


def test_one_address_backs_off_after_every_failure_as_before() -> None:
    rotation = BrokerRotation([A])
    assert rotation.target == A
    assert [rotation.failed() for _ in range(3)] == [Step(A, backoff=True)] * 3


def test_the_addresses_are_tried_in_turn_with_one_backoff_per_round() -> None:
    rotation = BrokerRotation([A, B, C])
    steps = [rotation.failed() for _ in range(6)]
    assert steps == [
        Step(B, False),
        Step(C, False),
        Step(A, True),
        Step(B, False),
        Step(C, False),
        Step(A, True),
    ]


def test_a_named_leader_is_tried_next_even_outside_the_list() -> None:
    rotation = BrokerRotation([A, B, C])
    assert rotation.failed() == Step(B, False)
    assert rotation.failed(leader_hint=LEADER) == Step(LEADER, False)
    rotation.welcomed()
    # the leader's stream ends: the list resumes after the replica that named it
    assert rotation.failed() == Step(C, False)
    assert rotation.failed() == Step(A, False)
    assert rotation.failed() == Step(B, False)
    assert rotation.failed() == Step(C, True)


def test_a_hint_naming_the_failed_replica_itself_is_ignored() -> None:
    rotation = BrokerRotation([A, B])
    assert rotation.failed(leader_hint=A) == Step(B, False)


def test_a_stream_that_ends_after_a_welcome_retries_the_same_replica() -> None:
    rotation = BrokerRotation([A, B])
    rotation.failed()
    rotation.welcomed()
    assert rotation.retry() == Step(B, True)
    assert rotation.failed() == Step(A, False)


def test_replicas_naming_each_other_cannot_hold_off_the_backoff() -> None:
    rotation = BrokerRotation([A, B])
    steps = []
    for _ in range(12):
        hint = "x:1" if rotation.target != "x:1" else "y:1"
        steps.append(rotation.failed(leader_hint=hint))
    assert sum(step.backoff for step in steps) >= 2


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BrokerRotation([])


addresses = st.lists(st.sampled_from([A, B, C, "d:1", "e:1"]), min_size=1, unique=True)
hints = st.lists(st.sampled_from(["", "", A, LEADER, "other:1"]), max_size=60)


@given(addresses, hints)
def test_every_round_tries_every_address_and_at_most_as_many_hints(
    listed: list[str], given_hints: list[str]
) -> None:
    rotation = BrokerRotation(listed)
    tried = [rotation.target]
    rounds: list[list[str]] = []
    for hint in given_hints:
        step = rotation.failed(leader_hint=hint)
        if step.backoff:
            rounds.append(tried)
            tried = []
        tried.append(step.target)
    for round_tried in rounds:
        listed_tries = [t for t in round_tried if t in listed]
        assert set(listed) <= set(listed_tries)
        assert len(round_tried) <= 2 * len(listed) + 1
