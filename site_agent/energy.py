"""The live power price and carbon intensity the agent reports with its capacity.

Two sources: a schedule file (re-read when it changes) or a command whose standard output is
one JSON object, e.g. `{"price_cny_per_kwh": 0.31, "carbon_kg_per_kwh": 0.52}` (either key may
be left out). The command runs on its own schedule, never inside a heartbeat: a heartbeat
reports the last reading, and a command that fails or times out is warned about and makes
the reading unknown (0), which the broker reads as "use the topology's figures".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from site_agent.energy_schedule import (
    CARBON,
    MAX_CARBON_KG_PER_KWH,
    MAX_PRICE_CNY_PER_KWH,
    PRICE,
    EnergyReading,
    EnergySchedule,
    ScheduleError,
    load_schedule,
)

log = logging.getLogger(__name__)

UNKNOWN = EnergyReading()
_OUTPUT_LIMIT = 4096  # characters of a command's output worth reading


class EnergyError(RuntimeError):
    """The price command failed, timed out or printed something that is not a reading."""


def parse_reading(text: str) -> EnergyReading:
    """A reading from a command's output: one JSON object with the documented keys."""
    try:
        data = json.loads(text[:_OUTPUT_LIMIT] or "null")
    except json.JSONDecodeError:
        raise EnergyError(f"output is not JSON: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise EnergyError(f"output must be a JSON object with {PRICE} and/or {CARBON}")
    return EnergyReading(
        _field(data, PRICE, MAX_PRICE_CNY_PER_KWH), _field(data, CARBON, MAX_CARBON_KG_PER_KWH)
    )


def _field(data: dict[str, object], key: str, ceiling: float) -> float:
    value = data.get(key, 0.0)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EnergyError(f"{key}: must be a number (got {value!r})")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= ceiling:
        raise EnergyError(f"{key}: must be within 0-{ceiling:g} (got {value})")
    return number


def run_command(argv: Sequence[str], timeout_s: float) -> EnergyReading:
    """Run the price command once (no shell) and parse its output; raise EnergyError."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise EnergyError(f"timed out after {timeout_s:g}s") from None
    except OSError as exc:
        raise EnergyError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        tail = " ".join(done.stderr.split())[-200:]
        raise EnergyError(f"exited with {done.returncode}" + (f": {tail}" if tail else ""))
    return parse_reading(done.stdout)


class EnergyFeed:
    """What the agent reports as its price and carbon now; `current` never blocks.

    From a schedule: the hour's figures, the file re-read when its modification time changes
    (a file that turns invalid is warned about and the last good schedule kept). From a
    command: the last reading `run` took, refreshed every `refresh_s`.
    """

    def __init__(
        self,
        *,
        schedule: Path | None = None,
        command: Sequence[str] | None = None,
        timeout_s: float = 5.0,
        refresh_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (schedule is None) == (command is None):
            raise ValueError("give exactly one of schedule and command")
        self._path = schedule
        self._command = tuple(command or ())
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self._clock = clock
        self._schedule: EnergySchedule | None = None
        self._mtime_ns = -1
        self._reading = UNKNOWN
        self.last_error = ""
        if schedule is not None:
            self._schedule = load_schedule(schedule)  # invalid at start: the caller says so
            self._mtime_ns = _mtime_ns(schedule)

    @property
    def source(self) -> str:
        """`schedule PATH` or `command ARGV0`, for logs and `check`."""
        return f"schedule {self._path}" if self._path else f"command {self._command[0]}"

    def current(self) -> EnergyReading:
        """The reading to put in the next capacity report (zeros when unknown)."""
        if self._path is None:
            return self._reading
        self._reload_if_changed(self._path)
        assert self._schedule is not None
        return self._schedule.at(self._clock())

    def probe(self) -> EnergyReading:
        """Take a reading now (the command runs, bounded by its timeout); raise EnergyError."""
        if self._path is not None:
            return self.current()
        self._reading = run_command(self._command, self.timeout_s)
        return self._reading

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh the command's reading every `refresh_s` until `stop`; nothing for a schedule."""
        if self._path is not None:
            return
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.probe)
            except EnergyError as exc:
                self._failed(str(exc))
            else:
                if self.last_error:
                    log.info("energy command works again source=%s", self.source)
                self.last_error = ""
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_s)

    def _failed(self, error: str) -> None:
        if error != self.last_error:
            log.warning("energy command failing source=%s error=%s", self.source, error)
        self.last_error = error
        self._reading = UNKNOWN

    def _reload_if_changed(self, path: Path) -> None:
        mtime = _mtime_ns(path)
        if mtime == self._mtime_ns:
            return
        self._mtime_ns = mtime
        try:
            self._schedule = load_schedule(path)
        except ScheduleError as exc:
            log.warning("energy schedule invalid, keeping the last one error=%s", exc)
            return
        log.info("energy schedule reloaded path=%s", path)


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1
