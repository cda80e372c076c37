"""Durable submissions per second through gRPC (SQLite, PostgreSQL) against a bare echo server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.load import LoadResult, run_load

CLIENT_COUNTS = (1, 16, 64)
REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def _process(args: list[str], cwd: Path) -> Iterator[str]:
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
                yield line.split()[-1]
                break
        else:
            raise RuntimeError(f"{args} exited before listening")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _broker(db_url: str, cwd: Path) -> contextlib.AbstractContextManager[str]:
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


def _series(address: str, seconds: float) -> dict[int, LoadResult]:
    run_load(address, 4, min(seconds, 1.0))  # warm-up: connections, caches, JIT of the pool
    return {n: run_load(address, n, seconds) for n in CLIENT_COUNTS}


def _as_dict(results: dict[int, LoadResult]) -> dict[str, dict[str, float]]:
    return {str(n): vars(r) for n, r in results.items()}


def run(smoke: bool) -> dict[str, object]:
    """Measure the echo ceiling, then durable submissions on SQLite and PostgreSQL."""
    seconds = 1.0 if smoke else 8.0
    out: dict[str, object] = {"seconds_per_point": seconds, "clients": list(CLIENT_COUNTS)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with _process(["-m", "bench.echo_server"], work) as address:
            echo = _series(address, seconds)
        out["echo"] = _as_dict(echo)
        with _broker(f"sqlite:///{work / 'bench.db'}", work) as address:
            sqlite = _series(address, seconds)
        out["sqlite"] = _as_dict(sqlite)
        out["sqlite_vs_echo"] = {
            str(n): round(sqlite[n].per_s / max(echo[n].per_s, 1e-9), 3) for n in CLIENT_COUNTS
        }
        try:
            from tests.harness.postgres import postgres_server_context
        except ImportError:
            out["postgres"] = "skipped: tests.harness.postgres not importable"
            return out
        try:
            with postgres_server_context() as server, _broker(server.url(), work) as address:
                postgres = _series(address, seconds)
        except Exception as exc:  # no PostgreSQL here: report it, keep the other numbers
            out["postgres"] = f"skipped: {exc}"
            return out
        out["postgres"] = _as_dict(postgres)
        out["postgres_vs_echo"] = {
            str(n): round(postgres[n].per_s / max(echo[n].per_s, 1e-9), 3) for n in CLIENT_COUNTS
        }
    return out
