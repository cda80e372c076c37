"""Broker replicas on one PostgreSQL database for the HA benchmarks: start, SIGKILL, restart, and
the database reads (job events, holds) and agent log lines the benchmarks measure with.

Each replica keeps its id and its port across restarts, so agents and clients configured with the
three addresses reach it again. Replicas run without TLS on loopback (`--insecure`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from computenet import Client
from computenet.types import ClusterLeader
from tests.harness.services import free_port
from tests.support.processes import wait_for_line

LEADER_LEASE_S = 5.0
_LISTENING = re.compile(r"listening on (\S+)")
_ROLE = re.compile(r"replica (\S+) (leader|follower)")
_CONNECTED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*connected target=(\S+) .*leader_epoch=(\d+)"
)
START_ATTEMPTS = 3


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[tuple[str, str]]:
    """(URL of a throwaway PostgreSQL database, "") or ("", why there is none)."""
    try:
        from tests.harness.postgres import ServiceUnavailable, start_postgres
    except ImportError as exc:
        yield "", f"test harness not importable: {exc}"
        return
    try:
        server = start_postgres()
    except ServiceUnavailable as exc:
        yield "", f"PostgreSQL unavailable: {exc}"
        return
    with server:
        server.create_database(name)
        yield server.url(name), ""


@dataclass
class Replica:
    """One broker replica: its id and fixed address, and its current process (None: down)."""

    broker_id: str
    address: str
    proc: subprocess.Popen[str] | None = None
    starts: int = 0
    exit_codes: list[int | None] = field(default_factory=list)


class Replicas:
    """`count` broker replicas sharing `db_url`, each restartable on its own port."""

    def __init__(
        self, workdir: Path, db_url: str, count: int, *extra: str, lease_s: float = LEADER_LEASE_S
    ) -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.extra = extra
        self.lease_s = lease_s
        self.replicas = [Replica(f"r{i}", f"127.0.0.1:{free_port()}") for i in range(count)]

    @property
    def addresses(self) -> list[str]:
        """Every replica's address, in order (what agents and clients are given)."""
        return [r.address for r in self.replicas]

    def start_all(self) -> None:
        for replica in self.replicas:
            self.start(replica)

    def start(self, replica: Replica) -> str:
        """Start `replica` on its address; returns the role it printed."""
        error: Exception | None = None
        for _ in range(START_ATTEMPTS):  # the killed process's port may take a moment to free
            try:
                return self._start_once(replica)
            except AssertionError as exc:
                error = exc
                time.sleep(1.0)
        raise RuntimeError(f"replica {replica.broker_id} did not start: {error}")

    def _start_once(self, replica: Replica) -> str:
        log = open(self.workdir / f"{replica.broker_id}.log", "a")  # noqa: SIM115 - with the proc
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker",
                "serve",
                "--db",
                self.db_url,
                "--listen",
                replica.address,
                "--insecure",
                "--broker-id",
                replica.broker_id,
                "--leader-lease",
                f"{self.lease_s:g}",
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=self.workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        wait_for_line(proc, _LISTENING)
        role = wait_for_line(proc, _ROLE).group(2)
        replica.proc = proc
        replica.starts += 1
        return role

    def by_id(self, broker_id: str) -> Replica:
        return next(r for r in self.replicas if r.broker_id == broker_id)

    def kill(self, replica: Replica) -> int:
        """SIGKILL the replica; returns the wall-clock ms just before the signal."""
        assert replica.proc is not None, f"replica {replica.broker_id} is not running"
        killed_ms = int(time.time() * 1000)
        replica.proc.send_signal(signal.SIGKILL)
        replica.exit_codes.append(_reap(replica.proc, 10.0))
        replica.proc = None
        return killed_ms

    def stop_all(self) -> None:
        """SIGTERM every running replica (SIGKILL after a grace period)."""
        for replica in self.replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                with contextlib.suppress(OSError):
                    replica.proc.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            if replica.proc is not None:
                replica.exit_codes.append(_reap(replica.proc, 20.0))
                replica.proc = None

    def client(self, who: str = "operator", **kwargs: object) -> Client:
        """An SDK client given every replica's address (`who` is unused: no TLS, no tokens)."""
        return Client(address=self.addresses, **kwargs)  # type: ignore[arg-type]

    def leader(self, client: Client, not_id: str = "") -> ClusterLeader | None:
        """The leader a replica reports, if any and if it is not `not_id`."""
        try:
            leader = client.cluster_status().leader
        except Exception:  # no replica answered in time: no leader known now
            return None
        if leader is None or leader.broker_id == not_id:
            return None
        return leader


def _reap(proc: subprocess.Popen[str], timeout_s: float) -> int | None:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


class Database:
    """Read-only queries on the replicas' database (the record the benchmarks judge by)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, pool_size=2, max_overflow=0, pool_pre_ping=True)

    def close(self) -> None:
        self.engine.dispose()

    def first_event_after(self, state: str, after_ms: int) -> int | None:
        """The earliest time_unix_ms of an event into `state` stamped after `after_ms`."""
        query = sa.text(
            "SELECT min(time_unix_ms) FROM job_events WHERE state = :state AND time_unix_ms > :t"
        )
        with self.engine.connect() as conn:
            value = conn.execute(query, {"state": state, "t": after_ms}).scalar()
        return int(value) if value is not None else None

    def holds_of_final_jobs(self) -> list[tuple[str, int, str]]:
        """(job id, attempt, state) of every capacity hold whose job is final."""
        query = sa.text(
            "SELECT h.job_id, h.attempt, j.state FROM holds h JOIN jobs j ON j.job_id = h.job_id"
            " WHERE j.state IN ('succeeded', 'failed', 'cancelled')"
        )
        with self.engine.connect() as conn:
            return [(str(r[0]), int(r[1]), str(r[2])) for r in conn.execute(query)]


def agent_connections(log_path: Path) -> list[tuple[int, str, int]]:
    """(wall-clock ms, target, leader epoch) of every welcome an agent's log records."""
    if not log_path.exists():
        return []
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = _CONNECTED.match(line)
        if match:
            stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            out.append((int(stamp.timestamp() * 1000), match.group(2), int(match.group(3))))
    return out
