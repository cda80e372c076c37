"""Live view of a demo run: job states from the broker's event stream and a table of sites."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from computenet.client import Client
from computenet.errors import ComputeNetError
from computenet.types import Job, JobState, SiteInfo, SiteStatus

log = logging.getLogger(__name__)

PLAIN_EVERY_S = 10.0

_STATUS_STYLE = {
    SiteStatus.ACTIVE: "green",
    SiteStatus.SUSPECT: "yellow",
    SiteStatus.LOST: "red",
    SiteStatus.DRAINING: "magenta",
    SiteStatus.OFFLINE: "dim",
}


class JobTracker:
    """The latest state and site of every job, fed by a `watch_all` stream on its own thread."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._states: dict[str, tuple[JobState, str]] = {}
        self._thread = threading.Thread(target=self._follow, name="demo-watch", daemon=True)

    def start(self) -> None:
        """Start following the broker's events."""
        self._thread.start()

    def _follow(self) -> None:
        try:
            for event in self._client.watch_all():
                with self._lock:
                    self._states[event.job_id] = (event.state, event.site or "")
        except (ComputeNetError, ValueError) as exc:
            log.debug("job watch ended: %s", exc)

    def update(self, jobs: Sequence[Job]) -> None:
        """Overwrite with states read by a listing (the stream may lag or have ended)."""
        with self._lock:
            for job in jobs:
                self._states[job.job_id] = (job.state, job.site or "")

    def counts(self) -> Counter[JobState]:
        """Jobs per state."""
        with self._lock:
            return Counter(state for state, _ in self._states.values())

    def final(self) -> int:
        """Jobs in a final state."""
        return sum(n for state, n in self.counts().items() if state.is_final)

    def stop(self) -> None:
        """Close the stream; the thread ends on the cancelled call."""
        self._client.close()
        self._thread.join(timeout=2.0)


def sites_table(sites: Sequence[SiteInfo]) -> Table:
    """Status, jobs running and cards in use per site, east first."""
    table = Table(title="Sites", title_justify="left", expand=False)
    for column in ("site", "side", "status", "jobs", "cards in use"):
        table.add_column(column, justify="right" if column in ("jobs", "cards in use") else "left")
    for s in sorted(sites, key=lambda s: (s.side != "east", s.site_id)):
        in_use = sum(p.in_use for p in s.pools)
        total = sum(p.total for p in s.pools)
        style = _STATUS_STYLE.get(s.status, "")
        table.add_row(
            s.site_id, s.side, f"[{style}]{s.status.value}[/]", str(s.running_jobs),
            f"{in_use:,} / {total:,}",
        )  # fmt: skip
    return table


class LiveView:
    """A progress bar for submitted and finished jobs above the live sites table; on a
    console that is not a terminal, a plain status line every PLAIN_EVERY_S instead."""

    def __init__(self, console: Console, total_jobs: int) -> None:
        self.console = console
        self.total = total_jobs
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(bar_width=40),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
        )
        self.submitted = self.progress.add_task("submitted", total=total_jobs, detail="")
        self.finished = self.progress.add_task("finished", total=total_jobs, detail="")
        self._sites: Sequence[SiteInfo] = ()
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
        self._started = time.monotonic()
        self._last_plain = self._started

    def _render(self) -> Group:
        return Group(self.progress, sites_table(self._sites))

    def show(self, *, submitted: int, counts: Counter[JobState], sites: Sequence[SiteInfo]) -> None:
        """Redraw with the latest numbers."""
        final = sum(n for state, n in counts.items() if state.is_final)
        busy = ", ".join(
            f"{n} {state.value}" for state, n in sorted(counts.items()) if not state.is_final
        )
        self.progress.update(self.submitted, completed=submitted)
        self.progress.update(self.finished, completed=final, detail=busy)
        self._sites = sites
        if self.console.is_terminal:
            self._live.update(self._render())
        elif time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            self.console.print(
                f"{self._last_plain - self._started:4.0f} s: submitted {submitted}/{self.total}, "
                f"finished {final}/{self.total}" + (f" ({busy})" if busy else "")
            )

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.console.is_terminal:
            self._live.stop()
        elif exc_type is None:
            self.console.print(self._render())
