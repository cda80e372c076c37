"""SQLite admits one broker replica: a second process is refused with one clear line until the
first releases its claim or dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from broker.store import ReplicaConflictError, claim_single_replica

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)

_CLAIMER = textwrap.dedent(
    """
    import sys
    from broker.store import ReplicaConflictError, claim_single_replica
    try:
        claim = claim_single_replica(sys.argv[1])
    except ReplicaConflictError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    print("claimed", flush=True)
    sys.stdin.readline()  # hold the claim until told (or killed)
    """
)


def _try_in_child(url: str) -> subprocess.CompletedProcess[str]:
    """Another process claims `url` and lets go at once; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-c", _CLAIMER, url],
        cwd=REPO_ROOT,
        input="\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def _expected_message(database: Path) -> str:
    return (
        f"another broker replica is serving the SQLite database {database.resolve()};"
        " SQLite holds a single replica (use PostgreSQL for several)"
    )


def test_a_second_process_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    database = tmp_path / "broker.db"
    url = f"sqlite:///{database}"
    claim = claim_single_replica(url)
    assert claim is not None and claim.held
    assert claim.lock_path == tmp_path / "broker.db.replica-lock"

    refused = _try_in_child(url)
    assert refused.returncode == 3
    assert refused.stderr.strip().splitlines() == [_expected_message(database)]

    claim.release()
    claim.release()
    assert not claim.held
    accepted = _try_in_child(url)
    assert (accepted.returncode, accepted.stdout) == (0, "claimed\n"), accepted.stderr


def test_a_killed_holder_leaves_no_stale_claim(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", _CLAIMER, url],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "claimed\n"
        with pytest.raises(ReplicaConflictError):
            claim_single_replica(url)
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    with claim_single_replica(url) as claim:
        assert claim is not None and claim.held
    assert not claim.held


def test_the_same_database_by_another_path_is_the_same_claim(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with (
        claim_single_replica(f"sqlite:///{tmp_path / 'broker.db'}"),
        pytest.raises(ReplicaConflictError),
    ):
        claim_single_replica(f"sqlite:///{tmp_path / 'sub' / '..' / 'broker.db'}")


def test_other_databases_and_backends_need_no_claim(tmp_path: Path) -> None:
    with claim_single_replica(f"sqlite:///{tmp_path / 'a.db'}"):
        other = claim_single_replica(f"sqlite:///{tmp_path / 'b.db'}")
        assert other is not None
        other.release()
    assert claim_single_replica("sqlite://") is None
    assert claim_single_replica("sqlite:///:memory:") is None
    assert claim_single_replica("postgresql+psycopg://u@127.0.0.1:5432/db") is None
