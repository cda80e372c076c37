"""Fixtures for the web console: a real broker serving it, agents, and headless Chromium."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.security.principal import Role
from broker.security.tokens import add_token
from tests.harness.services import require_service
from tests.support.pki import Pki
from tests.support.processes import BrokerProcess, start_agent, start_broker, wait_for_line

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS_ENV = "COMPUTENET_SCREENSHOTS"
_CONSOLE = re.compile(r"console on (\S+)")
A800 = [{"model": "a800", "count": 8}]


@dataclass
class ConsoleBroker:
    """A broker subprocess serving the console, its tokens and the agents started for it."""

    broker: BrokerProcess
    url: str
    workdir: Path
    tokens: dict[str, str]
    pki: Pki | None = None
    agents: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def start_agent(self, site: str, pools: list[dict[str, object]] | None = None) -> None:
        """A real agent for `site` (mTLS when the broker has TLS)."""
        self.agents[site] = start_agent(
            self.workdir, site, self.broker.agent_address, pools=pools or A800, pki=self.pki
        )

    def http(self) -> httpx.Client:
        """An HTTP client of the console (trusting the test CA over TLS)."""
        verify: Any = (
            ssl.create_default_context(cafile=str(self.pki.ca)) if self.pki is not None else True
        )
        return httpx.Client(base_url=self.url, verify=verify, timeout=20, follow_redirects=False)

    def stop(self) -> None:
        for proc in self.agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.agents.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc = self.broker.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def start_console(
    workdir: Path,
    *extra: str,
    pki: Pki | None = None,
    tokens: dict[str, str] | None = None,
    db_url: str | None = None,
) -> ConsoleBroker:
    """A broker with the console on a free loopback port, its URL read from its output."""
    broker = start_broker(workdir, "--http-listen", "127.0.0.1:0", *extra, pki=pki, db_url=db_url)
    url = wait_for_line(broker.proc, _CONSOLE).group(1)
    return ConsoleBroker(broker, url, workdir, tokens or (pki.tokens if pki else {}), pki)


def plain_tokens(folder: Path) -> tuple[Path, dict[str, str]]:
    """A token file for a broker without TLS: an operator and two users of two tenants."""
    path = folder / "tokens.yaml"
    tokens = {
        "operator": add_token(path, "operator", tenant="ops", role=Role.OPERATOR),
        "alice": add_token(path, "alice", tenant="tenant-a", role=Role.USER),
        "bob": add_token(path, "bob", tenant="tenant-b", role=Role.USER),
    }
    return path, tokens


TENANTS_CONFIG = (
    "tenants:\n"
    "  tenant-a: {weight: 2, quota: {a800: 4}, borrowing_limit: {a800: 4}}\n"
    "  tenant-b: {weight: 1, quota: {a800: 2}, borrowing_limit: {a800: 0}}\n"
)
"""Two configured tenants (alice's and bob's); the operator's tenant is left unlisted."""


def tenants_config(folder: Path, extra: str = "") -> Path:
    """A broker config file naming the tenants of TENANTS_CONFIG (and `extra` YAML)."""
    path = folder / "broker.yaml"
    path.write_text(TENANTS_CONFIG + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def plain_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleBroker]:
    """A broker without TLS (loopback) whose console asks for a token, with tenants."""
    workdir = tmp_path_factory.mktemp("console-plain")
    path, tokens = plain_tokens(workdir)
    config = tenants_config(workdir)
    console = start_console(workdir, "--tokens", str(path), "--config", str(config), tokens=tokens)
    yield console
    console.stop()


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $COMPUTENET_SCREENSHOTS (e.g. docs/images) or a temporary folder."""
    wanted = os.environ.get(SCREENSHOTS_ENV, "").strip()
    if wanted:
        path = Path(wanted)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright (module-scoped: Playwright's sync API
    holds an event loop of its own, kept out of other modules' asyncio tests)."""
    if not Path(CHROMIUM).exists():
        require_service(
            "chromium", f"{CHROMIUM} is missing", install_hint="apt-get install chromium"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("playwright", "not installed", install_hint="pip install playwright")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
