"""Agent config loading (errors name file, line and field) and the `computenet-agent` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from site_agent.config import ConfigError, load_config
from tests.site_agent.fake_broker import start_fake_broker

MINIMAL = """\
site: zhangjiakou
broker: 127.0.0.1:50051
capacity: {source: static, pools: [{model: a800, count: 8}], cpu_cores: 64, memory_gb: 512}
executor: {kind: local}
state_dir: ./agent-state
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def agent(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_minimal_config_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert (cfg.site, cfg.broker, cfg.executor.kind) == ("zhangjiakou", "127.0.0.1:50051", "local")
    assert cfg.state_dir == tmp_path / "agent-state"
    assert (cfg.heartbeat_interval_s, cfg.lease_s) == (5.0, 40.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL.replace("source: static", "source: magic"),
            "agent.yaml:3: capacity.source: must be one of static, host, slurm",
        ),
        (MINIMAL.replace("state_dir: ./agent-state\n", ""), "agent.yaml:1: state_dir: is required"),
        (MINIMAL + "colour: red\n", "agent.yaml:6: colour: unknown key"),
        (
            MINIMAL.replace("{kind: local}", "\n  kind: local\n  grace: 3"),
            "agent.yaml:6: executor.grace: unknown key",
        ),
        (
            MINIMAL.replace("127.0.0.1:50051", "nowhere"),
            "agent.yaml:2: broker: invalid address 'nowhere': expected HOST:PORT",
        ),
        (
            MINIMAL.replace("count: 8", "count: -1"),
            "agent.yaml:3: capacity.pools.0.count: Input should be greater than or equal to 0",
        ),
        ("site: [unclosed\n", "agent.yaml:2: not valid YAML"),
        ("- a\n- b\n", "agent.yaml:1: the config must be a mapping"),
    ],
)
def test_config_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(str(tmp_path / message))


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPUTENET_AGENT_BROKER", "127.0.0.1:6000")
    monkeypatch.setenv("COMPUTENET_AGENT_EXECUTOR__CANCEL_GRACE_S", "2")
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.broker == "127.0.0.1:6000"
    assert (cfg.executor.kind, cfg.executor.cancel_grace_s) == ("local", 2.0)
    assert load_config(write(tmp_path, MINIMAL), broker="127.0.0.1:7000").broker == "127.0.0.1:7000"


def test_check_prints_what_it_would_advertise(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    proc = agent("check", "--config", "agent.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    verdicts = {c["name"]: c["verdict"] for c in report.pop("checks")}
    assert verdicts == {
        "config": "PASS",
        "state_dir": "PASS",
        "tls": "PASS",
        "slurm": "SKIP",
        "capacity": "PASS",
        "checkpoints": "SKIP",
        "broker": "SKIP",
    }
    assert report == {
        "site": "zhangjiakou",
        "broker": "127.0.0.1:50051",
        "brokers": ["127.0.0.1:50051"],
        "executor": "local",
        "pools": [{"model": "a800", "total": 8, "allocatable": 8, "in_use": 0}],
        "cpu_cores": 64.0,
        "memory_gb": 512.0,
    }


@pytest.mark.parametrize(
    ("value", "addresses"),
    [
        ("127.0.0.1:50051", ("127.0.0.1:50051",)),
        ('"10.0.0.1:1, 10.0.0.2:2,[::1]:3"', ("10.0.0.1:1", "10.0.0.2:2", "[::1]:3")),
        ("[10.0.0.1:1, b.example:2]", ("10.0.0.1:1", "b.example:2")),
        ("\n  - a.example:1\n  - b.example:2\n  - a.example:1", ("a.example:1", "b.example:2")),
        ('"a.example:1,b.example:2,a.example:1"', ("a.example:1", "b.example:2")),
    ],
)
def test_broker_takes_one_or_several_addresses(
    tmp_path: Path, value: str, addresses: tuple[str, ...]
) -> None:
    cfg = load_config(write(tmp_path, MINIMAL.replace("127.0.0.1:50051", value)))
    assert cfg.brokers == addresses
    assert cfg.broker == ",".join(addresses)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "[a.example:1, nowhere]",
            "agent.yaml:2: broker: entry 2: invalid address 'nowhere': expected HOST:PORT",
        ),
        (
            '"a.example:1,b.example:99999"',
            "agent.yaml:2: broker: entry 2: invalid address 'b.example:99999': "
            "port must be a number from 0 to 65535",
        ),
        ('"a.example:1,,b.example:2"', "agent.yaml:2: broker: entry 2: empty address"),
        ("\n  - a.example:1\n  - 8080", "agent.yaml:2: broker: entry 2: expected a HOST:PORT "),
        ("[]", "agent.yaml:2: broker: at least one broker address HOST:PORT is required"),
        ('""', "agent.yaml:2: broker: at least one broker address HOST:PORT is required"),
        ("{host: a}", "agent.yaml:2: broker: expected HOST:PORT, several separated by commas"),
    ],
)
def test_bad_broker_addresses_are_named(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL.replace("127.0.0.1:50051", value)))
    assert str(info.value).startswith(str(tmp_path / message))


