"""The soak's broker: one process at a time on one database and one pair of ports, restartable.

A restart stops the running broker with a signal (SIGTERM: orderly stop; SIGKILL: crash),
starts a new one on the same database, client port and agent port, and notes how long the
broker was away. Each process's resource samples are kept apart, since growth is judged per
process (`bench.soak_bounds`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.soak_bounds import Bounds, Sample, judge
from tests.support.pki import Pki
from tests.support.processes import BrokerProcess, start_broker

START_ATTEMPTS = 3
STOP_TIMEOUT_S = 30.0


@dataclass
class Incarnation:
    """One broker process of the soak."""

    index: int
    pid: int
    started: float
    """time.monotonic() when it was listening."""
    ended_by: str = ""
    exit_code: int | None = None
    samples: list[Sample] = field(default_factory=list)


def proc_status(pid: int) -> tuple[int | None, int | None, int | None]:
    """VmRSS (kB), open file descriptors and threads of a process; None where unreadable."""
    rss = threads = fds = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        pass
    return rss, fds, threads


class SoakBroker:
    """The current broker process and the record of every one before it."""

    def __init__(self, workdir: Path, *args: str, db_url: str, pki: Pki) -> None:
        self._workdir = workdir
        self._args = args
        self._db_url = db_url
        self._pki = pki
        self.current: BrokerProcess = start_broker(workdir, *args, db_url=db_url, pki=pki)
        self.incarnations = [Incarnation(0, self.current.proc.pid, time.monotonic())]

    @property
    def pid(self) -> int:
        """The running broker's process id."""
        return self.current.proc.pid

    def sample(self) -> tuple[int, int, int] | None:
        """RSS (kB), fds and threads of the running broker, kept with its process; None if gone."""
        rss, fds, threads = proc_status(self.pid)
        if rss is None or fds is None or threads is None:
            return None
        now = self.incarnations[-1]
        now.samples.append(Sample(time.monotonic() - now.started, rss, fds))
        return rss, fds, threads

    def restart(self, sig: signal.Signals) -> float:
        """Stop the broker with `sig`, start another on the same database and ports.

        Returns the seconds from the signal until the new broker listens.
        """
        old = self.current
        signalled = time.monotonic()
        code = _stop(old.proc, sig)
        record = self.incarnations[-1]
        record.ended_by, record.exit_code = sig.name, code
        error: Exception | None = None
        for _ in range(START_ATTEMPTS):  # the old sockets may take a moment to be released
            try:
                self.current = start_broker(
                    self._workdir,
                    *self._args,
                    db_url=self._db_url,
                    listen=old.address,
                    agent_listen=old.agent_address,
                    pki=self._pki,
                )
                break
            except AssertionError as exc:  # no "listening" line: it failed to start
                error = exc
                time.sleep(1.0)
        else:
            raise RuntimeError(f"the broker did not start again after {sig.name}: {error}")
        self.incarnations.append(
            Incarnation(len(self.incarnations), self.current.proc.pid, time.monotonic())
        )
        return time.monotonic() - signalled

    def stop(self) -> None:
        """Stop the running broker (SIGTERM, then SIGKILL)."""
        code = _stop(self.current.proc, signal.SIGTERM)
        record = self.incarnations[-1]
        if not record.ended_by:
            record.ended_by, record.exit_code = "end", code

    def verdicts(self, bounds: Bounds) -> list[dict[str, object]]:
        """Each broker process's growth verdict, with how it ended."""
        out = []
        for inc in self.incarnations:
            growth = judge(inc.samples, bounds)
            out.append(
                {
                    "process": inc.index,
                    "ended_by": inc.ended_by,
                    "exit_code": inc.exit_code,
                    "lived_s": round(inc.samples[-1].age_s, 1) if inc.samples else 0.0,
                    "samples": len(inc.samples),
                    **vars(growth),
                }
            )
        return out


def _stop(proc: subprocess.Popen[str], sig: signal.Signals) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode
