"""A userspace TCP fault proxy for chaos tests: latency, stalls, one-way blackholes, cuts.

It stands between agents and the broker where the kernel has no netem qdisc. TLS passes through
untouched (the proxy never reads the bytes), so faults act on whole TCP streams: a chunk is
delayed (in order, like a slow link), stalled (like a lost segment waiting for its
retransmission), or discarded in one direction (bytes the sender believes delivered, so the
messages in them, acknowledgements included, are never seen), and connections can be reset.
The proxy runs its own event loop in a daemon thread; the test thread steers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)

CHUNK_BYTES = 65536


class Direction(StrEnum):
    """Which way bytes flow: from the agent to the broker (`up`) or back (`down`)."""

    UP = "up"
    DOWN = "down"


@dataclass
class Faults:
    """What the proxy does to each chunk; changed while it runs."""

    delay_s: float = 0.0
    """Added to every chunk, each way."""
    jitter_s: float = 0.0
    """Up to this much more, at random (order is kept: a chunk never overtakes another)."""
    stall_chance: float = 0.0
    """Chance that a chunk (and all behind it) waits `stall_s` more, as after a lost segment."""
    stall_s: float = 0.0
    blackhole: set[Direction] = field(default_factory=set)
    """Directions whose bytes are read and discarded."""


@dataclass
class ProxyStats:
    """Counters the tests read to show a fault really happened."""

    connections: int = 0
    cuts: int = 0
    forwarded: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(Direction, 0))
    discarded: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(Direction, 0))
    stalls: int = 0


class FaultProxy:
    """Forwards `listen_host:port` (port chosen at start) to `target_host:target_port`."""

    def __init__(
        self, listen_host: str, target_host: str, target_port: int, *, seed: int = 0
    ) -> None:
        self.faults = Faults()
        self.stats = ProxyStats()
        self._listen_host = listen_host
        self._target = (target_host, target_port)
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.port = 0

    @property
    def address(self) -> str:
        """HOST:PORT agents dial."""
        return f"{self._listen_host}:{self.port}"

    def start(self) -> FaultProxy:
        """Listen and serve in the background thread."""
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, self._listen_host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and end the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def cut(self) -> int:
        """Reset every open connection now; returns how many were cut."""
        return self._call(self._cut())

    def blackhole(self, direction: Direction) -> None:
        """From now on discard `direction` (until `lift_and_cut`)."""
        self._call(self._set_blackhole(direction))

    def lift_and_cut(self, direction: Direction) -> None:
        """End the blackhole on `direction` and reset every connection, in one step."""
        self._call(self._lift_and_cut(direction))

    def blackhole_then_cut(self, direction: Direction, seconds: float) -> int:
        """Discard `direction` for `seconds`, then reset every connection (new ones are clean).

        Returns the bytes discarded meanwhile: what the sender wrote and the receiver never got.
        """
        return self._call(self._blackhole_then_cut(direction, seconds), timeout_s=seconds + 30)

    # --- inside the proxy's loop ----------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, Any], timeout_s: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout_s)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _cut(self) -> int:
        links = list(self._links)
        for agent_side, broker_side in links:
            for writer in (agent_side, broker_side):
                writer.transport.abort()
        self._links.clear()
        self.stats.cuts += len(links)
        return len(links)

    async def _set_blackhole(self, direction: Direction) -> None:
        self.faults.blackhole.add(direction)

    async def _lift_and_cut(self, direction: Direction) -> None:
        # in one step of the loop: no byte crosses between the lift and the cut
        self.faults.blackhole.discard(direction)
        await self._cut()

    async def _blackhole_then_cut(self, direction: Direction, seconds: float) -> int:
        before = self.stats.discarded[direction]
        self.faults.blackhole.add(direction)
        try:
            await asyncio.sleep(seconds)
        finally:
            await self._lift_and_cut(direction)
        return self.stats.discarded[direction] - before

    async def _accept(self, agent_r: asyncio.StreamReader, agent_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection(*self._target)
        except OSError as exc:
            log.info("proxy cannot reach target error=%s", exc)
            agent_w.transport.abort()
            return
        self.stats.connections += 1
        link = (agent_w, broker_w)
        self._links.add(link)
        pumps = [
            asyncio.create_task(self._pump(agent_r, broker_w, Direction.UP)),
            asyncio.create_task(self._pump(broker_r, agent_w, Direction.DOWN)),
        ]
        # gRPC never half-closes: when either way ends, the connection is over
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        self._links.discard(link)
        for writer in link:
            writer.transport.abort()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, direction: Direction
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, dst, direction))
        loop = asyncio.get_running_loop()
        last_due = 0.0
        try:
            while True:
                try:
                    data = await src.read(CHUNK_BYTES)
                except OSError:
                    data = b""
                if not data:
                    break
                if direction in self.faults.blackhole:
                    self.stats.discarded[direction] += len(data)
                    continue
                last_due = max(last_due, loop.time() + self._delay())
                queue.put_nowait((last_due, data))
            queue.put_nowait(None)
            await sender
        finally:
            sender.cancel()

    def _delay(self) -> float:
        f = self.faults
        delay = f.delay_s + (self._rng.uniform(0, f.jitter_s) if f.jitter_s else 0.0)
        if f.stall_chance and self._rng.random() < f.stall_chance:
            self.stats.stalls += 1
            delay += f.stall_s
        return delay

    async def _send(
        self,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        dst: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        loop = asyncio.get_running_loop()
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            if direction in self.faults.blackhole:
                # queued before the blackhole began, delivered after: discard it too
                self.stats.discarded[direction] += len(data)
                continue
            dst.write(data)
            self.stats.forwarded[direction] += len(data)
            with contextlib.suppress(ConnectionError):
                await dst.drain()
