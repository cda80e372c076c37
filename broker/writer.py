"""Runs store calls off the event loop: one writer thread (ordered, group-committed) and readers.

Every write of the broker goes through the single writer thread, so event sequence numbers are
committed in order. Submissions that arrive while a commit is in flight are gathered into the
next batch and committed together: one fsync for many acknowledged jobs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from broker.store.protocol import Fence, NewJob, Store, SubmitOutcome, Transition
from computenet.types import Job, JobEvent, JobState

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SUBMIT_BATCH = 512


class StoreWriter:
    """Async façade over a synchronous Store with ordered writes and group commit."""

    def __init__(self, store: Store, *, readers: int = 2) -> None:
        self.store = store
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="store-reader")
        self._queue: list[tuple[NewJob, asyncio.Future[SubmitOutcome]]] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[Sequence[JobEvent]], None]] = []
        self._created_listeners: list[Callable[[Sequence[Job]], None]] = []

    def on_events(self, listener: Callable[[Sequence[JobEvent]], None]) -> None:
        """Call `listener` (on the event loop) with every batch of committed events."""
        self._listeners.append(listener)

    def on_created(self, listener: Callable[[Sequence[Job]], None]) -> None:
        """Call `listener` with newly created jobs, just before their first events."""
        self._created_listeners.append(listener)

    def _publish(self, events: Sequence[JobEvent]) -> None:
        if events:
            for listener in self._listeners:
                listener(events)

    async def submit(self, new_job: NewJob) -> SubmitOutcome:
        """Make one submission durable; returns once its batch is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SubmitOutcome] = loop.create_future()
        self._queue.append((new_job, future))
        if not self._flushing:
            self._flushing = True
            self._flush_task = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._queue[:MAX_SUBMIT_BATCH]
                del self._queue[:MAX_SUBMIT_BATCH]
                jobs = [item for item, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(
                        self._writer, self.store.submit_jobs, jobs
                    )
                except Exception as exc:  # every waiter learns the batch failed
                    log.exception("submit batch failed size=%d", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                created = []
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
                    if outcome.job is not None and not outcome.duplicate:
                        created.append(outcome.job)
                self._publish_created(created)
        finally:
            self._flushing = False

    def _publish_created(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        for listener in self._created_listeners:
            listener(jobs)
        events = [
            JobEvent(
                sequence=j.last_sequence,
                job_id=j.job_id,
                state=JobState.PENDING,
                cause="submitted",
                time_unix_ms=j.created_unix_ms,
            )
            for j in jobs
        ]
        self._publish(events)

    async def apply(
        self, transitions: Sequence[Transition], *, fence: Fence | None = None
    ) -> list[JobEvent | None]:
        """Apply compare-and-set transitions on the writer thread; publishes the events.

        With a `fence`, the store writes only while its token holds (FenceLostError otherwise).
        """
        if not transitions:
            return []
        loop = asyncio.get_running_loop()
        write = functools.partial(self.store.apply, list(transitions), fence=fence)
        results = await loop.run_in_executor(self._writer, write)
        self._publish([e for e in results if e is not None])
        return results

    async def write(self, fn: Callable[[], T]) -> T:
        """Run any other write on the writer thread, ordered with the rest."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    async def read(self, fn: Callable[[], T]) -> T:
        """Run a read on a reader thread."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn)

    def close(self) -> None:
        """Wait for queued writes, then release the threads and the store."""
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.store.close()
