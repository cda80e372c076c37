"""A broker at INFO logs what an operator needs and keeps library internals for DEBUG."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from computenet.logging_setup import configure_logging, library_level, redact_url
from tests.support.processes import start_broker
from tests.support.waiting import wait_for

LIBRARY_LINE = (" alembic.", " apscheduler.", " sqlalchemy.")


def _started_log(tmp_path: Path, *extra: str) -> list[str]:
    """The broker's log lines from start until it serves with its rebalancing scheduler up."""
    broker = start_broker(tmp_path, *extra)
    log = tmp_path / "broker.log"
    try:
        wait_for(
            lambda: (
                "broker serving" in log.read_text()
                and "rebalance scheduler started" in log.read_text()
            ),
            what="the broker's start lines",
        )
    finally:
        broker.proc.terminate()
        try:
            broker.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            broker.proc.kill()
            broker.proc.wait()
    text = log.read_text()
    return text[: text.index("shutting down")].splitlines() if "shutting down" in text else []


def test_default_start_has_no_library_internals(tmp_path: Path) -> None:
    lines = _started_log(tmp_path)
    assert lines, "the broker logged nothing before shutting down"
    noisy = [line for line in lines if any(name in line for name in LIBRARY_LINE)]
    assert noisy == []
    serving = next(line for line in lines if "broker serving" in line)
    assert f"database=sqlite:///{tmp_path / 'broker.db'}" in serving
    assert "topology=default" in serving
    assert "store schema upgraded" in "\n".join(lines)
    assert sum("INSECURE MODE" in line for line in lines) == 1  # said once, not per check


def test_debug_start_shows_library_internals(tmp_path: Path) -> None:
    text = "\n".join(_started_log(tmp_path, "--log-level", "debug"))
    assert " alembic.runtime.migration " in text
    assert 'Added job "interval"' in text


def test_library_loggers_follow_the_process_level() -> None:
    assert library_level(logging.DEBUG) == logging.NOTSET
    assert library_level(logging.INFO) == logging.WARNING
    assert library_level(logging.ERROR) == logging.ERROR
    root = logging.getLogger()
    saved = root.level, {n: logging.getLogger(n).level for n in ("alembic", "apscheduler")}
    try:
        configure_logging("info")
        assert not logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
        assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.WARNING)
        assert logging.getLogger("broker.app").isEnabledFor(logging.INFO)
        configure_logging("DEBUG")
        assert logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.DEBUG)
        with pytest.raises(ValueError, match="unknown log level"):
            configure_logging("chatty")
    finally:
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://cn:s3cret@db:5432/cn", "postgresql+psycopg://cn:***@db:5432/cn"),
        ("postgresql+psycopg://cn@db/cn", "postgresql+psycopg://cn@db/cn"),
        ("sqlite:////var/lib/computenet/broker.db", "sqlite:////var/lib/computenet/broker.db"),
    ],
)
def test_database_urls_are_logged_without_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown
