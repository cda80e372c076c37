"""Every problem in a broker config file is reported with its file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import BrokerConfig, BrokerConfigError, load_broker_config

# (case id, file text, expected (line, field, message fragment) of every issue, in order)
CASES: list[tuple[str, str, list[tuple[int | None, str, str]]]] = [
    ("unknown top-level key", "colour: blue\n", [(1, "colour", "unknown field")]),
    (
        "unknown nested key",
        "placement:\n  carbon_price: 5\n",
        [(2, "placement.carbon_price", "unknown field")],
    ),
    (
        "text for a number",
        "liveness:\n  lease_s: '120'\n",
        [(2, "liveness.lease_s", "must be a number (got '120')")],
    ),
    (
        "boolean for a number",
        "liveness:\n  lease_s: true\n",
        [(2, "liveness.lease_s", "must be a number (got True)")],
    ),
    (
        "number for a boolean",
        "security:\n  insecure: 1\n",
        [(2, "security.insecure", "must be true or false (got 1)")],
    ),
    (
        "fraction for a whole number",
        "limits:\n  max_streams_per_site: 2.5\n",
        [(2, "limits.max_streams_per_site", "must be a whole number (got 2.5)")],
    ),
    ("section not a mapping", "limits: 5\n", [(1, "limits", "must be a mapping (got 5)")]),
    (
        "exponent without a dot is text",
        "placement:\n  carbon_price_cny_per_t: 1e3\n",
        [(2, "placement.carbon_price_cny_per_t", "must be a number (got '1e3')")],
    ),
    (
        "below the range",
        "placement:\n  round_budget_s: 0\n",
        [(2, "placement.round_budget_s", "must be > 0 (got 0)")],
    ),
    (
        "above the range",
        "placement:\n  round_budget_s: 61\n",
        [(2, "placement.round_budget_s", "must be <= 60 (got 61)")],
    ),
    (
        "infinity",
        "limits:\n  handler_timeout_s: .inf\n",
        [(2, "limits.handler_timeout_s", "must be a finite number")],
    ),
    ("unknown literal", "log_level: verbose\n", [(1, "log_level", "must be one of 'DEBUG'")]),
    (
        "bad address",
        "listen:\n  metrics: localhost\n",
        [(2, "listen.metrics", "invalid address 'localhost': expected HOST:PORT")],
    ),
    (
        "unknown cost term",
        "placement:\n  term_weights:\n    wind: 2\n",
        [(2, "placement.term_weights", "unknown cost terms ['wind']")],
    ),
    (
        "lost before suspect, lost_after_s left at its default",
        "liveness:\n  suspect_after_s: 90\n",
        [(1, "liveness.lost_after_s", "must be greater than suspect_after_s (90), got 60")],
    ),
    (
        "a lease that could outlive the lost window, lost_after_s left at its default",
        "liveness:\n  lease_s: 58\n",
        [
            (
                1,
                "liveness.lost_after_s",
                "must be at least lease_s (58) + clock_skew_margin_s (5) = 63, got 60",
            )
        ],
    ),
    (
        "a lease shorter than three heartbeats",
        "liveness:\n  lease_s: 5\n  lost_after_s: 16\n",
        [
            (
                1,
                "liveness.heartbeat_interval_s",
                "lease_s (5) must be at least 3 heartbeat intervals (6)",
            )
        ],
    ),
    (
        "a lost window within lease plus skew margin",
        "liveness:\n  lease_s: 40\n  clock_skew_margin_s: 10\n  lost_after_s: 45\n",
        [(4, "liveness.lost_after_s", "must be at least lease_s (40) + clock_skew_margin_s (10)")],
    ),
    (
        "insecure off loopback",
        "listen:\n  grpc: 0.0.0.0:50051\nsecurity:\n  insecure: true\n",
        [(3, "security", "insecure mode needs a loopback listen.grpc")],
    ),
    (
        "insecure with TLS",
        "security:\n  insecure: true\n  tls_dir: .\n  tokens: broker.yaml\n",
        [(1, "security", "insecure and tls_dir exclude each other")],
    ),
    (
        "crontab with too few fields, at its item's line",
        "rebalance:\n  crontabs:\n    - 0 3 * * *\n    - 0 3 * *\n",
        [(4, "rebalance.crontabs[1]", "expected 5 fields (minute hour day month weekday), got 4")],
    ),
    (
        "crontab with a weekday number",
        "rebalance:\n  crontabs: ['0 9 * * 1-5']\n",
        [(2, "rebalance.crontabs[0]", "name the weekdays (mon-fri, sun) instead of '1-5'")],
    ),
    (
        "crontab out of range",
        "rebalance:\n  crontabs: ['0 24 * * *']\n",
        [(2, "rebalance.crontabs[0]", "invalid crontab '0 24 * * *'")],
    ),
    (
        "crontab that never fires",
        "rebalance:\n  crontabs: ['0 0 30 2 *']\n",
        [(2, "rebalance.crontabs[0]", "never fires")],
    ),
    (
        "crontabs not a list",
        "rebalance:\n  crontabs: '0 3 * * *'\n",
        [(2, "rebalance.crontabs", "must be a list")],
    ),
    (
        "lead past the hour",
        "rebalance:\n  tou_lead_minutes: 60\n",
        [(2, "rebalance.tou_lead_minutes", "must be <= 59 (got 60)")],
    ),
    (
        "jitter outwaiting the misfire grace",
        "rebalance:\n  misfire_grace_time_s: 60\n  jitter_s: 60\n",
        [(3, "rebalance.jitter_s", "must be less than misfire_grace_time_s (60), got 60")],
    ),
    (
        "unknown planner key",
        "rebalance:\n  planner:\n    max_moves: 5\n",
        [(3, "rebalance.planner.max_moves", "unknown field")],
    ),
    (
        "planner value of the wrong type",
        "rebalance:\n  planner:\n    forbid_return: 'no'\n",
        [(3, "rebalance.planner.forbid_return", "must be true or false (got 'no')")],
    ),
    (
        "planner value out of range",
        "rebalance:\n  planner:\n    run_interval_h: 0\n",
        [(3, "rebalance.planner.run_interval_h", "must be > 0 (got 0)")],
    ),
    (
        "message size below the floor",
        "transport:\n  max_message_bytes: 1000\n",
        [(2, "transport.max_message_bytes", "must be >= 65536 (got 1000)")],
    ),
    (
        "message size past gRPC's 32 bits",
        "transport:\n  max_message_bytes: 4294967296\n",
        [(2, "transport.max_message_bytes", "must be <= 2147483647")],
    ),
    (
        "keepalive of text",
        "transport:\n  keepalive_time_s: 20s\n",
        [(2, "transport.keepalive_time_s", "must be a number (got '20s')")],
    ),
    (
        "unknown transport key",
        "transport:\n  max_streams: 10\n",
        [(2, "transport.max_streams", "unknown field")],
    ),
    (
        "missing referenced file",
        "topology:\n  path: nowhere.yaml\n",
        [(2, "topology.path", "no such file: ")],
    ),
    (
        "key given twice",
        "log_level: INFO\nlog_level: DEBUG\n",
        [(2, "log_level", "given twice (first on line 1)")],
    ),
    (
        "YAML syntax error",
        "listen:\n  grpc: [127.0.0.1:0\nstore: {}\n",
        [(3, "", "invalid YAML")],
    ),
    ("top level not a mapping", "- listen\n", [(1, "", "top level must be a mapping")]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_names_file_line_and_field(
    tmp_path: Path, text: str, expected: list[tuple[int | None, str, str]]
) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(text)
    with pytest.raises(BrokerConfigError) as info:
        load_broker_config(path)
    issues = info.value.issues
    assert [(i.file, i.line, i.field) for i in issues] == [
        (str(path), line, field) for line, field, _ in expected
    ]
    for issue, (line, field, fragment) in zip(issues, expected, strict=True):
        assert fragment in issue.message
        head = f"{path}:{line}: {field}: " if field else f"{path}:{line}: "
        assert str(issue).startswith(head)


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(
        "listen:\n"
        "  grpc: nonsense\n"
        "  extra: 1\n"
        "liveness:\n"
        "  lease_s: -1\n"
        "placement:\n"
        "  round_budget_s: fast\n"
        "log_level: loud\n"
    )
    with pytest.raises(BrokerConfigError) as info:
        load_broker_config(path)
    assert [(i.line, i.field) for i in info.value.issues] == [
        (2, "listen.grpc"),
        (3, "listen.extra"),
        (5, "liveness.lease_s"),
        (7, "placement.round_budget_s"),
        (8, "log_level"),
    ]


def test_a_missing_file_is_one_issue(tmp_path: Path) -> None:
    with pytest.raises(BrokerConfigError) as info:
        load_broker_config(tmp_path / "absent.yaml")
    assert [str(i) for i in info.value.issues] == [f"{tmp_path / 'absent.yaml'}: no such file"]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_file_is_all_defaults(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(text)
    assert load_broker_config(path) == BrokerConfig()


def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path: Path) -> None:
    (tmp_path / "conf" / "pki").mkdir(parents=True)
    (tmp_path / "conf" / "tokens.yaml").write_text("tokens: []\n")
    path = tmp_path / "conf" / "broker.yaml"
    path.write_text("security:\n  tls_dir: pki\n  tokens: tokens.yaml\n")
    config = load_broker_config(path)
    assert config.security.tls_dir == str(tmp_path / "conf" / "pki")
    assert config.security.tokens == str(tmp_path / "conf" / "tokens.yaml")
