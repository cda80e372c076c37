"""`computenet-broker config check|show` and `serve --config` errors, run as real commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from broker.config import load_broker_config

CUSTOM = """\
listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
liveness:
  suspect_after_s: 5
  lease_s: 15
  lost_after_s: 20.5
placement:
  term_weights: {latency: 2, carbon: 0}
  round_budget_s: 0.2
  batch_wait_model: penalty
rebalance:
  every_s: 0
  holder: replica-a
  crontabs: ["0 3 * * *", "30  12 * * mon-fri"]
  tou_lead_minutes: 10
  misfire_grace_time_s: 600
  jitter_s: 45
  planner:
    max_moves_per_run: 5
    cooldown_s: 0
    forbid_return: false
limits:
  submit_burst: 7
  handler_timeout_s: null
transport:
  max_message_bytes: 1048576
  keepalive_time_s: 30
  max_connection_age_s: 3600
security:
  insecure: true
  revocations: revoked.yaml
log_level: DEBUG
"""

BAD = """\
listen:
  grpc: 127.0.0.1:0
  grcp: 127.0.0.1:1
placement:
  round_budget_s: "0.5"
limits:
  max_streams_per_site: 0
rebalance:
  crontabs: ["0 9 * * 1-5"]
  planner:
    max_moves_per_run: -1
transport:
  max_message_bytes: 1024
"""
BAD_ISSUES = [
    "3: listen.grcp: unknown field",
    "5: placement.round_budget_s: must be a number (got '0.5')",
    "7: limits.max_streams_per_site: must be >= 1 (got 0)",
    "9: rebalance.crontabs[0]: name the weekdays (mon-fri, sun) instead of '1-5': crontab and "
    "the scheduler number them differently",
    "11: rebalance.planner.max_moves_per_run: must be >= 0 (got -1)",
    "13: transport.max_message_bytes: must be >= 65536 (got 1024)",
]


def _broker(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    (folder / "revoked.yaml").write_text("serials: []\n")
    return path


def test_check_accepts_a_valid_file_with_one_line(tmp_path: Path) -> None:
    _write(tmp_path, "broker.yaml", CUSTOM)
    result = _broker("config", "check", "broker.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "broker.yaml: OK\n"


def test_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    _write(tmp_path, "broker.yaml", BAD)
    result = _broker("config", "check", "broker.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"broker.yaml:{issue}" for issue in BAD_ISSUES]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_check_reports_problems_of_the_topology_file_it_names(tmp_path: Path) -> None:
    _write(tmp_path, "topo.yaml", "sites: []\nextra: 1\n")
    _write(tmp_path, "broker.yaml", "topology:\n  path: topo.yaml\n")
    result = _broker("config", "check", "broker.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path / 'topo.yaml'}:2: extra: unknown field" in result.stderr.splitlines()


def test_serve_refuses_a_bad_file_with_every_problem(tmp_path: Path) -> None:
    _write(tmp_path, "broker.yaml", BAD)
    result = _broker("serve", "--config", "broker.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"computenet-broker: error: broker.yaml:{issue}" for issue in BAD_ISSUES
    ]


def test_show_json_written_back_as_yaml_loads_to_the_same_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "broker.yaml", CUSTOM)
    result = _broker("config", "show", "--config", "broker.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown == load_broker_config(path).model_dump(mode="json")
    rebalance = shown["rebalance"]
    assert rebalance["crontabs"] == ["0 3 * * *", "30 12 * * mon-fri"]
    assert (rebalance["tou_lead_minutes"], rebalance["jitter_s"]) == (10, 45)
    assert rebalance["misfire_grace_time_s"] == 600
    assert rebalance["planner"]["max_moves_per_run"] == 5
    assert rebalance["planner"]["run_interval_h"] is None
    assert shown["transport"]["max_message_bytes"] == 1048576
    assert shown["transport"]["max_connection_age_s"] == 3600
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    again = elsewhere / "again.yaml"
    again.write_text(yaml.safe_dump(shown))
    assert load_broker_config(again) == load_broker_config(path)


def test_show_without_json_prints_the_same_settings_as_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "broker.yaml", CUSTOM)
    readable = _broker("config", "show", "--config", "broker.yaml", cwd=tmp_path)
    assert readable.returncode == 0, readable.stderr
    assert readable.stdout.startswith("# effective broker configuration (broker.yaml")
    assert yaml.safe_load(readable.stdout) == load_broker_config(path).model_dump(mode="json")


def test_show_without_a_file_prints_the_defaults(tmp_path: Path) -> None:
    result = _broker("config", "show", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["placement"]["round_budget_s"] == 0.5
    assert shown["liveness"] == {
        "suspect_after_s": 15.0,
        "lease_s": 40.0,
        "clock_skew_margin_s": 5.0,
        "lost_after_s": 60.0,
        "heartbeat_interval_s": 2.0,
        "stale_capacity_after_s": 60.0,
    }
