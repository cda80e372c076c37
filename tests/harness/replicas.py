"""Broker replicas on one PostgreSQL database as real subprocesses, for high-availability tests."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from computenet import Client
from computenet.client import RetryPolicy
from computenet.errors import ComputeNetError
from computenet.types import ClusterLeader, ClusterStatus
from tests.support.processes import wait_for_line
from tests.support.waiting import wait_for

log = logging.getLogger(__name__)

_LISTENING = re.compile(r"listening on (\S+)")
_ROLE = re.compile(r"replica (\S+) (leader|follower)")
_METRICS = re.compile(r"metrics on (\S+)")

STATUS_RETRY = RetryPolicy(max_attempts=2, initial_backoff_s=0.05, max_backoff_s=0.2)
"""Cluster status is asked often while replicas die: fail fast, the caller polls again."""


@dataclass
class Replica:
    """One `computenet-broker serve` replica: its id, where it listens, its process and log."""

    broker_id: str
    workdir: Path
    address: str = ""
    metrics_address: str = ""
    proc: subprocess.Popen[str] | None = None
    frozen: bool = False

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def signal_group(self, signo: int) -> None:
        """Send `signo` to the replica's whole process group (it and its submit workers)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signo)


class ReplicaSet:
    """N broker replicas sharing `db_url`; each in its own process group with its own log.

    Use as a context manager: every replica is killed at exit, whatever happened.
    """

    def __init__(
        self,
        db_url: str,
        workdir: Path,
        *,
        count: int = 3,
        extra_args: Sequence[str] = (),
        metrics: bool = False,
    ) -> None:
        self.db_url = db_url
        self.extra_args = tuple(extra_args)
        self.metrics = metrics
        self.replicas = [
            Replica(f"replica-{i}", workdir / f"replica-{i}") for i in range(1, count + 1)
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ReplicaSet:
        """Start every replica on a fresh loopback port; returns once each listens (if one
        fails to start, those already started are stopped before the error propagates)."""
        try:
            for replica in self.replicas:
                self._launch(replica, "127.0.0.1:0")
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, replica: Replica, listen: str) -> None:
        replica.workdir.mkdir(parents=True, exist_ok=True)
        args = ["--listen", listen, "--db", self.db_url, "--insecure"]
        args += ["--broker-id", replica.broker_id, *self.extra_args]
        if self.metrics:
            args += ["--metrics-listen", "127.0.0.1:0"]
        with open(replica.log_path, "a") as log_file:
            replica.proc = subprocess.Popen(
                [sys.executable, "-m", "broker", "serve", *args],
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                cwd=replica.workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # its own group: kill/stop reach its submit workers
            )
        replica.frozen = False
        replica.address = wait_for_line(replica.proc, _LISTENING).group(1)
        wait_for_line(replica.proc, _ROLE)
        if self.metrics:
            replica.metrics_address = wait_for_line(replica.proc, _METRICS).group(1)
        log.info("replica started broker_id=%s address=%s", replica.broker_id, replica.address)

    def kill(self, replica: Replica) -> None:
        """SIGKILL the replica's process group (a crash: no resignation, no cleanup)."""
        replica.signal_group(signal.SIGKILL)
        if replica.proc is not None:
            replica.proc.wait(timeout=15)
        replica.frozen = False

    def freeze(self, replica: Replica) -> None:
        """SIGSTOP the replica's process group: it neither runs nor answers, its sockets stay."""
        replica.signal_group(signal.SIGSTOP)
        replica.frozen = True

    def resume(self, replica: Replica) -> None:
        """SIGCONT a frozen replica."""
        replica.signal_group(signal.SIGCONT)
        replica.frozen = False

    def restart(self, replica: Replica) -> None:
        """Start a killed replica again with the same id on the same address."""
        if replica.alive:
            self.kill(replica)
        if replica.proc is not None and replica.proc.stdout is not None:
            replica.proc.stdout.close()
        self._launch(replica, replica.address)

    def stop(self) -> None:
        """Kill every replica's process group (woken first, so a frozen one dies too)."""
        for replica in self.replicas:
            if replica.proc is None:
                continue
            replica.signal_group(signal.SIGCONT)
            replica.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                replica.proc.wait(timeout=15)
            if replica.proc.stdout is not None:
                replica.proc.stdout.close()

    def __enter__(self) -> ReplicaSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses and leadership ------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        return [r.address for r in self.replicas]

    def by_id(self, broker_id: str) -> Replica:
        return next(r for r in self.replicas if r.broker_id == broker_id)

    def client(self, **kwargs: Any) -> Client:
        """An SDK client holding every replica's address."""
        return Client(address=self.addresses, **kwargs)

    def status(self) -> ClusterStatus | None:
        """Cluster status as any live, running replica tells it (None if none answers)."""
        running = [r.address for r in self.replicas if r.alive and not r.frozen]
        if not running:
            return None
        try:
            with Client(address=running, timeout_s=3, retry=STATUS_RETRY) as client:
                return client.cluster_status()
        except ComputeNetError as exc:
            log.info("cluster status unavailable error=%s", exc)
            return None

    def wait_for_leader(
        self, *, newer_than: int = 0, timeout_s: float = 30.0
    ) -> tuple[Replica, ClusterLeader]:
        """The leading replica once one whose epoch exceeds `newer_than` runs and is not frozen."""

        def current() -> tuple[Replica, ClusterLeader] | None:
            status = self.status()
            leader = status.leader if status is not None else None
            if leader is None or leader.epoch <= newer_than:
                return None
            replica = self.by_id(leader.broker_id)
            return (replica, leader) if replica.alive and not replica.frozen else None

        found = wait_for(
            current, timeout_s=timeout_s, interval_s=0.2, what=f"a leader newer than {newer_than}"
        )
        assert found is not None
        return found

    def has_role(self, broker_id: str, role: str) -> bool:
        """True if cluster status lists the replica with this role ("leader" or "follower")."""
        status = self.status()
        return status is not None and any(
            r.broker_id == broker_id and r.role == role for r in status.replicas
        )

    def logs(self) -> str:
        """Every replica's log, headed by its id (for failure messages)."""
        return "\n".join(f"== {r.broker_id}\n{r.log_text()[-4000:]}" for r in self.replicas)
