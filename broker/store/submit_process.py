"""Submission batches written by a child process (`broker.store.submit_worker`), not a thread.

A writer thread shares the event loop's GIL. The database driver lets go of the GIL around
every statement step, so while the loop is busy serving calls each row of a batch waits for
the GIL again, and the batch ends up costing the loop several times the CPU it costs alone.
A child process has a GIL of its own: the loop only pickles the batch out and the answer in.

When the child dies mid-batch, the batch is written again by a new child: what the lost
attempt committed comes back as duplicates of jobs with this very submission's job ids, which
the caller (broker.writer.StoreWriter) recognises as created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from broker.store.errors import storage_unavailable_from_text
from broker.store.frames import FRAME_HEADER, decode_payload, encode_frame
from broker.store.protocol import NewJob, SubmitOutcome
from broker.store.submission import Submission, Written, outcomes

log = logging.getLogger(__name__)

_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])
"""Where the `broker` package lives, so the child imports the same code."""


class WorkerLostError(RuntimeError):
    """The submission process ended before answering."""


class WorkerStartError(RuntimeError):
    """The submission process ended before it was ready: it was sent no batch."""


class BatchFailedError(RuntimeError):
    """The submission process could not write a batch; the message is its error."""


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    loop: asyncio.AbstractEventLoop | None = None
    """The event loop its streams belong to."""


@dataclass
class SubmitProcess:
    """Writes submission batches through a child process on the same database as `url`.

    One batch at a time: the caller (StoreWriter) awaits each answer before sending the next.
    The child starts at once, so its imports overlap the broker's own start.
    """

    url: str
    module: str = "broker.store.submit_worker"
    """The module the child runs (`python -m`)."""
    _child: _Child | None = field(default=None, init=False)
    _ended: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._child = self._spawn()

    @staticmethod
    def supports(url: str) -> bool:
        """False for an in-memory SQLite database, which another process cannot open."""
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return True
        database = parsed.database or ""
        return database not in ("", ":memory:") and "mode=memory" not in str(parsed)

    async def submit_jobs(self, batch: Sequence[NewJob]) -> list[SubmitOutcome]:
        """Make `batch` durable in one transaction of the child (see Store.submit_jobs)."""
        return outcomes(batch, await self.write([Submission.of(new) for new in batch]))

    async def write(self, batch: Sequence[Submission]) -> list[Written]:
        """Write `batch` in one transaction of the child; what writing each did."""
        try:
            return await self._exchange(batch)
        except WorkerLostError:
            log.warning("submission process lost; writing the batch again size=%d", len(batch))
        return await self._exchange(batch)

    def close(self, timeout_s: float = 10.0) -> None:
        """End the child (it finishes the batch it has) and wait for it."""
        self._discard()
        for proc in self._ended:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("submission process did not end; killing it pid=%d", proc.pid)
                proc.kill()
                proc.wait()
        self._ended.clear()

    async def _exchange(self, batch: Sequence[Submission]) -> list[Written]:
        loop = asyncio.get_running_loop()
        if self._child is not None and self._child.loop not in (None, loop):
            self._discard()  # its streams belong to an event loop that has ended
        if self._child is None:
            self._child = self._spawn()
        child = self._child
        done = False
        try:
            if child.writer is None:
                await self._connect(child)
            assert child.writer is not None and child.reader is not None
            child.writer.write(encode_frame(list(batch)))
            kind, body = await _read(child.reader)
            done = True
        finally:
            if not done:  # lost, failed to start, or cancelled mid-answer: start afresh
                self._discard()
        if kind == "error":
            raise storage_unavailable_from_text(body) or BatchFailedError(body)
        return list(body)

    async def _connect(self, child: _Child) -> None:
        child.loop = asyncio.get_running_loop()
        child.reader, child.writer = await asyncio.open_connection(sock=child.sock)
        try:
            kind, body = await _read(child.reader)
        except WorkerLostError as exc:
            raise WorkerStartError(f"{self.module} ended before it was ready") from exc
        if kind != "ready":
            raise storage_unavailable_from_text(body) or BatchFailedError(
                f"the submission process could not start: {body}"
            )
        log.info("submission process ready pid=%d", body)

    def _spawn(self) -> _Child:
        parent_end, child_end = socket.socketpair()
        paths = [_SOURCE_ROOT, os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        with child_end:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.module,
                    str(child_end.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        # The URL goes over the socket, not the command line, where `ps` would show it. If the
        # child is gone already, connecting finds the socket closed.
        with contextlib.suppress(OSError):
            parent_end.sendall(encode_frame(("open", self.url)))
        return _Child(proc, parent_end)

    def _discard(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            child.sock.shutdown(socket.SHUT_RDWR)  # the child sees the end at once
        closed_by_loop = False
        if child.writer is not None:
            with contextlib.suppress(RuntimeError):  # its event loop has ended
                child.writer.close()  # the transport closes the socket on its loop
                closed_by_loop = True
        if not closed_by_loop:
            child.sock.close()
        self._ended.append(child.proc)
        self._ended = [p for p in self._ended if p.poll() is None]


async def _read(reader: asyncio.StreamReader) -> tuple[str, Any]:
    try:
        header = await reader.readexactly(FRAME_HEADER.size)
        (size,) = FRAME_HEADER.unpack(header)
        kind, body = decode_payload(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise WorkerLostError("the submission process ended") from exc
    return str(kind), body
