"""Revocation without a restart: a revocation file re-read when it changes, and a watch over
open streams that ends those whose certificate or token has been revoked since they began."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from broker.security.identity import Revocations, SiteCertificate
from computenet.errors import ComputeNetError

log = logging.getLogger(__name__)

RECHECK_INTERVAL_S = 1.0
"""How often open streams are checked against the current certificates and tokens."""


class RevocationChecker(Protocol):
    """Anything that says whether a verified site certificate is revoked."""

    def is_revoked(self, identity: SiteCertificate) -> bool:
        """True if this certificate, or its whole site, is refused."""
        ...


class RevocationFile:
    """A revocation YAML the broker re-reads when it changes (checked at most every
    `check_interval_s`), so `computenet-broker certs revoke` takes effect without a restart.
    A file broken by an edit keeps the last good list (and logs why)."""

    def __init__(
        self,
        path: Path,
        *,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._check_interval_s = check_interval_s
        self._clock = clock
        self._current = Revocations.load(self.path)
        self._stamp = self._file_stamp()
        self._checked_s = clock()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    @property
    def current(self) -> Revocations:
        """The revocations in force, after re-reading the file if it changed."""
        now = self._clock()
        if now - self._checked_s >= self._check_interval_s:
            self._checked_s = now
            stamp = self._file_stamp()
            if stamp != self._stamp and stamp is not None:
                try:
                    self._current = Revocations.load(self.path)
                except (OSError, ValueError, yaml.YAMLError) as exc:
                    log.error("revocation file not reloaded path=%s error=%s", self.path, exc)
                else:
                    self._stamp = stamp
                    log.info(
                        "revocation file reloaded path=%s serials=%d sites=%d",
                        self.path,
                        len(self._current.serials),
                        len(self._current.site_ids),
                    )
        return self._current

    def is_revoked(self, identity: SiteCertificate) -> bool:
        """As `Revocations.is_revoked`, with the file as it is now."""
        return self.current.is_revoked(identity)


def _save(path: Path, revocations: Revocations) -> None:
    data = {
        "serials": [f"{s:x}" for s in sorted(revocations.serials)],
        "sites": sorted(revocations.site_ids),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def revoke(path: Path, *, serial: int | None = None, site_id: str | None = None) -> bool:
    """Add a certificate serial or a whole site to the revocation file (made if missing);
    False if it was revoked already. Raises ValueError for a malformed file."""
    path = Path(path)
    current = Revocations.load(path) if path.exists() else Revocations()
    serials, sites = set(current.serials), set(current.site_ids)
    if serial is not None:
        serials.add(serial)
    if site_id is not None:
        sites.add(site_id)
    if serials == current.serials and sites == current.site_ids:
        return False
    _save(path, Revocations(frozenset(serials), frozenset(sites)))
    return True


Recheck = Callable[[], ComputeNetError | None]
"""Answers the error to end a stream with if its credentials no longer hold, else None."""


@dataclass(eq=False)
class OpenStream:
    """One open call whose credentials are checked again while it runs."""

    task: asyncio.Task[object]
    """The call's task, cancelled when its credentials are revoked."""
    recheck: Recheck
    """Checks the call's credentials as they are now."""
    cancelling: int
    """Cancel requests the task had when the call began."""
    revoked: ComputeNetError | None = None
    """Set when the watch ended the call, with the error to end it with."""

    def ended_by_revocation(self) -> ComputeNetError | None:
        """The error to end the call with if the watch cancelled it (and only the watch)."""
        if self.revoked is None:
            return None
        return self.revoked if self.task.uncancel() <= self.cancelling else None


@dataclass
class StreamWatch:
    """Checks the credentials of open streams every `interval_s` and cancels those revoked."""

    interval_s: float = RECHECK_INTERVAL_S
    _open: set[OpenStream] = field(default_factory=set, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def open(self, recheck: Recheck) -> OpenStream:
        """Watch the call running in the current task until `close`."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("StreamWatch.open needs a running task")
        stream = OpenStream(task, recheck, task.cancelling())
        self._open.add(stream)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run())
        return stream

    def close(self, stream: OpenStream) -> None:
        """Stop watching a call that ended."""
        self._open.discard(stream)

    def open_streams(self) -> int:
        """Calls watched now (for tests and metrics)."""
        return len(self._open)

    def check_now(self) -> int:
        """Check every open call once; returns how many were ended."""
        ended = 0
        for stream in list(self._open):
            if stream.revoked is not None or stream.task.done():
                continue
            try:
                error = stream.recheck()
            except Exception:  # a broken check must not end the watch of the others
                log.exception("credential recheck failed")
                continue
            if error is not None:
                stream.revoked = error
                stream.task.cancel()
                ended += 1
        return ended

    async def _run(self) -> None:
        while self._open:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(Exception):
                ended = self.check_now()
                if ended:
                    log.warning("revoked credentials ended open calls count=%d", ended)
