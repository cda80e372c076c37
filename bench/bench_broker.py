"""Durable submissions per second through gRPC (SQLite, PostgreSQL) against a bare echo server.

The machine is shared and its load comes and goes, so the arms run interleaved: each round
measures the echo server, then the broker on SQLite, then on PostgreSQL, all with the same
client code and requests. Reported are per-point medians over the rounds, the median of the
per-round ratios to echo, and each server's CPU per request (its children included), which
moves much less with the load than throughput does.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.load import LoadResult, run_load

CLIENT_COUNTS = (1, 16, 64)
FULL_ROUNDS = 3
REPO = Path(__file__).resolve().parent.parent
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    """A server under test: where it listens and its process id."""

    address: str
    pid: int


@contextlib.contextmanager
def _process(args: list[str], cwd: Path) -> Iterator[Server]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("listening on "):
                yield Server(line.split()[-1], proc.pid)
                break
        else:
            raise RuntimeError(f"{args} exited before listening")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _broker(db_url: str, cwd: Path) -> contextlib.AbstractContextManager[Server]:
    return _process(
        [
            "-m",
            "broker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db_url,
            "--insecure",  # loopback only; TLS cost is the transport's, not the broker's
            "--submit-rate",
            "0",
            "--log-level",
            "WARNING",
        ],
        cwd,
    )


def _cpu_s(pid: int) -> float:
    """CPU seconds used so far by `pid` and its live children (a broker's writer process)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if entry == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS_PER_S


def _point(server: Server, clients: int, seconds: float) -> dict[str, float]:
    before = _cpu_s(server.pid)
    result: LoadResult = run_load(server.address, clients, seconds)
    used_s = _cpu_s(server.pid) - before
    point = dict(vars(result))
    point["server_cpu_ms"] = round(1000 * used_s / max(result.submissions, 1), 3)
    return point


def _series(server: Server, seconds: float) -> dict[int, dict[str, float]]:
    run_load(server.address, 4, min(seconds, 1.0))  # warm-up: connections, caches, JIT of the pool
    return {n: _point(server, n, seconds) for n in CLIENT_COUNTS}


Series = dict[int, dict[str, float]]
Arm = Callable[[int], contextlib.AbstractContextManager[Server]]


def _medians(rounds: list[Series]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for n in CLIENT_COUNTS:
        points = [r[n] for r in rounds]
        out[str(n)] = {
            key: round(statistics.median(p[key] for p in points), 3) for key in points[0]
        }
    return out


def _ratios(arm: list[Series], echo: list[Series]) -> dict[str, float]:
    """Median over rounds of the arm's throughput over the echo server's in the same round."""
    return {
        str(n): round(
            statistics.median(
                a[n]["per_s"] / max(e[n]["per_s"], 1e-9) for a, e in zip(arm, echo, strict=True)
            ),
            3,
        )
        for n in CLIENT_COUNTS
    }


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(smoke: bool) -> dict[str, object]:
    """Measure the echo ceiling and durable submissions on SQLite and PostgreSQL, interleaved."""
    seconds = 1.0 if smoke else 8.0
    rounds = 1 if smoke else FULL_ROUNDS
    out: dict[str, object] = {
        "seconds_per_point": seconds,
        "clients": list(CLIENT_COUNTS),
        "rounds": rounds,
        "load_average_before": _load_average(),
    }
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        arms: dict[str, Arm] = {
            "echo": lambda _: _process(["-m", "bench.echo_server"], work),
            "sqlite": lambda r: _broker(f"sqlite:///{work / f'bench-{r}.db'}", work),
        }
        try:
            from tests.harness.postgres import postgres_server_context

            server = stack.enter_context(postgres_server_context())
            arms["postgres"] = lambda _: _broker(server.url(), work)
        except Exception as exc:  # no PostgreSQL here: report it, keep the other numbers
            out["postgres"] = f"skipped: {exc}"
        measured: dict[str, list[Series]] = {name: [] for name in arms}
        for r in range(rounds):
            for name in list(arms):
                try:
                    with arms[name](r) as target:
                        measured[name].append(_series(target, seconds))
                except Exception as exc:
                    if name != "postgres":
                        raise
                    out["postgres"] = f"skipped: {exc}"  # keep the other numbers
                    del arms[name], measured[name]
    for name, series in measured.items():
        out[name] = _medians(series)
        if name != "echo":
            out[f"{name}_vs_echo"] = _ratios(series, measured["echo"])
    out["per_round_per_s"] = {
        name: [{str(n): s[n]["per_s"] for n in CLIENT_COUNTS} for s in series]
        for name, series in measured.items()
    }
    out["load_average_after"] = _load_average()
    return out
