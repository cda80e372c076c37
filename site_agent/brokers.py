"""Which broker replica the agent dials next: its list in turn, a named leader first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    """Where the next try goes, and whether to wait the backoff before it."""

    target: str
    backoff: bool


class BrokerRotation:
    """Walks the configured addresses in turn; a leader hint is tried next, once.

    A round is every configured address failing once. The backoff is waited only between rounds,
    so moving from a dead or following replica to the next costs no wait. Hints are bounded: only
    the latest is kept (it is tried at once), and at most one hint try per configured address is
    made in a round, so replicas naming each other cannot keep the agent from backing off.
    """

    def __init__(self, addresses: Sequence[str]) -> None:
        if not addresses:
            raise ValueError("at least one broker address is required")
        self.addresses = tuple(addresses)
        self.target = self.addresses[0]
        """The address being tried now."""
        self._next = 1 % len(self.addresses)
        self._target_is_hint = False
        self._list_failures = 0
        self._hint_tries = 0

    def welcomed(self) -> None:
        """The broker at `target` welcomed the agent: a new round starts."""
        self._list_failures = 0
        self._hint_tries = 0

    def retry(self) -> Step:
        """Try `target` again after the backoff (its stream ended, but not for lack of leading)."""
        self.welcomed()
        return Step(self.target, backoff=True)

    def failed(self, leader_hint: str = "") -> Step:
        """The try at `target` failed; `leader_hint` is the leader it named ("" if none)."""
        if not self._target_is_hint:
            self._list_failures += 1
        hint = leader_hint.strip()
        if hint and hint != self.target and self._hint_tries < len(self.addresses):
            self._hint_tries += 1
            self.target, self._target_is_hint = hint, True
            return Step(hint, backoff=False)
        backoff = self._list_failures >= len(self.addresses)
        if backoff:
            self._list_failures = 0
            self._hint_tries = 0
        self.target, self._target_is_hint = self.addresses[self._next], False
        self._next = (self._next + 1) % len(self.addresses)
        return Step(self.target, backoff)