def test_environment_and_command_line_take_a_comma_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPUTENET_AGENT_BROKER", "10.0.0.1:1,10.0.0.2:2")
    assert load_config(write(tmp_path, MINIMAL)).brokers == ("10.0.0.1:1", "10.0.0.2:2")
    overridden = load_config(write(tmp_path, MINIMAL), broker="10.0.0.3:3, 10.0.0.4:4")
    assert overridden.brokers == ("10.0.0.3:3", "10.0.0.4:4")


def test_check_lists_the_broker_addresses_it_would_try(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL.replace("127.0.0.1:50051", "[10.0.0.1:1, 10.0.0.2:2]"))
    as_json = agent("check", "--config", "agent.yaml", "--json", cwd=tmp_path)
    # brokers off this host take agents over mutual TLS only: without a tls section, a FAIL
    assert as_json.stderr == "computenet-agent: error: 1 check failed: tls\n"
    assert json.loads(as_json.stdout)["brokers"] == ["10.0.0.1:1", "10.0.0.2:2"]
    text = agent("check", "--config", "agent.yaml", cwd=tmp_path)
    assert text.returncode == 1
    assert text.stdout.splitlines()[0] == (
        "site zhangjiakou -> brokers 10.0.0.1:1, 10.0.0.2:2, tried in turn (executor local)"
    )
    assert (
        "FAIL  tls          no tls section: a broker off this host accepts agents only over "
        "mutual TLS" in text.stdout.splitlines()
    )


def test_check_connect_needs_one_broker_to_answer(tmp_path: Path) -> None:
    async def main() -> tuple[str, subprocess.CompletedProcess[str]]:
        server, _, address = await start_fake_broker()
        try:
            write(tmp_path, MINIMAL.replace("127.0.0.1:50051", f"127.0.0.1:1,{address}"))
            args = ("check", "-c", "agent.yaml", "--connect", "--timeout", "0.5")
            return address, await asyncio.to_thread(agent, *args, cwd=tmp_path)
        finally:
            await server.stop(None)

    address, proc = asyncio.run(main())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-3:] == [
        "WARN  broker       broker 127.0.0.1:1 unreachable (UNAVAILABLE: Connection refused)",
        f"PASS  broker       {address} answers (an older broker)",  # the double has no Preflight
        "WARN  clock        not checked: the broker does not tell its time",
    ]


def test_check_with_host_probe(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL.replace("source: static", "source: host"))
    proc = agent("check", "-c", "agent.yaml", "--json", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cpu_cores"] >= 1


def test_check_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL.replace("source: static", "source: magic"))
    proc = agent("check", "--config", "agent.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "computenet-agent: error: agent.yaml:3: capacity.source: "
        "must be one of static, host, slurm\n"
    )


def test_check_connect_to_unreachable_broker_fails_clearly(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL.replace("50051", "1"))
    proc = agent("check", "-c", "agent.yaml", "--connect", "--timeout", "0.5", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "computenet-agent: error: 1 check failed: broker\n"
    assert (
        "FAIL  broker       broker 127.0.0.1:1 unreachable (UNAVAILABLE: Connection refused)"
        in proc.stdout.splitlines()
    )


def test_missing_config_file(tmp_path: Path) -> None:
    proc = agent("run", "--config", "nope.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("computenet-agent: error: nope.yaml: cannot read")


def test_checkpoints_store_is_relative_to_the_config_and_grace_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + "checkpoints: {store: ./ckpt}\n"))
    assert cfg.checkpoints is not None and cfg.checkpoints.store == tmp_path / "ckpt"
    assert cfg.checkpoint_grace_s == cfg.executor.cancel_grace_s
    cfg = load_config(write(tmp_path, MINIMAL + "checkpoints: {store: /c, grace_s: 90}\n"))
    assert cfg.checkpoint_grace_s == 90


@pytest.mark.parametrize(
    "section",
    ["checkpoints: {}", "checkpoints: {export_command: 'cp -r {src} {dest}'}"],
)
def test_checkpoints_need_a_store_or_both_commands(tmp_path: Path, section: str) -> None:
    with pytest.raises(ConfigError, match=r"agent\.yaml:6: checkpoints: set store, or both"):
        load_config(write(tmp_path, MINIMAL + section + "\n"))


def test_check_warns_about_a_checkpoint_store_that_is_not_there(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL + f"checkpoints: {{store: {tmp_path / 'nowhere'}}}\n")
    proc = agent("check", "--config", "agent.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    store = tmp_path / "nowhere"
    assert f"WARN  checkpoints  checkpoint store {store} is not a directory" in proc.stdout
    store.mkdir()
    proc = agent("check", "--config", "agent.yaml", cwd=tmp_path)
    assert f"PASS  checkpoints  store {store} is writable" in proc.stdout.splitlines()
