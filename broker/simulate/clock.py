"""Simulated time: seconds from 00:00 CST of day 0, mapped to CST hours and a Unix epoch."""

from __future__ import annotations

import math

# 2024-01-01 00:00 CST (UTC+8): day 0 of every replay, a fixed date so runs are reproducible.
EPOCH_UNIX_S = 1_704_038_400.0
SECONDS_PER_HOUR = 3600.0
DEFAULT_WINDOW_S = 60.0


def hours_since_day0(t_s: float) -> float:
    """CST hours since 00:00 of day 0 (the energy schedules' time axis, beyond 24 allowed)."""
    return t_s / SECONDS_PER_HOUR


def unix_s(t_s: float) -> float:
    """The Unix time of a simulated instant."""
    return EPOCH_UNIX_S + t_s


def decision_instant(t_s: float, window_s: float) -> float:
    """The decision instant that handles an event at `t_s`: the end of its window."""
    return math.ceil(t_s / window_s) * window_s
