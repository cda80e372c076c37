"""Serves the console inside the broker's event loop: uvicorn on a socket bound here, over the
broker's TLS certificate when TLS is on, and only on loopback without it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from broker.security.certs import CaLayout
from broker.security.setup import SecurityConfigError
from broker.security.transport import is_loopback
from broker.web.app import console_app
from broker.web.context import ConsoleServices
from computenet.address import Address

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 2.0


class ConsoleListenError(SecurityConfigError):
    """The console cannot serve where it was asked to (a usage error, like TLS settings)."""


@dataclass(frozen=True, slots=True)
class ConsoleTls:
    """The certificate and key the console serves with (the broker's own)."""

    cert: Path
    key: Path


def console_tls(listen: Address, tls_dir: Path | None) -> ConsoleTls | None:
    """The console's TLS for the broker's certificate folder; without one, only loopback.

    Mirrors gRPC's rule: plaintext is allowed on loopback only.
    """
    if tls_dir is None:
        if not is_loopback(listen.host):
            raise ConsoleListenError(
                f"the web console serves plaintext only on loopback, not on {listen.host!r}; "
                "turn TLS on (--tls-dir) to serve it elsewhere"
            )
        return None
    layout = CaLayout(tls_dir)
    return ConsoleTls(Path(layout.broker_cert), Path(layout.broker_key))


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the broker's process owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ConsoleServer:
    """The console's HTTP(S) server, run as a task of the broker's event loop."""

    def __init__(self, services: ConsoleServices, listen: Address, tls: ConsoleTls | None) -> None:
        self.app, self.console = console_app(services)
        self._listen = listen
        self._tls = tls
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.address: Address | None = None

    @property
    def url(self) -> str:
        """The console's base URL once started."""
        assert self.address is not None, "not started"
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self.address}"

    async def start(self) -> Address:
        """Bind and serve; returns the bound address (port 0 picks a free one)."""
        sock = _bind(self._listen)
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=str(self._tls.cert) if self._tls else None,
            ssl_keyfile=str(self._tls.key) if self._tls else None,
            timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
            server_header=False,
        )
        server = self._server = _EmbeddedServer(config)
        self.address = Address(self._listen.host, sock.getsockname()[1])
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                self._task.result()  # raises why it stopped
                raise OSError(f"the web console stopped while starting on {self.address}")
            await asyncio.sleep(0.01)
        log.info("web console on %s", self.url)
        return self.address

    async def stop(self) -> None:
        """End live streams and stop serving; idempotent."""
        self.console.stopping.set()
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), SHUTDOWN_GRACE_S * 2)
        except TimeoutError:
            self._server.force_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, SHUTDOWN_GRACE_S)
        except Exception:
            log.exception("web console stopped with an error")
        self._server = None


def _bind(listen: Address) -> socket.socket:
    host = listen.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: a response's header and body writes must not wait
        # for the client's delayed ACK (40 ms per answer on a kept-alive connection)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, listen.port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"web console cannot listen on {listen}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
