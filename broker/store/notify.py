"""ChangeFeed: wakes a replica when job events were committed, by PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from broker.store.sequence import EVENTS_CHANNEL

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
"""How long one (re)connection attempt of the listening connection may block."""

_MIN_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0

_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
"""TCP keepalives, so a listening connection cut off without a reset is noticed in ~25 s
instead of never (an idle LISTEN connection sends nothing). Ignored on Unix sockets."""


class ChangeFeed:
    """Tells a reader that job events may have been committed since it last looked.

    Every transaction that records job events notifies `EVENTS_CHANNEL` on PostgreSQL (see
    broker.store.sequence), delivered when it commits. The feed LISTENs on it over one
    dedicated autocommit connection, opened by the constructor: read the database after
    creating the feed, then call `wait` and read again whenever it returns True. If the
    connection drops, `wait` reconnects with backoff and then returns True, because
    notifications sent meanwhile are lost. On SQLite, where a single replica writes and
    nothing notifies, `wait` sleeps out its timeout and returns False: the caller polls.

    Keep calling `wait` (a loop with a timeout) or close the feed: notifications are only
    read from the connection inside `wait`, and a listener that stops reading holds up
    PostgreSQL's shared notification queue for every replica once its socket buffers fill.

    One thread waits at a time; `close` may be called from any thread, and a blocked `wait`
    then returns False promptly (after the connection attempt in progress, if any). Needs
    psycopg >= 3.2 (`Connection.notifies(timeout=...)`).
    """

    def __init__(self, url: str) -> None:
        """Listen on the database at `url` (a store URL); raises if PostgreSQL is unreachable."""
        parsed = make_url(url)
        self._closed = threading.Event()
        self._listener: _Listener | None = None
        if parsed.get_backend_name() == "postgresql":
            _, connect_args = parsed.get_dialect()().create_connect_args(parsed)
            self._listener = _Listener(dict(connect_args))

    @property
    def listening(self) -> bool:
        """Whether notifications can arrive at all (PostgreSQL); False means poll."""
        return self._listener is not None

    def wait(self, timeout_s: float) -> bool:
        """Block up to `timeout_s` seconds; True as soon as a notification has arrived since
        the last call (or the listening connection was re-established), else False."""
        if self._listener is None:
            self._closed.wait(max(0.0, timeout_s))
            return False
        return self._listener.wait(timeout_s)

    def close(self) -> None:
        """Stop listening and close the connection; idempotent, callable from any thread."""
        self._closed.set()
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> ChangeFeed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Listener:
    """The PostgreSQL side of ChangeFeed: a LISTENing connection, its reconnection and a
    self-pipe that lets `close` interrupt a `select` blocked in `wait`."""

    def __init__(self, connect_args: dict[str, Any]) -> None:
        self._connect_args = {**_KEEPALIVES, **connect_args, "autocommit": True}
        self._connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        self._closed = threading.Event()
        self._io = threading.Lock()
        """Held by `wait` while it uses the connection, and by `close` to tear it down."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._backoff_s = _MIN_BACKOFF_S
        self._retry_at = 0.0
        try:
            self._conn: psycopg.Connection[Any] | None = self._connect()
        except BaseException:
            os.close(self._wake_r)
            os.close(self._wake_w)
            raise

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._io:
            while not self._closed.is_set():
                if self._conn is None:
                    if self._reconnect():
                        return True  # notifications may have been missed: re-read
                    if time.monotonic() >= deadline:
                        return False
                    self._pause(min(self._retry_at, deadline))
                    continue
                woken = self._watch(self._conn, deadline)
                if woken is not None:
                    return woken
        return False

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        with self._io:  # a blocked wait has seen the wake-up and left
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _watch(self, conn: psycopg.Connection[Any], deadline: float) -> bool | None:
        """True on a notification, False at the deadline, None to loop (woken by close, or
        the connection dropped)."""
        import psycopg

        try:
            if list(conn.notifies(timeout=0.0)):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], remaining)
            if not ready:
                return False
            return None  # the connection has data (read at the loop's next turn) or closing
        except (psycopg.Error, OSError) as exc:
            log.warning("change feed connection lost; reconnecting error=%s", exc)
            self._conn = None
            self._retry_at = time.monotonic()
            with contextlib.suppress(Exception):
                conn.close()
            return None

    def _reconnect(self) -> bool:
        import psycopg

        if time.monotonic() < self._retry_at:
            return False
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            delay_s = self._backoff_s * random.uniform(0.5, 1.5)
            self._backoff_s = min(_MAX_BACKOFF_S, self._backoff_s * 2)
            self._retry_at = time.monotonic() + delay_s
            log.warning("change feed cannot reconnect retry_in_s=%.2f error=%s", delay_s, exc)
            return False
        self._backoff_s = _MIN_BACKOFF_S
        log.info("change feed reconnected channel=%s", EVENTS_CHANNEL)
        return True

    def _pause(self, until: float) -> None:
        """Sleep until `until` (monotonic), or until `close` wakes the pipe."""
        remaining = until - time.monotonic()
        if remaining > 0:
            select.select([self._wake_r], [], [], remaining)

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        conn = psycopg.connect(**self._connect_args)
        try:
            conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        except BaseException:
            conn.close()
            raise
        return conn
