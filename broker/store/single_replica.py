"""SQLite's one-replica rule: a broker serving a SQLite file holds an exclusive lock beside it."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".replica-lock"
"""Appended to the database file's name to name its lock file."""


class ReplicaConflictError(RuntimeError):
    """Another broker replica already serves this SQLite database."""


@dataclass
class SingleReplicaClaim:
    """The exclusive lock of one SQLite database, held until `release` or process death.

    The lock is an `flock` on `<database>.replica-lock`: the kernel drops it when the process
    dies however it dies, so a crashed broker never leaves a stale claim behind.
    """

    database: Path
    lock_path: Path
    _fd: int | None = field(default=None, repr=False)

    @property
    def held(self) -> bool:
        """Whether the claim is still held."""
        return self._fd is not None

    def release(self) -> None:
        """Let another replica take the database; idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file drops the flock
            log.info("single replica claim released database=%s", self.database)

    def __enter__(self) -> SingleReplicaClaim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite `url`; None for other backends and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or "mode=memory" in str(parsed):
        return None
    if database.startswith("file:"):  # a URI filename (`?uri=true`)
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database).resolve()


def claim_single_replica(url: str) -> SingleReplicaClaim | None:
    """Claim the SQLite database at `url` for this process, or None when there is nothing to
    claim (PostgreSQL, whose replicas elect a leader; in-memory SQLite, private anyway).

    Raises ReplicaConflictError, without waiting, while another process holds the claim.
    """
    database = sqlite_file(url)
    if database is None:
        return None
    lock_path = database.with_name(database.name + LOCK_SUFFIX)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ReplicaConflictError(
            f"another broker replica is serving the SQLite database {database}; SQLite holds"
            " a single replica (use PostgreSQL for several)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):  # the holder's pid, for an operator looking at it
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    log.info("single replica claim taken database=%s", database)
    return SingleReplicaClaim(database, lock_path, fd)
