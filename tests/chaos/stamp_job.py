"""The chaos suite's job: stamps its start and end (host clocks) in a file, sleeping between.

`python stamp_job.py STAMPS_DIR SECONDS`. Each attempt writes `stamps/<job>.<attempt>.<site>`
lines `start|alive|end|stopped <monotonic_ns> <wall_ns> <job> <attempt> <site>`, each flushed and
fsynced, so a checker reads when every attempt ran even if it was killed. SIGTERM (a cancel or a
lease stop) writes a `stopped` stamp and exits 143.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

ALIVE_EVERY_S = 0.2


class _Stamps:
    def __init__(self, folder: Path) -> None:
        self.job = os.environ["COMPUTENET_JOB_ID"]
        self.attempt = os.environ["COMPUTENET_ATTEMPT"]
        self.site = os.environ["COMPUTENET_SITE"]
        folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(
            folder / f"{self.job}.{self.attempt}.{self.site}",
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )

    def write(self, kind: str) -> None:
        line = (
            f"{kind} {time.monotonic_ns()} {time.time_ns()} {self.job} {self.attempt} {self.site}\n"
        )
        os.write(self._fd, line.encode())
        os.fsync(self._fd)


def main(argv: list[str]) -> int:
    stamps = _Stamps(Path(argv[0]))
    seconds = float(argv[1])

    def on_term(signum: int, frame: FrameType | None) -> None:
        stamps.write("stopped")
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    stamps.write("start")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(ALIVE_EVERY_S, left))
        stamps.write("alive")
    stamps.write("end")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
