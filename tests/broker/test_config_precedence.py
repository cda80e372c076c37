"""Defaults, then the file, then command-line flags; and the settings the broker runs with."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.app import BrokerSettings
from broker.config import BrokerConfig, BrokerConfigError, Override, load_broker_config
from broker.config.settings import broker_settings
from broker.placement import PolicyConfig
from broker.rebalance import RebalanceConfig
from broker.rebalance.service import RebalanceSettings
from broker.security import methods
from broker.security.limits import ServerLimits, server_options
from computenet.address import Address

FILE = """\
listen:
  grpc: 127.0.0.1:6000
  metrics: 127.0.0.1:9464
liveness:
  suspect_after_s: 10
  lease_s: 30
  lost_after_s: 40
placement:
  carbon_price_cny_per_t: 150
  round_budget_s: 0.25
limits:
  submit_rate_per_s: 3
"""

# (case id, file text or None, flags, field path, expected value)
PRECEDENCE: list[tuple[str, str | None, list[Override], tuple[str, ...], Any]] = [
    ("default without file or flag", None, [], ("listen", "grpc"), "127.0.0.1:50051"),
    ("file beats default", FILE, [], ("listen", "grpc"), "127.0.0.1:6000"),
    (
        "flag beats file",
        FILE,
        [Override(("listen", "grpc"), "127.0.0.1:0", "--listen")],
        ("listen", "grpc"),
        "127.0.0.1:0",
    ),
    (
        "flag beats default",
        None,
        [Override(("placement", "round_budget_s"), 2.0, "--x")],
        ("placement", "round_budget_s"),
        2.0,
    ),
    (
        "flag fills a section the file lacks",
        FILE,
        [Override(("rebalance", "holder"), "replica-b", "--broker-id")],
        ("rebalance", "holder"),
        "replica-b",
    ),
    (
        "a flag leaves the rest of its section to the file",
        FILE,
        [Override(("liveness", "lost_after_s"), 50.0, "--lost-after")],
        ("liveness", "suspect_after_s"),
        10.0,
    ),
    (
        "an empty address flag turns the file's endpoint off",
        FILE,
        [Override(("listen", "metrics"), None, "--metrics-listen")],
        ("listen", "metrics"),
        None,
    ),
    ("file keeps what no flag names", FILE, [], ("limits", "submit_rate_per_s"), 3.0),
]


@pytest.mark.parametrize(
    ("text", "flags", "field", "expected"),
    [c[1:] for c in PRECEDENCE],
    ids=[c[0] for c in PRECEDENCE],
)
def test_flags_override_the_file_which_overrides_defaults(
    tmp_path: Path,
    text: str | None,
    flags: list[Override],
    field: tuple[str, ...],
    expected: Any,
) -> None:
    path = None
    if text is not None:
        path = tmp_path / "broker.yaml"
        path.write_text(text)
    value: Any = load_broker_config(path, flags)
    for part in field:
        value = getattr(value, part)
    assert value == expected


def test_a_bad_flag_is_reported_under_the_flag_and_file_problems_at_their_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(FILE + "log_level: loud\n")
    flags = [
        Override(("listen", "grpc"), "nonsense", "--listen"),
        Override(("liveness", "lost_after_s"), 5.0, "--lost-after"),
    ]
    with pytest.raises(BrokerConfigError) as info:
        load_broker_config(path, flags)
    assert [str(i) for i in info.value.issues] == [
        "--listen: invalid address 'nonsense': expected HOST:PORT",
        "--lost-after: must be greater than suspect_after_s (10), got 5",
        f"{path}:13: log_level: must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR' or "
        "'CRITICAL' (got 'loud')",
    ]


def test_a_flag_path_stays_as_given_while_file_paths_follow_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "revoked.yaml").write_text("serials: []\n")
    (tmp_path / "elsewhere.yaml").write_text("serials: []\n")
    path = tmp_path / "conf" / "broker.yaml"
    path.write_text("security:\n  revocations: revoked.yaml\n")
    assert load_broker_config(path).security.revocations == str(tmp_path / "conf/revoked.yaml")
    flag = Override(("security", "revocations"), str(tmp_path / "elsewhere.yaml"), "--revocations")
    overridden = load_broker_config(path, [flag])
    assert overridden.security.revocations == str(tmp_path / "elsewhere.yaml")


def test_the_file_becomes_the_broker_settings(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(FILE)
    settings = broker_settings(load_broker_config(path))
    assert settings.listen == Address("127.0.0.1", 6000)
    assert settings.metrics_listen == Address("127.0.0.1", 9464)
    assert (settings.suspect_after_s, settings.lost_after_s) == (10.0, 40.0)
    assert settings.policy == PolicyConfig(carbon_price_cny_per_t=150.0)
    assert settings.placement_round_budget_s == 0.25
    limits = settings.security.limits
    assert (limits.submit_rate_per_s, limits.submit_burst) == (3.0, 20)
    assert limits.rate_limited_methods == frozenset({methods.SUBMIT_JOB})


def test_defaults_match_the_settings_classes() -> None:
    settings = broker_settings(BrokerConfig())
    plain = BrokerSettings(listen=Address("127.0.0.1", 50051))
    # security differs on purpose: the dataclass defaults to insecure for tests, serve does not
    assert dataclasses.replace(settings, security=plain.security) == plain
    assert settings.security.insecure is False and settings.security.tls_dir is None


def test_a_zero_submission_rate_charges_no_method() -> None:
    config = BrokerConfig.model_validate({"limits": {"submit_rate_per_s": 0}})
    assert broker_settings(config).security.limits.rate_limited_methods == frozenset()


REBALANCE = """\
rebalance:
  every_s: 3600
  crontabs: ["0 3 * * sat,sun"]
  tou_lead_minutes: 15
  misfire_grace_time_s: 120
  jitter_s: 30
  planner:
    max_moves_per_run: 7
    min_gain_cny: 80
