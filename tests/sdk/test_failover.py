"""The failover core on its own: where each attempt of a call goes and how long it waits first."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from computenet.client import RetryPolicy
from computenet.client._failover import Action, AddressPool, Attempts, Failure, parse_targets
from computenet.errors import InvalidArgumentError

C = grpc.StatusCode
POLICY = RetryPolicy(max_attempts=3, initial_backoff_s=0.1, max_backoff_s=1.0)
DOWN = Failure(C.UNAVAILABLE, note="unreachable")
REFUSED = Failure(C.UNAVAILABLE, not_connected=True)
LATE = Failure(C.DEADLINE_EXCEEDED)
NOT_FOUND = Failure(C.NOT_FOUND)


def not_leader(leader: str = "") -> Failure:
    return Failure(C.UNAVAILABLE, not_leader=True, leader_address=leader)


def attempts(*targets: str, idempotent: bool = True) -> Attempts:
    return Attempts(AddressPool(targets), POLICY, idempotent=idempotent)


@pytest.mark.parametrize(
    ("given_as", "targets"),
    [
        ("a:1", ("a:1",)),
        ("a:1,b:2, c:3 ", ("a:1", "b:2", "c:3")),
        ("a:1,,b:2,", ("a:1", "b:2")),
        (["a:1", "b:2", "a:1"], ("a:1", "b:2")),
        (("[::1]:5",), ("[::1]:5",)),
    ],
)
def test_addresses_come_as_a_list_or_comma_separated(given_as: object, targets: tuple) -> None:
    assert parse_targets(given_as) == targets  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", " , ", "a:1,nope", [], ["a:1", 5]])
def test_bad_address_lists_are_invalid_arguments(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_targets(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "idempotent", "action"),
    [
        (DOWN, True, Action.MOVE),
        (DOWN, False, Action.RAISE),
        (REFUSED, False, Action.MOVE),
        (not_leader(), False, Action.MOVE),
        (LATE, True, Action.MOVE),
        (LATE, False, Action.RAISE),
        (Failure(C.RESOURCE_EXHAUSTED, retry_after_s=1.0), True, Action.WAIT),
        (Failure(C.RESOURCE_EXHAUSTED, retry_after_s=60.0), True, Action.RAISE),
        (Failure(C.RESOURCE_EXHAUSTED), True, Action.RAISE),
        (NOT_FOUND, True, Action.RAISE),
    ],
)
def test_what_a_failure_leads_to(failure: Failure, idempotent: bool, action: Action) -> None:
    assert failure.action(POLICY, idempotent) is action


def test_the_next_address_is_tried_at_once_and_backoff_comes_after_a_round() -> None:
    a = attempts("a:1", "b:1", "c:1")
    waits = []
    for _ in range(3):
        waits.append(a.failed(DOWN))
    assert waits[:2] == [0.0, 0.0] and waits[2] is not None and waits[2] > 0
    assert a.target == "a:1" and a.rounds == 1


def test_a_named_leader_is_tried_next_even_out_of_order() -> None:
    a = attempts("a:1", "b:1", "c:1")
    assert a.failed(not_leader("c:1")) == 0.0
    assert a.target == "c:1"


def test_a_named_leader_not_configured_joins_the_pool() -> None:
    a = attempts("a:1")
    assert a.failed(not_leader("leader:9")) == 0.0
    assert a.target == "leader:9" and a.pool.targets == ["a:1", "leader:9"]


@pytest.mark.parametrize("hint", ["a:1", "nonsense"])
def test_a_stale_or_malformed_leader_hint_falls_back_to_the_order(hint: str) -> None:
    a = attempts("a:1", "b:1")
    assert a.failed(not_leader(hint)) == 0.0
    assert a.target == "b:1"


def test_success_makes_later_calls_start_there() -> None:
    a = attempts("a:1", "b:1")
    a.failed(DOWN)
    a.succeeded()
    assert Attempts(a.pool, POLICY, idempotent=True).target == "b:1"


def test_one_address_keeps_the_single_broker_behaviour() -> None:
    a = attempts("a:1")
    waits = [a.failed(DOWN) for _ in range(POLICY.max_attempts)]
    assert all(w is not None and w > 0 for w in waits[:-1]) and waits[-1] is None
    assert attempts("a:1").failed(LATE) is None, "a deadline is not repeated at the same broker"


def test_a_replica_past_its_deadline_is_left_out_of_later_rounds() -> None:
    a = attempts("a:1", "b:1")
    assert a.failed(LATE) == 0.0 and a.target == "b:1"
    wait = a.failed(DOWN)
    assert wait is not None and wait > 0 and a.target == "b:1"
    assert a.failed(LATE) is None


def test_a_rate_limit_waits_at_least_the_hint_at_the_same_replica() -> None:
    a = attempts("a:1", "b:1")
    wait = a.failed(Failure(C.RESOURCE_EXHAUSTED, retry_after_s=0.7))
    assert wait is not None and wait >= 0.7 and a.target == "a:1"


def test_a_stream_that_progressed_starts_its_rounds_again() -> None:
    a = attempts("a:1")
    for _ in range(POLICY.max_attempts - 1):
        a.failed(DOWN)
    a.progressed()
    assert a.failed(DOWN) is not None


FAILURES = st.sampled_from([DOWN, REFUSED, LATE, not_leader(), not_leader("b:1")])


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 4), failures=st.lists(FAILURES, min_size=1, max_size=40))
def test_every_failed_round_tries_each_live_address_once_then_waits(
    n: int, failures: list[Failure]
) -> None:
    targets = [f"{h}:1" for h in "abcd"[:n]]
    a = attempts(*targets)
    since_wait: list[str] = []
    total = 0
    for failure in failures:
        since_wait.append(a.target)
        total += 1
        wait = a.failed(failure)
        if wait is None:
            break
        assert a.target in a.pool.targets
        if wait > 0:
            assert len(since_wait) == len(set(since_wait)), "no address twice in one round"
            since_wait.clear()
        else:
            assert a.target not in since_wait, "a move goes to an address not tried this round"
    assert a.rounds <= POLICY.max_attempts
    assert total <= POLICY.max_attempts * len(a.pool.targets)
