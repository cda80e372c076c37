"""A second broker on one SQLite database refuses to start with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from broker.store import claim_single_replica


def test_a_second_replica_on_sqlite_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    claim = claim_single_replica(url)  # what a running broker holds while it serves
    assert claim is not None
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "broker",
                "serve",
                "--db",
                url,
                "--listen",
                "127.0.0.1:0",
                "--insecure",
                "--log-level",
                "error",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
    finally:
        claim.release()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"computenet-broker: error: another broker replica is serving the SQLite database "
        f"{tmp_path / 'broker.db'}; SQLite holds a single replica (use PostgreSQL for several)"
    )
    assert result.stdout == ""
