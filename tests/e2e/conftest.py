"""Fixtures for end-to-end tests: a broker subprocess on loopback with its database."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.pki import Pki
from tests.support.processes import BrokerProcess, start_broker

BrokerFactory = Callable[..., BrokerProcess]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of each kind the broker supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    return str(request.getfixturevalue("postgres_db_url"))


@pytest.fixture
def broker_factory(tmp_path: Path, pki: Pki) -> Iterator[BrokerFactory]:
    """Starts brokers with TLS and tokens (extra CLI arguments allowed); kills what is left."""
    started: list[subprocess.Popen[str]] = []

    def start(
        *extra: str, db_url: str | None = None, listen: str = "127.0.0.1:0", agent_listen: str = ""
    ) -> BrokerProcess:
        broker = start_broker(
            tmp_path, *extra, db_url=db_url, listen=listen, agent_listen=agent_listen, pki=pki
        )
        started.append(broker.proc)
        return broker

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def agents() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Agent processes a test starts, by site; stopped (woken first if stopped) at the end."""
    running: dict[str, subprocess.Popen[str]] = {}
    yield running
    for proc in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
    for proc in running.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
