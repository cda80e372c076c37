"""A real broker for hostile-input tests: in-process, on 127.0.0.1:0, on a SQLite file, its
event loop on a thread of its own so tests call it with plain blocking gRPC stubs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from broker.app import Broker, BrokerSettings
from broker.security import LimitSettings
from broker.security.setup import SecuritySettings
from broker.security.tokens import add_token
from computenet.address import Address

GENEROUS = LimitSettings(
    submit_rate_per_s=100_000.0,
    submit_burst=100_000,
    read_rate_per_s=100_000.0,
    read_burst=100_000,
    auth_failures_burst=100_000,
)
"""Limits a fuzzer never reaches, so it explores the handlers rather than the limits."""


@dataclass
class RunningBroker:
    """A started broker and the tokens to call it with."""

    broker: Broker
    address: Address
    db_path: Path
    operator: str
    """Token of an operator (tenant `ops`)."""
    user: str
    """Token of a user of tenant `acme`."""
    other: str
    """Token of a user of tenant `globex`."""
    tokens_path: Path

    def channel(self) -> grpc.Channel:
        """A blocking channel to the broker's client port."""
        return grpc.insecure_channel(str(self.address))

    @staticmethod
    def auth(token: str) -> tuple[tuple[str, str], ...]:
        """Call metadata presenting `token`."""
        return (("authorization", f"Bearer {token}"),)


@contextmanager
def running_broker(
    tmp_path: Path,
    *,
    limits: LimitSettings = GENEROUS,
    db_path: Path | None = None,
    tls_dir: Path | None = None,
    revocations_path: Path | None = None,
) -> Iterator[RunningBroker]:
    """Start a broker on a fresh (or the given) SQLite file; stop it on exit.

    Insecure on loopback, or with `tls_dir` TLS for clients and mTLS for agents.
    """
    db_path = db_path or tmp_path / "broker.db"
    tokens_path = tmp_path / "tokens.yaml"
    if not tokens_path.exists():
        add_token(tokens_path, "root", tenant="ops", role="operator")
    operator = add_token(tokens_path, f"root-{id(db_path)}", tenant="ops", role="operator")
    user = add_token(tokens_path, f"alice-{id(db_path)}", tenant="acme", role="user")
    other = add_token(tokens_path, f"bob-{id(db_path)}", tenant="globex", role="user")
    settings = BrokerSettings(
        listen=Address("127.0.0.1", 0),
        db_url=f"sqlite:///{db_path}",
        security=SecuritySettings(
            insecure=tls_dir is None,
            tls_dir=tls_dir,
            tokens_path=tokens_path,
            revocations_path=revocations_path,
            limits=limits,
        ),
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="broker-loop", daemon=True)
    thread.start()

    def run(coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    async def build() -> Broker:
        return Broker(settings)

    broker = run(build())
    try:
        address = run(broker.start())
        yield RunningBroker(broker, address, db_path, operator, user, other, tokens_path)
    finally:
        try:
            if broker.server is not None:  # no call of a test outlives it: no grace needed
                run(broker.server.server.stop(0.2))
            run(broker.stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
