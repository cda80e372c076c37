"""Bounded waits for a condition to hold, for tests that must not sleep and hope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.1


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = POLL_INTERVAL_S,
    what: str = "the condition",
) -> T:
    """Poll `predicate` until it returns something truthy and return that; fail after a deadline.

    The deadline only bounds a test that would otherwise hang: nothing is asserted about how
    long the wait took.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


async def wait_for_async(
    predicate: Callable[[], T],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = POLL_INTERVAL_S,
    what: str = "the condition",
) -> T:
    """`wait_for` for asyncio tests: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(interval_s)
