"""The `tenants` and `tenancy` sections: their form, their checks, and reloading a changed file."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.config import BrokerConfigError, load_broker_config
from broker.config.settings import broker_settings
from broker.config.tenants_file import TenantsFile

ISSUE_FORM = """\
tenants:
  lab-a: {weight: 1, quota: {a800: 4}, borrowing_limit: {a800: 4}}
  lab-b: {weight: 1, quota: {a800: 4}, borrowing_limit: {a800: 0}}
"""

FULL = """\
tenancy:
  unlisted_borrowing_limit: {a800: 2}
  priority_classes: {batch: -10, normal: 0, urgent: 50}
  fair_share_half_life_h: 12
  preemption: {enabled: true, grace_s: 5, budget_per_round: 3}
tenants:
  lab-a: {weight: 2, quota: {a800: 4, h100: 2}, max_priority_class: normal}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_form_loads_into_the_tenants_table(tmp_path: Path) -> None:
    config = load_broker_config(_write(tmp_path / "b.yaml", ISSUE_FORM))
    table = broker_settings(config).tenants
    assert table.policy("lab-a").ceiling("a800") == 8
    assert table.policy("lab-b").ceiling("a800") == 4
    assert table.policy("lab-z").nominal("a800") == 0
    assert table.policy("lab-z").ceiling("a800") is None  # unlisted: borrows idle cards


def test_every_tenancy_rule_reaches_the_table(tmp_path: Path) -> None:
    table = broker_settings(load_broker_config(_write(tmp_path / "b.yaml", FULL))).tenants
    assert table.policy("lab-a").weight == 2 and table.policy("lab-a").nominal("h100") == 2
    assert table.priority("lab-a", 50) == 0  # capped at its class
    assert table.priority("lab-z", 50) == 50
    assert table.unlisted.ceiling("a800") == 2
    assert table.fair_share.half_life_h == 12
    assert (table.preemption.grace_s, table.preemption.budget_per_round) == (5, 3)


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("tenants:\n  lab-a: {weight: 0}\n", "tenants.lab-a.weight", "> 0"),
        ("tenants:\n  lab-a: {quota: {a800: -1}}\n", "tenants.lab-a.quota.a800", ">= 0"),
        ("tenants:\n  lab-a: {quota: {a800: 4}, lend: 1}\n", "tenants.lab-a.lend", "unknown field"),
        (
            "tenants:\n  lab-a: {max_priority_class: vip}\n",
            "tenants",
            "'vip' is not a priority class",
        ),
        ("tenancy:\n  preemption: {grace_s: 0}\n", "tenancy.preemption.grace_s", "> 0"),
    ],
)
def test_bad_entries_are_located(tmp_path: Path, text: str, field: str, words: str) -> None:
    with pytest.raises(BrokerConfigError) as caught:
        load_broker_config(_write(tmp_path / "b.yaml", text))
    issue = next(i for i in caught.value.issues if i.field == field)
    assert words in issue.message and issue.line is not None


def test_config_check_validates_the_tenants(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.yaml", "tenants:\n  lab-a: {weight: -1}\n")
    good = _write(tmp_path / "good.yaml", ISSUE_FORM)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "broker", "config", "check", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    failed = check(bad)
    assert failed.returncode == 2 and "tenants.lab-a.weight" in failed.stderr
    passed = check(good)
    assert passed.returncode == 0 and "OK" in passed.stdout


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_changed_file_takes_effect_and_a_broken_one_keeps_the_last(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "b.yaml", ISSUE_FORM)
    clock = _Clock()
    initial = broker_settings(load_broker_config(path)).tenants
    source = TenantsFile(path, initial, check_every_s=2.0, clock=clock)
    assert source.current().policy("lab-b").nominal("a800") == 4

    _write(
        path, ISSUE_FORM.replace("quota: {a800: 4}, borrowing_limit: {a800: 0}", "quota: {a800: 6}")
    )
    assert source.current().policy("lab-b").nominal("a800") == 4  # not checked yet
    clock.now += 2.0
    assert source.current().policy("lab-b").nominal("a800") == 6

    _write(path, "tenants:\n  lab-b: {weight: nope}\n")
    clock.now += 2.0
    with caplog.at_level(logging.ERROR, logger="broker.config.tenants_file"):
        kept = source.current()
    assert kept.policy("lab-b").nominal("a800") == 6
    assert any("tenants not reloaded" in r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.ERROR for r in caplog.records)
