"""Hourly power prices in China Standard Time: time-of-use expansion and O(1) energy costs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from topology.model import HOURS_PER_DAY, check_hourly_prices

CST = timezone(timedelta(hours=8), "CST")


def hour_of_day_cst(moment: datetime) -> float:
    """Fractional hour of the day (0 <= h < 24) of an aware datetime in CST (UTC+8)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    local = moment.astimezone(CST)
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return seconds / 3600.0


def expand_bands(
    base_cny_per_kwh: float, bands: Sequence[tuple[int, int, float]]
) -> tuple[float, ...]:
    """Expand time-of-use bands into 24 hourly prices.

    Each band is `(start_hour, end_hour, multiplier)` covering hours `start <= h < end`; a band with
    `start > end` wraps past midnight. Hours in no band are priced at the base (flat) price. Bands
    must not overlap.
    """
    multipliers: list[float | None] = [None] * HOURS_PER_DAY
    for start, end, multiplier in bands:
        if not (0 <= start < HOURS_PER_DAY and 0 < end <= HOURS_PER_DAY) or start == end:
            raise ValueError(
                f"band hours must be 0 <= start, end <= 24, start != end (got {start}-{end})"
            )
        hours = range(start, end) if start < end else [*range(start, 24), *range(0, end)]
        for hour in hours:
            if multipliers[hour] is not None:
                raise ValueError(f"bands overlap at hour {hour}")
            multipliers[hour] = multiplier
    return check_hourly_prices([base_cny_per_kwh * (1.0 if m is None else m) for m in multipliers])


class PriceSchedule:
    """A 24-hour price schedule with prefix sums, so any window integrates in O(1)."""

    __slots__ = ("_daily_total", "_hourly", "_prefix")

    def __init__(self, hourly_cny_per_kwh: Sequence[float]) -> None:
        self._hourly = check_hourly_prices(list(hourly_cny_per_kwh))
        prefix = [0.0]
        for price in self._hourly:
            prefix.append(prefix[-1] + price)
        self._prefix = tuple(prefix)
        self._daily_total = prefix[-1]

    @property
    def hourly_cny_per_kwh(self) -> tuple[float, ...]:
        """The 24 hourly prices."""
        return self._hourly

    @property
    def mean_cny_per_kwh(self) -> float:
        """Daily mean price."""
        return self._daily_total / HOURS_PER_DAY

    def at(self, hour_of_day: float) -> float:
        """Price in force at that (fractional, wrapped modulo 24) hour of the day."""
        return self._hourly[math.floor(hour_of_day) % HOURS_PER_DAY]

    def cumulative(self, hour: float) -> float:
        """Integral of the price (CNY/kWh x h) from hour 0 of day 0 to any real `hour`."""
        days, rest = divmod(hour, HOURS_PER_DAY)
        whole = int(rest)
        if whole >= HOURS_PER_DAY:  # rest can round up to exactly 24.0
            return (days + 1) * self._daily_total
        partial = (rest - whole) * self._hourly[whole]
        return days * self._daily_total + self._prefix[whole] + partial

    def energy_cost_cny(self, power_kw: float, start_hour: float, hours: float) -> float:
        """CNY to draw `power_kw` for `hours` from `start_hour` (CST hour, may exceed 24)."""
        if hours < 0:
            raise ValueError(f"hours must be >= 0 (got {hours})")
        if power_kw < 0:
            raise ValueError(f"power_kw must be >= 0 (got {power_kw})")
        return power_kw * (self.cumulative(start_hour + hours) - self.cumulative(start_hour))
