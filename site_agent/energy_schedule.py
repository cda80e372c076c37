"""A site's power price and carbon intensity by hour of day, read from a YAML or CSV file.

Hours are China Standard Time (UTC+8, no daylight saving), as the topology's tariffs are.
YAML: `price_cny_per_kwh` and optionally `carbon_kg_per_kwh`, each one number (flat) or 24
numbers (hour 0 first). CSV: a header `hour,price_cny_per_kwh[,carbon_kg_per_kwh]` and one row
for each hour 0-23. Every figure must be positive: 0 on the wire means "unknown".
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HOURS_PER_DAY = 24
SECONDS_PER_HOUR = 3600.0
CST_OFFSET_HOURS = 8.0
MAX_PRICE_CNY_PER_KWH = 100.0
MAX_CARBON_KG_PER_KWH = 2.0
PRICE = "price_cny_per_kwh"
CARBON = "carbon_kg_per_kwh"


class ScheduleError(ValueError):
    """The schedule file cannot be read or is invalid; the message names the file and field."""


@dataclass(frozen=True, slots=True)
class EnergyReading:
    """A price and a carbon factor to report now; 0 means unknown (the broker uses its own)."""

    price_cny_per_kwh: float = 0.0
    carbon_kg_per_kwh: float = 0.0


@dataclass(frozen=True, slots=True)
class EnergySchedule:
    """24 hourly prices (CNY/kWh) and, if given, 24 hourly carbon factors (kgCO2/kWh)."""

    price_cny_per_kwh: tuple[float, ...]
    carbon_kg_per_kwh: tuple[float, ...] | None = None

    def at(self, unix_s: float) -> EnergyReading:
        """The reading for the CST hour of day that contains `unix_s`."""
        hour = int((unix_s / SECONDS_PER_HOUR + CST_OFFSET_HOURS) % HOURS_PER_DAY)
        hour = min(hour, HOURS_PER_DAY - 1)  # the modulo of a float can round up to 24
        carbon = self.carbon_kg_per_kwh[hour] if self.carbon_kg_per_kwh else 0.0
        return EnergyReading(self.price_cny_per_kwh[hour], carbon)


def load_schedule(path: Path) -> EnergySchedule:
    """Read a schedule file (CSV by its `.csv` suffix, else YAML); raise ScheduleError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScheduleError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        return _from_csv(text, str(path))
    return _from_yaml(text, str(path))


def _from_yaml(text: str, name: str) -> EnergySchedule:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ScheduleError(f"{name}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ScheduleError(f"{name}: expected a mapping with `{PRICE}`")
    unknown = sorted(str(k) for k in data if k not in (PRICE, CARBON))
    if unknown:
        raise ScheduleError(f"{name}: {unknown[0]}: unknown key (expected {PRICE}, {CARBON})")
    if PRICE not in data:
        raise ScheduleError(f"{name}: {PRICE}: is required")
    prices = _hourly(data[PRICE], f"{name}: {PRICE}", MAX_PRICE_CNY_PER_KWH)
    carbon = data.get(CARBON)
    factors = (
        None if carbon is None else _hourly(carbon, f"{name}: {CARBON}", MAX_CARBON_KG_PER_KWH)
    )
    return EnergySchedule(prices, factors)


def _hourly(value: Any, where: str, ceiling: float) -> tuple[float, ...]:
    """One number (all day) or 24 numbers, each positive and at most `ceiling`."""
    values = value if isinstance(value, list) else [value]
    if len(values) not in (1, HOURS_PER_DAY):
        raise ScheduleError(f"{where}: must be one number or {HOURS_PER_DAY} (got {len(values)})")
    checked = [
        _figure(v, f"{where}[{h}]" if len(values) > 1 else where, ceiling)
        for h, v in enumerate(values)
    ]
    return tuple(checked * HOURS_PER_DAY if len(checked) == 1 else checked)


def _figure(value: Any, where: str, ceiling: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ScheduleError(f"{where}: must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ScheduleError(f"{where}: must be a number (got {value!r})") from None
    if not math.isfinite(number) or number <= 0 or number > ceiling:
        raise ScheduleError(f"{where}: must be above 0 and at most {ceiling:g} (got {value})")
    return number


def _from_csv(text: str, name: str) -> EnergySchedule:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or ()]
    if "hour" not in columns or PRICE not in columns:
        raise ScheduleError(f"{name}:1: header must name `hour` and `{PRICE}` (got {columns})")
    unknown = [c for c in columns if c not in ("hour", PRICE, CARBON)]
    if unknown:
        raise ScheduleError(f"{name}:1: {unknown[0]}: unknown column")
    prices: dict[int, float] = {}
    carbon: dict[int, float] = {}
    for row in reader:
        line = reader.line_num
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        hour = _hour(cells.get("hour", ""), f"{name}:{line}: hour")
        if hour in prices:
            raise ScheduleError(f"{name}:{line}: hour: {hour} is given twice")
        prices[hour] = _figure(
            cells.get(PRICE, ""), f"{name}:{line}: {PRICE}", MAX_PRICE_CNY_PER_KWH
        )
        if cells.get(CARBON):
            carbon[hour] = _figure(cells[CARBON], f"{name}:{line}: {CARBON}", MAX_CARBON_KG_PER_KWH)
    missing = [h for h in range(HOURS_PER_DAY) if h not in prices]
    if missing:
        raise ScheduleError(f"{name}: hour: no row for hour {missing[0]} (need 0-23)")
    if carbon and len(carbon) != HOURS_PER_DAY:
        gap = next(h for h in range(HOURS_PER_DAY) if h not in carbon)
        raise ScheduleError(f"{name}: {CARBON}: no value for hour {gap} (give all or none)")
    by_hour = range(HOURS_PER_DAY)
    return EnergySchedule(
        tuple(prices[h] for h in by_hour), tuple(carbon[h] for h in by_hour) if carbon else None
    )


def _hour(text: str, where: str) -> int:
    try:
        hour = int(text)
    except ValueError:
        raise ScheduleError(f"{where}: must be a whole hour 0-23 (got {text!r})") from None
    if not 0 <= hour < HOURS_PER_DAY:
        raise ScheduleError(f"{where}: must be a whole hour 0-23 (got {hour})")
    return hour
