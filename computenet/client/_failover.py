"""Which broker replica a client call tries next and how long it waits first: the failover core.

A client holds several replica addresses. A call starts at the address that last worked; a
failure that says nothing was done there, or that is safe to repeat, moves it to the next
address at once (to the leader a replica names, first), and it backs off only after every
address has failed since the last wait. `RetryPolicy` bounds the rounds as it bounds the
attempts against one broker; a replica that let the deadline pass is not tried again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import grpc

from computenet.address import AddressError, parse_address
from computenet.client._common import RetryPolicy, translate
from computenet.errors import (
    ComputeNetError,
    DeadlineExceededError,
    FieldViolation,
    InvalidArgumentError,
    NotLeaderError,
    UnavailableError,
)
from computenet.status import error_from_rpc_error

# gRPC's own words when the channel could not connect, so the request never left the client.
_NOT_CONNECTED = ("failed to connect to all addresses", "dns resolution failed")


def parse_targets(address: str | Sequence[str]) -> tuple[str, ...]:
    """Validated gRPC targets of `"a:1,b:2"` or `["a:1", "b:2"]`, in order, without repeats.

    Empty items (a trailing comma) are skipped; raises InvalidArgumentError if one is malformed
    or none is left.
    """
    items = address.split(",") if isinstance(address, str) else list(address)
    targets: list[str] = []
    for item in items:
        if not isinstance(item, str):
            detail = f"expected HOST:PORT strings, got {type(item).__name__}"
            raise InvalidArgumentError(detail, [FieldViolation("address", detail)])
        if not item.strip():
            continue
        try:
            target = str(parse_address(item))
        except AddressError as exc:
            raise InvalidArgumentError(str(exc), [FieldViolation("address", str(exc))]) from None
        if target not in targets:
            targets.append(target)
    if not targets:
        detail = "no broker address given; expected HOST:PORT or a comma-separated list"
        raise InvalidArgumentError(detail, [FieldViolation("address", detail)])
    return tuple(targets)


class Action(Enum):
    """What a failed attempt leads to."""

    MOVE = "move"
    """Try the next replica: this one did nothing, or repeating the call is harmless."""
    WAIT = "wait"
    """Wait as the broker asked (a rate limit) and try the same replica again."""
    RAISE = "raise"
    """An answer: give it to the caller."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What the client needs to know of one failed attempt."""

    code: grpc.StatusCode | None
    not_leader: bool = False
    """The replica refused because it does not lead (NotLeaderError): it did nothing."""
    leader_address: str = ""
    """Where it says the leader is; "" if it does not know."""
    retry_after_s: float = 0.0
    """The broker's RetryInfo hint, 0.0 if none."""
    not_connected: bool = False
    """The channel never connected, so the request was never sent."""
    note: str = ""
    """What happened there, in a few words, for the error naming every replica tried."""

    def action(self, policy: RetryPolicy, idempotent: bool) -> Action:
        """MOVE for failures before the broker acted (any call) or that a repeat cannot harm
        (idempotent calls: UNAVAILABLE mid-call, DEADLINE_EXCEEDED); WAIT for a rate limit's
        hint of at most `policy.max_rate_limit_wait_s` (idempotent calls); RAISE otherwise."""
        if self.not_leader or self.not_connected:
            return Action.MOVE
        if idempotent and self.code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ):
            return Action.MOVE
        if (
            idempotent
            and self.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            and 0 < self.retry_after_s <= policy.max_rate_limit_wait_s
        ):
            return Action.WAIT
        return Action.RAISE


def failure_of(err: grpc.RpcError, timeout_s: float | None) -> Failure:
    """The facts of a failed call of either gRPC stack that decide where it goes next."""
    code = getattr(err, "code", lambda: None)()
    exc = error_from_rpc_error(err)
    from_broker = bool(getattr(err, "trailing_metadata", lambda: None)())
    details = (getattr(err, "details", lambda: "")() or "").lower()
    leader = exc.leader_address if isinstance(exc, NotLeaderError) else ""
    return Failure(
        code=code,
        not_leader=isinstance(exc, NotLeaderError),
        leader_address=leader,
        retry_after_s=getattr(exc, "retry_after_s", 0.0),
        not_connected=(
            code == grpc.StatusCode.UNAVAILABLE
            and not from_broker
            and details.startswith(_NOT_CONNECTED)
        ),
        note=_note(exc, from_broker, leader, timeout_s),
    )


