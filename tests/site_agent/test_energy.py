"""Live price and carbon: schedule files, the price command, config checks and the heartbeat."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from site_agent.app import run_agent
from site_agent.config import ConfigError, EnergyConfig, load_config
from site_agent.energy import EnergyError, EnergyFeed, parse_reading
from site_agent.energy_schedule import EnergyReading, ScheduleError, load_schedule
from tests.site_agent.fake_broker import start_fake_broker
from tests.site_agent.test_link import agent_config
from tests.support.waiting import wait_for_async

pytestmark = pytest.mark.timeout(120)

PRICES = [round(0.2 + 0.01 * h, 2) for h in range(24)]
CARBON = [round(0.5 + 0.001 * h, 3) for h in range(24)]


def cst_unix_s(hour: float) -> float:
    """A moment at `hour` China Standard Time (UTC+8) on 1 January 2026."""
    midnight_cst = 1_767_196_800  # 2026-01-01T00:00:00+08:00
    return midnight_cst + hour * 3600


def yaml_schedule(tmp_path: Path, prices: object = PRICES, carbon: object = None) -> Path:
    data: dict[str, object] = {"price_cny_per_kwh": prices}
    if carbon is not None:
        data["carbon_kg_per_kwh"] = carbon
    path = tmp_path / "prices.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def csv_schedule(tmp_path: Path, rows: list[str], header: str = "hour,price_cny_per_kwh") -> Path:
    path = tmp_path / "prices.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_yaml_schedule_reads_the_cst_hour(tmp_path: Path) -> None:
    schedule = load_schedule(yaml_schedule(tmp_path, carbon=CARBON))
    for hour in (0, 7, 13, 23):
        assert schedule.at(cst_unix_s(hour + 0.5)) == EnergyReading(PRICES[hour], CARBON[hour])


def test_flat_yaml_values_hold_all_day(tmp_path: Path) -> None:
    schedule = load_schedule(yaml_schedule(tmp_path, prices=0.42, carbon=0.3))
    assert {schedule.at(cst_unix_s(h)) for h in range(24)} == {EnergyReading(0.42, 0.3)}


def test_csv_schedule_with_and_without_carbon(tmp_path: Path) -> None:
    rows = [f"{h},{PRICES[h]},{CARBON[h]}" for h in reversed(range(24))]  # any row order
    path = csv_schedule(tmp_path, rows, "hour,price_cny_per_kwh,carbon_kg_per_kwh")
    assert load_schedule(path).at(cst_unix_s(9)) == EnergyReading(PRICES[9], CARBON[9])
    path = csv_schedule(tmp_path, [f"{h},{PRICES[h]}" for h in range(24)])
    assert load_schedule(path).at(cst_unix_s(9)) == EnergyReading(PRICES[9], 0.0)


@pytest.mark.parametrize(
    ("kind", "content", "message"),
    [
        ("yaml", {"price_cny_per_kwh": [0.3] * 3}, "price_cny_per_kwh: must be one number or 24"),
        ("yaml", {"price_cny_per_kwh": [0.3] * 23 + [-1]}, "kwh[23]: must be above 0"),
        ("yaml", {"carbon_kg_per_kwh": 0.5}, "price_cny_per_kwh: is required"),
        ("yaml", {"price_cny_per_kwh": 0.3, "carbon_kg_per_kwh": 5}, "carbon_kg_per_kwh: must be"),
        ("yaml", {"price_cny_per_kwh": 0.3, "co2": 1}, "co2: unknown key"),
        ("yaml", {"price_cny_per_kwh": "cheap"}, "price_cny_per_kwh: must be a number"),
        ("csv", [f"{h},0.3" for h in range(23)], "hour: no row for hour 23"),
        ("csv", ["0,0.3", "0,0.4"], ":3: hour: 0 is given twice"),
        ("csv", ["25,0.3"], ":2: hour: must be a whole hour 0-23"),
        ("csv", ["0,free"], ":2: price_cny_per_kwh: must be a number"),
    ],
)
def test_schedule_errors_name_the_file_and_field(
    tmp_path: Path, kind: str, content: object, message: str
) -> None:
    if kind == "yaml":
        assert isinstance(content, dict)
        path = tmp_path / "prices.yaml"
        path.write_text(json.dumps(content))
    else:
        assert isinstance(content, list)
        path = csv_schedule(tmp_path, content)
    with pytest.raises(ScheduleError) as caught:
        load_schedule(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_config_resolves_the_schedule_and_reports_its_errors(tmp_path: Path) -> None:
    yaml_schedule(tmp_path, prices=0.3)
    text = textwrap.dedent(
        """\
        site: zhangjiakou
        broker: 127.0.0.1:50051
        capacity: {source: static, pools: [{model: a800, count: 8}]}
        executor: {kind: local}
        state_dir: ./state
        energy:
          schedule: prices.yaml
        """
    )
    config = tmp_path / "agent.yaml"
    config.write_text(text)
    loaded = load_config(config)
    assert loaded.energy is not None and loaded.energy.schedule == tmp_path / "prices.yaml"
    yaml_schedule(tmp_path, prices=[0.3, 0.4])
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value).startswith(f"{config}:7: energy.schedule: {tmp_path / 'prices.yaml'}")
    config.write_text(text.replace("schedule: prices.yaml", "timeout_s: 3"))
    with pytest.raises(ConfigError, match="energy: set exactly one of schedule and command"):
        load_config(config)


def test_a_command_string_is_split_without_a_shell() -> None:
    energy = EnergyConfig(command="/opt/price-feed --site 'zhang jiakou'")  # type: ignore[arg-type]
    assert energy.command == ["/opt/price-feed", "--site", "zhang jiakou"]


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ('{"price_cny_per_kwh": 0.31, "carbon_kg_per_kwh": 0.52}', EnergyReading(0.31, 0.52)),
        ('{"price_cny_per_kwh": 0.31}', EnergyReading(0.31, 0.0)),
        ('{"carbon_kg_per_kwh": 0.2, "source": "grid"}', EnergyReading(0.0, 0.2)),
    ],
)
def test_command_output_parses(text: str, reading: EnergyReading) -> None:
    assert parse_reading(text) == reading


@pytest.mark.parametrize(
    "text", ["0.31", "not json", '{"price_cny_per_kwh": "x"}', '{"price_cny_per_kwh": -1}']
)
def test_bad_command_output_is_an_error(text: str) -> None:
    with pytest.raises(EnergyError):
        parse_reading(text)


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_failing_or_hanging_command_reports_unknown_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    switch = tmp_path / "price"
    switch.write_text('{"price_cny_per_kwh": 0.31, "carbon_kg_per_kwh": 0.52}')
    code = f"import sys,time,pathlib; t=pathlib.Path({str(switch)!r}).read_text(); " + (
        "time.sleep(30) if t == 'hang' else None; sys.exit(3) if t == 'fail' else print(t)"
    )
    feed = EnergyFeed(command=python_command(code), timeout_s=2.0, refresh_s=0.05)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(feed.run(stop))
        await wait_for_async(lambda: feed.current() == EnergyReading(0.31, 0.52))
        switch.write_text("fail")
        await wait_for_async(lambda: feed.current() == EnergyReading())
        assert "exited with 3" in feed.last_error
        switch.write_text("hang")
        await wait_for_async(lambda: "timed out after 2s" in feed.last_error, timeout_s=30)
        assert feed.current() == EnergyReading()
        switch.write_text('{"price_cny_per_kwh": 0.4}')
        await wait_for_async(lambda: feed.current() == EnergyReading(0.4, 0.0), timeout_s=30)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert any("energy command failing" in r.getMessage() for r in caplog.records)


def test_a_schedule_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = yaml_schedule(tmp_path, prices=0.3)
    feed = EnergyFeed(schedule=path, clock=lambda: cst_unix_s(10))
    assert feed.current() == EnergyReading(0.3, 0.0)
    yaml_schedule(tmp_path, prices=0.5, carbon=0.4)
    os.utime(path, ns=(1, 10**18))  # a different modification time, whatever the clock's step
    assert feed.current() == EnergyReading(0.5, 0.4)
    path.write_text("price_cny_per_kwh: [1, 2]")
    os.utime(path, ns=(1, 2 * 10**18))
    assert feed.current() == EnergyReading(0.5, 0.4)  # invalid now: the last good one stays


def test_heartbeats_carry_the_scheduled_price(tmp_path: Path) -> None:
    """The real agent (static capacity, runtime, link) reports the schedule's figures."""
    path = yaml_schedule(tmp_path, prices=0.31, carbon=0.52)

    async def main() -> None:
        server, fake, address = await start_fake_broker()
        cfg = agent_config(tmp_path / "state", address)
        cfg = cfg.model_copy(update={"energy": EnergyConfig(schedule=path)})
        stop = asyncio.Event()
        agent = asyncio.create_task(run_agent(cfg, stop))
        try:
            session = await fake.next_session()
            await session.next("hello", skip=())
            session.welcome()
            capacity = (await session.next("heartbeat", skip=())).heartbeat.capacity
            assert (capacity.price_cny_per_kwh, capacity.carbon_kg_per_kwh) == (0.31, 0.52)
            assert [(p.model, p.allocatable) for p in capacity.pools] == [("a800", 8)]
        finally:
            stop.set()
            await asyncio.wait_for(agent, 20)
            await server.stop(None)

    asyncio.run(main())


def test_check_shows_what_the_agent_would_report(tmp_path: Path) -> None:
    yaml_schedule(tmp_path, prices=0.31, carbon=0.52)
    config = tmp_path / "agent.yaml"
    base = (
        "site: zhangjiakou\nbroker: 127.0.0.1:50051\n"
        "capacity: {source: static, pools: [{model: a800, count: 8}]}\n"
        "executor: {kind: local}\nstate_dir: ./state\n"
    )
    config.write_text(base + "energy: {schedule: prices.yaml}\n")

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "site_agent", "check", "--config", str(config), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    shown = json.loads(check("--json").stdout)
    assert (shown["price_cny_per_kwh"], shown["carbon_kg_per_kwh"]) == (0.31, 0.52)
    assert "price 0.31 CNY/kWh, carbon 0.52 kgCO2/kWh" in check().stdout
    failing = json.dumps(python_command("import sys; sys.exit(4)"))
    config.write_text(base + f"energy: {{command: {failing}}}\n")
    done = check("--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["price_cny_per_kwh"] == 0.0
    warned = [c for c in report["checks"] if c["name"] == "energy"]
    assert [c["verdict"] for c in warned] == ["WARN"]
    assert "exited with 4; reporting none" in warned[0]["detail"]
