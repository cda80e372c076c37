"""The fault proxy on loopback: it forwards in order, delays, discards one way, and cuts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.harness.fault_proxy import Direction, FaultProxy, Faults
from tests.support.waiting import wait_for


@pytest.fixture
def echo() -> Iterator[int]:
    """An echo server on loopback; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := _recv(conn):
            conn.sendall(data)


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def proxy(echo: int) -> Iterator[FaultProxy]:
    started = FaultProxy("127.0.0.1", "127.0.0.1", echo, seed=1).start()
    yield started
    started.stop()


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = _recv(conn)
        if not chunk:
            break
        out += chunk
    return out


def test_delayed_and_stalled_chunks_arrive_whole_and_in_order(proxy: FaultProxy) -> None:
    proxy.faults = Faults(delay_s=0.01, jitter_s=0.02, stall_chance=0.3, stall_s=0.05)
    payload = b"".join(f"{k:06d}".encode() for k in range(400))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn:
        for k in range(0, len(payload), 300):
            conn.sendall(payload[k : k + 300])
        assert _read_exactly(conn, len(payload)) == payload
    assert proxy.stats.stalls > 0
    assert proxy.stats.forwarded[Direction.UP] == len(payload)


def test_a_blackhole_discards_one_way_then_every_connection_is_reset(proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn:
        conn.sendall(b"hello")
        assert _read_exactly(conn, 5) == b"hello"
        cut = threading.Thread(target=proxy.blackhole_then_cut, args=(Direction.DOWN, 0.5))
        cut.start()
        wait_for(lambda: Direction.DOWN in proxy.faults.blackhole, what="the blackhole")
        conn.sendall(b"lost")  # reaches the echo server; its answer is discarded
        cut.join(timeout=30)
        assert _read_exactly(conn, 4) == b""  # reset, and the answer never came
    assert proxy.stats.discarded[Direction.DOWN] == 4
    assert proxy.stats.forwarded[Direction.UP] == len(b"hellolost")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn:
        conn.sendall(b"again")  # a new connection is clean
        assert _read_exactly(conn, 5) == b"again"