def _note(exc: ComputeNetError, from_broker: bool, leader: str, timeout_s: float | None) -> str:
    if isinstance(exc, NotLeaderError):
        return f"not the leader (leader {leader})" if leader else "not the leader (none known)"
    if isinstance(exc, UnavailableError) and not from_broker:
        return "unreachable"
    if isinstance(exc, DeadlineExceededError) and not from_broker and timeout_s is not None:
        return f"no answer within {timeout_s:g} s"
    return f"{exc.message} ({exc.status_code})" if exc.status_code else exc.message


class AddressPool:
    """The replica addresses of one client and the one that last worked (shared by its calls)."""

    def __init__(self, targets: Sequence[str]) -> None:
        self.targets = list(targets)
        self.current = self.targets[0]

    def learn(self, address: str) -> str | None:
        """The target of a leader address a replica named, added to the pool if new; None if
        the address is malformed (a replica's advertised address is not trusted blindly)."""
        try:
            target = str(parse_address(address))
        except AddressError:
            return None
        if target not in self.targets:
            self.targets.append(target)
        return target

    def after(self, target: str) -> list[str]:
        """Every target in order, starting with the one after `target` and ending with it."""
        i = self.targets.index(target) if target in self.targets else -1
        return self.targets[i + 1 :] + self.targets[: i + 1]


class Attempts:
    """The attempts of one call: where the next goes and how long to wait before it."""

    def __init__(self, pool: AddressPool, policy: RetryPolicy, *, idempotent: bool) -> None:
        self.pool = pool
        self.policy = policy
        self.idempotent = idempotent
        self.target = pool.current
        self.notes: dict[str, str] = {}
        """What the last attempt at each target tried met, in order of first try."""
        self.rounds = 0
        self._failed: set[str] = set()  # targets failed since the last wait
        # Targets that let a deadline pass: not tried again by this call, so a frozen replica
        # costs it one timeout, and a lone one fails as it did before there were several.
        self._slow: set[str] = set()

    def succeeded(self) -> None:
        """The attempt at `target` worked: later calls start there."""
        self.pool.current = self.target

    def progressed(self) -> None:
        """A stream delivered something: its failures so far no longer count."""
        self.succeeded()
        self.rounds = 0
        self._failed.clear()

    def failed(self, failure: Failure) -> float | None:
        """Record a failed attempt at `target`; the wait (seconds) before the next one, which
        goes to the updated `target`, or None if the call must give up."""
        self.notes[self.target] = failure.note
        action = failure.action(self.policy, self.idempotent)
        if action is Action.RAISE:
            return None
        if action is Action.WAIT:
            return self._next_round(failure.retry_after_s, then=None)
        self._failed.add(self.target)
        if failure.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            self._slow.add(self.target)
        leader = self.pool.learn(failure.leader_address) if failure.leader_address else None
        if leader is not None and leader not in self._failed | self._slow:
            return self._move_to(leader)
        candidates = [t for t in self.pool.after(self.target) if t not in self._slow]
        if not candidates:
            return None
        untried = [t for t in candidates if t not in self._failed]
        if untried:
            return self._move_to(untried[0])
        return self._next_round(0.0, then=candidates[0])

    def _move_to(self, target: str) -> float:
        self.target = self.pool.current = target
        return 0.0

    def _next_round(self, at_least_s: float, *, then: str | None) -> float | None:
        self.rounds += 1
        if self.rounds >= self.policy.max_attempts:
            return None
        self._failed.clear()
        if then is not None:
            self._move_to(then)
        return max(at_least_s, self.policy.backoff_s(self.rounds))


def give_up_error(
    err: grpc.RpcError, failure: Failure, attempts: Attempts, timeout_s: float | None
) -> ComputeNetError:
    """The typed error a call raises when it gives up after `failure`; if it moved between
    replicas and none served it, the message names every replica tried and what each did."""
    exc = translate(err, attempts.target, timeout_s)
    if len(attempts.notes) < 2 or failure.action(attempts.policy, attempts.idempotent) is (
        Action.RAISE
    ):
        return exc
    tried = "; ".join(f"{target}: {note}" for target, note in attempts.notes.items())
    text = f"no broker replica served the call ({exc.status_code}): {tried}"
    exc.message, exc.args = text, (text,)
    return exc
