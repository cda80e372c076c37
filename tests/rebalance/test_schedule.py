"""The APScheduler adapter: interval runs fire, never overlap, and restart at the same times."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from broker.rebalance.schedule import (
    RebalanceScheduleConfig,
    RebalanceScheduler,
    desired_triggers,
    price_change_hours,
)
from tests.support.waiting import wait_for
from topology import default_topology


@pytest.fixture
def schedulers() -> Iterator[list[RebalanceScheduler]]:
    started: list[RebalanceScheduler] = []
    yield started
    for scheduler in started:
        scheduler.shutdown(wait=False)


def test_interval_job_fires(schedulers: list[RebalanceScheduler]) -> None:
    fired = threading.Event()
    triggers: list[str] = []

    def run(trigger: str) -> None:
        triggers.append(trigger)
        fired.set()

    config = RebalanceScheduleConfig(name="fires", interval_s=0.2, tou_triggers=False)
    scheduler = RebalanceScheduler(config, run)
    schedulers.append(scheduler)
    scheduler.start()
    scheduler.start()  # idempotent
    assert fired.wait(timeout=5.0)
    label, _, fire = triggers[0].partition("@")
    assert label == "interval"
    fire_ms = round(
        datetime.strptime(fire, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp() * 1000
    )
    assert fire_ms % 200 == 0  # fire times are aligned, so every replica computes the same ones
    scheduler.shutdown()
    scheduler.shutdown()  # idempotent
    assert not scheduler.running


def test_a_slow_run_does_not_overlap_the_next(
    schedulers: list[RebalanceScheduler], caplog: pytest.LogCaptureFixture
) -> None:
    lock = threading.Lock()
    active, peak, finished = [0], [0], [0]
    release = threading.Event()

    def slow(trigger: str) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        release.wait(timeout=60)  # the run lasts until a later fire has come due
        with lock:
            active[0] -= 1
            finished[0] += 1

    def fire_skipped() -> bool:
        return any("maximum number of running instances" in r.getMessage() for r in caplog.records)

    caplog.set_level(logging.WARNING, logger="apscheduler")
    config = RebalanceScheduleConfig(
        name="slow", interval_s=0.1, tou_triggers=False, crontabs=("* * * * *",)
    )
    scheduler = RebalanceScheduler(config, slow)
    schedulers.append(scheduler)
    scheduler.start()
    wait_for(fire_skipped, what="a fire coming due while a run is in progress")
    release.set()
    wait_for(lambda: finished[0] >= 2, what="the next run")
    scheduler.shutdown(wait=True)
    assert peak[0] == 1


def test_a_restarted_scheduler_fires_at_the_same_times(
    schedulers: list[RebalanceScheduler],
) -> None:
    config = RebalanceScheduleConfig(name="restart", interval_s=3600.0)
    first = RebalanceScheduler(config, lambda trigger: None, topology=default_topology())
    schedulers.append(first)
    first.start()
    before = first.jobs()
    first.shutdown()

    second = RebalanceScheduler(config, lambda trigger: None, topology=default_topology())
    schedulers.append(second)
    second.start()
    assert second.jobs() == before  # same jobs and next fire times, derived from the config
    assert {r.trigger for r in before} >= {"interval", "tou-0800", "tou-1000"}
    second.shutdown()

    changed = config.model_copy(update={"interval_s": 1800.0, "tou_triggers": False})
    third = RebalanceScheduler(changed, lambda trigger: None)
    schedulers.append(third)
    third.start()
    jobs = third.jobs()
    assert [r.trigger for r in jobs] == ["interval"]
    assert jobs[0].next_run_unix_s is not None
    assert jobs[0].next_run_unix_s < time.time() + 1800.5


def test_price_change_triggers_start_before_each_change() -> None:
    hours = price_change_hours(default_topology())
    assert {0, 8, 10, 12, 14, 19} <= set(hours)
    config = RebalanceScheduleConfig(name="tou", tou_lead_minutes=5)
    triggers = desired_triggers(config, default_topology())
    assert str(triggers["tou:tou-0800"][1]) == "cron[hour='7', minute='55']"
    assert str(triggers["tou:tou-0000"][1]) == "cron[hour='23', minute='55']"
