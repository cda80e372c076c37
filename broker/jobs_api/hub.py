"""Wakes watchers when new job events are committed, so watch streams need not poll."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from computenet.types import JobEvent


class EventHub:
    """Tracks the highest committed sequence number and wakes those waiting beyond it."""

    def __init__(self, last_sequence: int = 0) -> None:
        self.last_sequence = last_sequence
        self._changed = asyncio.Event()

    def publish(self, events: Sequence[JobEvent]) -> None:
        """Record newly committed events (called on the event loop)."""
        if not events:
            return
        self.last_sequence = max(self.last_sequence, max(e.sequence for e in events))
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_beyond(self, sequence: int, timeout_s: float) -> bool:
        """Wait until an event newer than `sequence` exists; False on timeout."""
        if self.last_sequence > sequence:
            return True
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout_s)
        except TimeoutError:
            return self.last_sequence > sequence
        return True
