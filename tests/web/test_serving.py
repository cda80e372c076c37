"""Where and how the console serves: HTTPS with the broker's certificate and Secure cookies when
TLS is on, loopback only without TLS, and no login when the broker asks for no token."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from broker.app import Broker
from broker.config import load_broker_config
from broker.config.settings import broker_settings
from broker.web.server import ConsoleListenError, console_tls
from computenet.address import Address
from located_yaml import Override
from tests.support.pki import Pki
from tests.web.conftest import start_console
from tests.web.forms import login


def test_without_tls_only_loopback_is_allowed(tmp_path: Path) -> None:
    assert console_tls(Address("127.0.0.1", 0), None) is None
    assert console_tls(Address("localhost", 8080), None) is None
    assert console_tls(Address("::1", 0), None) is None
    for host in ("0.0.0.0", "192.0.2.7", "example.org"):
        with pytest.raises(ConsoleListenError, match="only on loopback"):
            console_tls(Address(host, 8080), None)
    tls = console_tls(Address("0.0.0.0", 8443), tmp_path)
    assert tls is not None and tls.cert.parent == tmp_path


def test_serve_refuses_a_plaintext_console_off_loopback(tmp_path: Path) -> None:
    serve = [sys.executable, "-m", "broker", "serve", "--insecure", "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        [*serve, "--db", f"sqlite:///{tmp_path / 'b.db'}", "--http-listen", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "web console serves plaintext only on loopback" in done.stderr


def test_an_insecure_broker_without_tokens_asks_for_no_login(tmp_path: Path) -> None:
    console = start_console(tmp_path)
    try:
        with httpx.Client(base_url=console.url, timeout=20) as http:
            for path in ("/", "/sites", "/jobs", "/queue", "/rebalance"):
                answer = http.get(path)
                assert answer.status_code == 200, path
                assert "anonymous" in answer.text
                assert "Sign out" not in answer.text
    finally:
        console.stop()


def test_with_tls_the_console_is_https_with_secure_cookies(tmp_path: Path, pki: Pki) -> None:
    console = start_console(tmp_path, pki=pki)
    try:
        assert console.url.startswith("https://")
        with console.http() as http:
            answer = login(http, console.tokens["operator"])
            assert answer.status_code == 303
            cookie = answer.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
            assert http.get("/sites").status_code == 200
        plain = console.url.replace("https://", "http://")
        with httpx.Client(timeout=10) as http, pytest.raises(httpx.HTTPError):
            http.get(plain + "/login")
        with httpx.Client(timeout=10, verify=True) as http, pytest.raises(httpx.ConnectError):
            http.get(console.url + "/login")  # the test CA is not a public one
    finally:
        console.stop()


def test_the_config_files_listen_http_serves_the_console_in_process(tmp_path: Path) -> None:
    """`listen.http` reaches the broker: the console serves from the broker's own event loop."""
    path = tmp_path / "broker.yaml"
    path.write_text(
        "listen:\n  grpc: 127.0.0.1:0\n  http: 127.0.0.1:0\n"
        f"store:\n  url: sqlite:///{tmp_path / 'broker.db'}\n"
        "rebalance:\n  every_s: 0\nsecurity:\n  insecure: true\n"
    )
    settings = broker_settings(load_broker_config(path))
    assert settings.http_listen == Address("127.0.0.1", 0)

    async def main() -> None:
        broker = Broker(settings)
        await broker.start()
        try:
            assert broker.console is not None
            async with httpx.AsyncClient(base_url=broker.console.url, timeout=20) as http:
                answer = await http.get("/sites")
                assert answer.status_code == 200
                assert answer.text.count('class="site-row"') == len(broker.topology.sites)
        finally:
            await broker.stop()

    asyncio.run(main())
    empty = load_broker_config(path, [Override(("listen", "http"), None, "--http-listen")])
    assert broker_settings(empty).http_listen is None
