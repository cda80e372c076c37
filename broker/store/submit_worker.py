"""The submission writer process: writes each batch it is sent in one transaction, answers.

Run by `broker.store.submit_process` as `python -m broker.store.submit_worker FD PID`, FD one
end of a socket pair and PID the parent's. Messages travel in frames (broker.store.frames).
The parent sends `("open", url)` first, then batches (lists of `Submission`); each answer is
`("ok", [Written, ...])` or `("error", text)`. The worker exits when the socket closes and
is killed with its parent, so it never outlives the broker holding the database.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from typing import Any

from broker.store.engine import create_store_engine, writer
from broker.store.frames import encode_frame, read_frame
from broker.store.submit import write_batch

_PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux); exit if it has."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


def serve(sock: socket.socket) -> None:
    """Answer batches on `sock` until it closes."""
    stream = sock.makefile("rb")
    opening = read_frame(stream)
    if opening is None:
        return
    _, url = opening
    try:
        engine = create_store_engine(url)
    except Exception as exc:  # the parent reports it and fails the batch
        sock.sendall(encode_frame(("error", f"{type(exc).__name__}: {exc}")))
        return
    writing = writer(engine)
    sock.sendall(encode_frame(("ready", os.getpid())))
    try:
        with contextlib.closing(stream):
            while (batch := read_frame(stream)) is not None:
                try:
                    with writing.begin() as connection:
                        reply: tuple[str, Any] = ("ok", write_batch(connection, batch))
                except Exception as exc:
                    log.warning("submission batch failed size=%d error=%s", len(batch), exc)
                    reply = ("error", f"{type(exc).__name__}: {exc}")
                sock.sendall(encode_frame(reply))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent went away mid-answer; whatever committed is durable
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    """Entry point: `submit_worker FD PARENT_PID`."""
    fd, parent_pid = int(argv[1]), int(argv[2])
    _die_with_parent(parent_pid)
    # The parent decides when this process ends (it closes the socket): a Ctrl-C or a
    # SIGTERM sent to the whole process group must not cut a batch short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    with socket.socket(fileno=fd) as sock:
        serve(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
