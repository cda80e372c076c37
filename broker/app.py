"""The broker process: wires settings, store, topology and servicers, and runs until signalled."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from broker.server import Servicers, start_server
from computenet.address import Address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything the broker process is configured with, read once at the entry point."""

    listen: Address
    """Where to serve gRPC; port 0 picks a free port."""
    db_url: str = "sqlite:///computenet-broker.db"
    """SQLAlchemy URL of the store."""
    topology_path: Path | None = None
    """Topology YAML; None for the built-in national network."""
    metrics_listen: Address | None = None
    """Where to serve Prometheus metrics; None disables them."""
    suspect_after_s: float = 15.0
    """Seconds without a report before a site is suspect."""
    lost_after_s: float = 60.0
    """Seconds without a report before a site is lost."""


async def serve_forever(settings: BrokerSettings) -> None:
    """Start the broker, print the bound address, and stop gracefully on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        bound = await start_server(settings.listen, Servicers.unimplemented())
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {settings.listen}: {exc}") from None
    print(f"listening on {bound.address}", flush=True)
    await stop.wait()
    log.info("shutting down")
    await bound.stop()
