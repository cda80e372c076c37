"""What a config file sets reaches the part of the broker that uses it, not just the settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.app import Broker
from broker.config import load_broker_config
from broker.config.settings import broker_settings

CONFIG = """\
store:
  url: sqlite:///{db}
rebalance:
  every_s: 0              # no interval or time-of-use runs: only the crontab
  crontabs: ["15 4 * * mon-fri"]
  jitter_s: 20
  planner:
    max_moves_per_run: 3
    min_gain_cny: 75
security:
  insecure: true
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker built (not started) from the config file."""
    path = tmp_path / "broker.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "broker.db"))
    built = Broker(broker_settings(load_broker_config(path)))
    yield built
    built.rebalance.shutdown()
    built.writer.close()


def test_the_crontab_is_what_the_broker_schedules(broker: Broker) -> None:
    scheduler = broker.rebalance.scheduler
    assert scheduler.config.jitter_s == 20.0
    scheduler.start()
    jobs = scheduler.jobs()
    assert [job.trigger for job in jobs] == ["cron-0"]
    assert jobs[0].next_run_unix_s is not None


def test_the_planner_rules_are_what_the_broker_plans_with(broker: Broker) -> None:
    config = broker.rebalance.runner.config
    assert (config.max_moves_per_run, config.min_gain_cny) == (3, 75.0)
