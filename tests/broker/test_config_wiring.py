"""What a config file sets reaches the part of the broker that uses it, not just the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from broker.app import Broker
from broker.config import load_broker_config
from broker.config.settings import broker_settings

CONFIG = """\
listen:
  grpc: 127.0.0.1:0
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


def _leading(tmp_path: Path, check: Callable[[Broker], None]) -> None:
    """Start a broker from the config file and run `check` on it while it leads."""
    path = tmp_path / "broker.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "broker.db"))

    async def main() -> None:
        broker = Broker(broker_settings(load_broker_config(path)))
        await broker.start()
        try:
            check(broker)
        finally:
            await broker.stop()

    asyncio.run(main())


def test_the_crontab_is_what_the_broker_schedules(tmp_path: Path) -> None:
    def check(broker: Broker) -> None:
        scheduler = broker.rebalance.scheduler
        assert scheduler.config.jitter_s == 20.0
        jobs = scheduler.jobs()
        assert [job.trigger for job in jobs] == ["cron-0"]
        assert jobs[0].next_run_unix_s is not None

    _leading(tmp_path, check)


def test_the_planner_rules_are_what_the_broker_plans_with(tmp_path: Path) -> None:
    def check(broker: Broker) -> None:
        config = broker.rebalance.runner.config
        assert (config.max_moves_per_run, config.min_gain_cny) == (3, 75.0)

    _leading(tmp_path, check)


def test_the_placement_loop_admits_by_the_tenants_of_the_file_as_it_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "broker.yaml"
    base = CONFIG.format(db=tmp_path / "broker.db")
    path.write_text(base + "tenants:\n  lab-a: {quota: {a800: 4}}\n")

    async def main() -> None:
        broker = Broker(broker_settings(load_broker_config(path), path))
        await broker.start()
        try:
            tenants = broker.tenants
            assert broker.placement.tenants_table().policy("lab-a").nominal("a800") == 4
            path.write_text(base + "tenants:\n  lab-a: {quota: {a800: 6}, weight: 3}\n")
            tenants._checked_s -= 60  # as if the check interval had passed
            table = broker.placement.tenants_table()
            assert (table.policy("lab-a").nominal("a800"), table.policy("lab-a").weight) == (6, 3)
        finally:
            await broker.stop()

    asyncio.run(main())
