"""Connected agent sessions and what the broker owes each: dispatches, cancels, drains, acks.

Deliveries carry an id; the agent acknowledges each once it is durable on its side. Anything
unacknowledged when a stream breaks is derived again from the store at the next hello, so the
session only needs to remember what is in flight on the current stream.
"""

from __future__ import annotations

import asyncio
import itertools

from computenet.site_messages import Ack, CancelAttempt, Dispatch, Drain, LeaseRenewal
from computenet.types import SiteId

# What the broker sends an agent are the Connect stream's own messages; the names say which
# way they go.
OutDispatch = Dispatch
"""Run this attempt."""
OutCancel = CancelAttempt
"""Stop this attempt."""
OutDrain = Drain
"""Stop (or resume) taking new work."""
OutAck = Ack
"""A job event report is durable at the broker."""

Outbound = Dispatch | CancelAttempt | Drain | Ack | LeaseRenewal

_CLOSE = object()


class AgentSession:
    """One connected agent stream."""

    def __init__(self, site_id: SiteId, epoch: str) -> None:
        self.site_id = site_id
        self.epoch = epoch
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._ids = itertools.count(1)
        self.in_flight: dict[int, OutDispatch | OutCancel | OutDrain] = {}

    def next_id(self) -> int:
        """A fresh delivery id."""
        return next(self._ids)

    def send(self, message: Outbound) -> None:
        """Queue a message for the stream; deliveries are remembered until acknowledged."""
        if not isinstance(message, OutAck | LeaseRenewal):
            self.in_flight[message.delivery_id] = message
        self._queue.put_nowait(message)

    def acknowledged(self, delivery_id: int) -> OutDispatch | OutCancel | OutDrain | None:
        """Forget an acknowledged delivery and return it (None if unknown)."""
        return self.in_flight.pop(delivery_id, None)

    def close(self) -> None:
        """End the outbound stream."""
        self._queue.put_nowait(_CLOSE)

    async def next_message(self) -> Outbound | None:
        """The next message to write, or None when the session is closed."""
        item = await self._queue.get()
        return None if item is _CLOSE else item  # type: ignore[return-value]


class SessionTable:
    """The current session of each connected site (a new hello replaces the old one)."""

    def __init__(self) -> None:
        self._by_site: dict[SiteId, AgentSession] = {}

    def open(self, site_id: SiteId, epoch: str) -> AgentSession:
        """Start a session for a site, closing any previous one."""
        old = self._by_site.get(site_id)
        if old is not None:
            old.close()
        session = AgentSession(site_id, epoch)
        self._by_site[site_id] = session
        return session

    def end(self, session: AgentSession) -> bool:
        """Forget the session if it is still the site's current one; True if it was."""
        if self._by_site.get(session.site_id) is session:
            del self._by_site[session.site_id]
            return True
        return False

    def get(self, site_id: SiteId) -> AgentSession | None:
        """The site's current session, if connected."""
        return self._by_site.get(site_id)

    def all(self) -> list[AgentSession]:
        """Every current session."""
        return list(self._by_site.values())
