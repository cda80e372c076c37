"""The APScheduler adapter: runs fire, never overlap, restart alike; crontabs and jitter."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from broker.rebalance.schedule import (
    RebalanceScheduleConfig,
    RebalanceScheduler,
    crontab_trigger,
    desired_triggers,
    price_change_hours,
)
from tests.support.waiting import wait_for
from topology import CST, default_topology


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


@pytest.mark.parametrize(
    ("crontab", "fragment"),
    [
        ("* * * *", "expected 5 fields"),
        ("61 * * * *", "higher than the maximum value (59)"),
        ("0 9 * * 1-5", "name the weekdays"),
        ("0 9 * * */2", "name the weekdays"),
        ("0 0 L * *", "invalid crontab"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_a_bad_crontab_is_refused_with_the_reason(crontab: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        crontab_trigger(crontab)
    with pytest.raises(ValueError, match="crontab"):
        RebalanceScheduleConfig(crontabs=(crontab,))


@pytest.mark.parametrize(
    ("crontab", "text"),
    [
        (
            "0 9 * * mon-fri",
            "cron[month='*', day='*', day_of_week='mon-fri', hour='9', minute='0']",
        ),
        (
            "*/15 8-20 * * *",
            "cron[month='*', day='*', day_of_week='*', hour='8-20', minute='*/15']",
        ),
        ("30 2 29 2 SUN", "cron[month='2', day='29', day_of_week='sun', hour='2', minute='30']"),
    ],
)
def test_a_crontab_becomes_a_cst_cron_trigger(crontab: str, text: str) -> None:
    trigger = crontab_trigger(crontab)
    assert str(trigger) == text
    assert trigger.timezone == CST


def test_without_an_interval_only_the_crontabs_are_scheduled() -> None:
    config = RebalanceScheduleConfig(
        name="cron", interval_s=None, tou_triggers=False, crontabs=("0 9 * * mon-fri", "0 0 * * *")
    )
    triggers = desired_triggers(config, default_topology())
    assert {job_id: label for job_id, (label, _) in triggers.items()} == {
        "cron:cron-0": "cron-0",
        "cron:cron-1": "cron-1",
    }


def test_a_jittered_run_records_its_scheduled_fire(schedulers: list[RebalanceScheduler]) -> None:
    fired = threading.Event()
    triggers: list[str] = []
    delays: list[float] = []

    def run(trigger: str) -> None:
        triggers.append(trigger)
        fired.set()

    def delay_s(jitter_s: float) -> float:
        delays.append(jitter_s)
        return jitter_s / 2

    config = RebalanceScheduleConfig(name="jit", interval_s=0.2, tou_triggers=False, jitter_s=0.1)
    scheduler = RebalanceScheduler(config, run, delay_s=delay_s)
    schedulers.append(scheduler)
    scheduler.start()
    assert fired.wait(timeout=5.0)
    scheduler.shutdown()
    assert delays and set(delays) == {0.1}
    fire = triggers[0].partition("@")[2]
    fire_ms = round(
        datetime.strptime(fire, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp() * 1000
    )
    assert fire_ms % 200 == 0  # the delay does not move the fire every replica agrees on


def test_shutdown_cuts_a_jitter_delay_short(schedulers: list[RebalanceScheduler]) -> None:
    waiting = threading.Event()
    runs: list[str] = []

    def delay_s(jitter_s: float) -> float:
        waiting.set()
        return jitter_s  # an hour: only shutdown can end the wait

    config = RebalanceScheduleConfig(
        name="cut", interval_s=0.1, tou_triggers=False, jitter_s=3600, misfire_grace_time_s=7200
    )
    scheduler = RebalanceScheduler(config, runs.append, delay_s=delay_s)
    schedulers.append(scheduler)
    scheduler.start()
    assert waiting.wait(timeout=5.0)
    stopper = threading.Thread(target=scheduler.shutdown)
    stopper.start()
    stopper.join(timeout=30.0)
    assert not stopper.is_alive(), "shutdown waited out the jitter delay"
    assert runs == []


def test_jitter_must_stay_within_the_misfire_grace() -> None:
    with pytest.raises(ValueError, match="must be less than misfire_grace_time_s"):
        RebalanceScheduleConfig(jitter_s=300, misfire_grace_time_s=300)
