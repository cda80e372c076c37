"""Server-side deadlines of unary calls: one timer for all calls instead of one per call."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class Deadline:
    """The deadline of one running call."""

    task: asyncio.Task[object]
    """The call's task, cancelled when the deadline passes."""
    at_s: float
    """Loop time at which the call is cancelled."""
    cancelling: int
    """Cancel requests the task already had when the call started."""
    expired: bool = False
    """True once the deadline passed while the call was still running."""
    done: bool = False
    """True once the call finished (the deadline no longer applies)."""

    def timed_out(self) -> bool:
        """Take back the cancellation this deadline caused; True if it is the only one.

        Call it where the task's CancelledError is caught: True means the call ended because
        of the deadline (and the CancelledError should become a deadline error), False that
        it was also cancelled for another reason (the client went away) or not expired.
        """
        if not self.expired:
            return False
        self.expired = False
        return self.task.uncancel() <= self.cancelling


@dataclass
class Deadlines:
    """Cancels calls still running `timeout_s` after they started.

    Every call gets the same timeout, so deadlines expire in the order calls started: they
    wait in a FIFO queue and one timer, set for the oldest, does the work. Starting and
    finishing a call is O(1), with no timer handle made or cancelled per call.
    """

    timeout_s: float
    _queue: deque[Deadline] = field(default_factory=deque, init=False)
    _timer: asyncio.TimerHandle | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)

    def start(self) -> Deadline:
        """The deadline of the call running in the current task, from now."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Deadlines.start needs a running task")
        if loop is not self._loop:  # a new event loop: calls of an old one no longer run
            self._queue.clear()
            self._timer = None
            self._loop = loop
        deadline = Deadline(task, loop.time() + self.timeout_s, task.cancelling())
        self._queue.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(deadline.at_s, self._expire)
        return deadline

    def finish(self, deadline: Deadline) -> None:
        """The call of `deadline` ended; drop it (and finished calls ahead of it)."""
        deadline.done = True
        if deadline.expired:  # cancelled, but the call swallowed it: take the request back
            deadline.timed_out()
        queue = self._queue
        while queue and queue[0].done:
            queue.popleft()

    def running(self) -> int:
        """Calls started and not yet finished or expired (for tests and metrics)."""
        return sum(1 for d in self._queue if not d.done and not d.expired)

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        if loop is None:
            return
        now_s = loop.time()
        queue = self._queue
        while queue and (queue[0].done or queue[0].at_s <= now_s):
            deadline = queue.popleft()
            if not deadline.done:
                deadline.expired = True
                deadline.task.cancel()
        if queue:
            self._timer = loop.call_at(queue[0].at_s, self._expire)