"""


def test_the_rebalance_section_becomes_the_rebalancing_settings(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(REBALANCE)
    assert broker_settings(load_broker_config(path)).rebalance == RebalanceSettings(
        every_s=3600.0,
        crontabs=("0 3 * * sat,sun",),
        tou_lead_minutes=15,
        misfire_grace_time_s=120,
        jitter_s=30.0,
        planner=RebalanceConfig(max_moves_per_run=7, min_gain_cny=80.0, run_interval_h=1.0),
    )


@pytest.mark.parametrize(
    ("rebalance", "flags", "run_interval_h"),
    [
        ({}, [], 0.25),
        ({"every_s": 3600}, [], 1.0),
        ({"every_s": 0}, [], 0.25),
        ({"every_s": 3600, "planner": {"run_interval_h": 0.5}}, [], 0.5),
        ({"every_s": 3600}, [Override(("rebalance", "every_s"), 1800.0, "--rebalance-every")], 0.5),
    ],
    ids=["default", "from every_s", "no interval runs", "set in the file", "from the flag"],
)
def test_the_planners_run_interval_follows_every_s_unless_set(
    tmp_path: Path, rebalance: dict[str, Any], flags: list[Override], run_interval_h: float
) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({"rebalance": rebalance}))
    planner = broker_settings(load_broker_config(path, flags)).rebalance.planner
    assert planner.run_interval_h == run_interval_h


def test_the_transport_section_becomes_the_server_limits(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(
        "transport:\n  max_message_bytes: 1048576\n  max_concurrent_streams: 50\n"
        "  max_connection_age_s: 3600\n"
    )
    limits = broker_settings(load_broker_config(path)).transport
    assert limits == ServerLimits(
        max_message_bytes=1_048_576, max_concurrent_streams=50, max_connection_age_s=3600.0
    )
    options = dict(server_options(limits))
    assert options["grpc.max_receive_message_length"] == 1_048_576
    assert options["grpc.max_connection_age_ms"] == 3_600_000
