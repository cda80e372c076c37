"""The broker's rebalancing settings reach the schedule it builds and the planner it runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from broker.rebalance import RebalanceConfig
from broker.rebalance.live import LiveRebalance
from broker.rebalance.schedule import desired_triggers
from broker.rebalance.service import RebalanceService, RebalanceSettings, schedule_config
from broker.store import open_rebalance_store
from topology import default_topology

TRIGGERS = RebalanceSettings(
    every_s=600.0,
    tou_lead_minutes=10,
    crontabs=("0 9 * * mon-fri",),
    jitter_s=30.0,
    misfire_grace_time_s=120,
)


def _labels(settings: RebalanceSettings) -> set[str]:
    schedule = schedule_config(settings, "b")
    if not schedule.enabled:
        return set()
    return {label for label, _ in desired_triggers(schedule, default_topology()).values()}


def test_the_schedule_carries_every_trigger_setting() -> None:
    schedule = schedule_config(TRIGGERS, "b")
    assert (schedule.interval_s, schedule.tou_lead_minutes) == (600.0, 10)
    assert (schedule.jitter_s, schedule.misfire_grace_time_s) == (30.0, 120)
    triggers = desired_triggers(schedule, default_topology())
    assert str(triggers["b:cron-0"][1]) == (
        "cron[month='*', day='*', day_of_week='mon-fri', hour='9', minute='0']"
    )
    assert str(triggers["b:tou-0800"][1]) == "cron[hour='7', minute='50']"


@pytest.mark.parametrize(
    ("settings", "labels"),
    [
        (RebalanceSettings(every_s=0), set()),
        (RebalanceSettings(every_s=0, crontabs=("0 3 * * *",)), {"cron-0"}),
        (RebalanceSettings(tou_triggers=False), {"interval"}),
        (
            RebalanceSettings(tou_triggers=False, crontabs=("0 3 * * *", "30 * * * sat,sun")),
            {"interval", "cron-0", "cron-1"},
        ),
    ],
    ids=["off", "crontabs alone", "interval alone", "interval and crontabs"],
)
def test_every_s_zero_turns_interval_and_tou_runs_off_but_not_crontabs(
    settings: RebalanceSettings, labels: set[str]
) -> None:
    assert _labels(settings) == labels


def test_the_job_ids_fit_the_schedule_name_limit() -> None:
    assert len(schedule_config(RebalanceSettings(), "r" * 100).name) == 64


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RebalanceService]:
    live = SimpleNamespace(load_input=lambda history: None, apply_step=lambda step, token: None)
    built = RebalanceService(
        store=open_rebalance_store(f"sqlite:///{tmp_path / 'broker.db'}"),
        live=cast(LiveRebalance, live),
        topology=default_topology(),
        settings=RebalanceSettings(
            every_s=0, crontabs=("15 4 * * *",), planner=RebalanceConfig(max_moves_per_run=3)
        ),
    )
    yield built
    built.shutdown()


def test_the_service_schedules_the_configured_crontab(service: RebalanceService) -> None:
    service.scheduler.start()
    jobs = service.scheduler.jobs()
    assert [job.trigger for job in jobs] == ["cron-0"]
    assert jobs[0].next_run_unix_s is not None


def test_the_service_plans_with_the_planner_settings(service: RebalanceService) -> None:
    assert service.runner.config == RebalanceConfig(max_moves_per_run=3)
