"""One demo run from start to clean-up: federation up, trace slice in, summary and map out."""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from computenet.client import Client
from computenet.demo.accounting import PlacedJob
from computenet.demo.capacity import DemoPlan, plan_at_load, scaled_pools
from computenet.demo.federation import MARKER_ENV, start_agents, start_broker, wait_until_active
from computenet.demo.mapview import draw_map
from computenet.demo.options import SUBMIT_WALL_S, DemoOptions
from computenet.demo.pki import DemoPki, make_demo_pki
from computenet.demo.processes import ProcessError, ProcessSet
from computenet.demo.progress import JobTracker, LiveView
from computenet.demo.report import map_notes, map_title, print_summary
from computenet.demo.simulator import BaselineRun, export_days
from computenet.demo.summary import Summary, accounted_jobs, summarise, write_placements
from computenet.demo.workload import (
    auto_compression,
    job_spec,
    like_for_like,
    select_slice,
    write_workload,
)
from computenet.types import Job, JobEvent, SiteInfo
from computenet.workload import WorkloadJob
from topology import Topology, default_topology

log = logging.getLogger(__name__)

TICK_S = 0.1
SITES_EVERY_S = 1.0
LIST_EVERY_S = 5.0
FINISH_SLACK_S = 120.0
SETTLE_S = 6.0


TOO_LARGE = "too large for any pool at the demo's capacity scale"


def _load_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


class DemoError(RuntimeError):
    """The demo could not finish (a process died, jobs never finished, bad trace data)."""


@contextmanager
def _signals_raise_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT both raise KeyboardInterrupt, so clean-up runs in `finally` either way.

    SIGINT is installed too: a demo started from a non-interactive background shell inherits
    SIGINT ignored, and "Ctrl-C stops it" must still hold for whoever signals it.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Cleanup:
    """Stops every started process and removes the working folder, once, signals ignored."""

    def __init__(self, processes: ProcessSet, workdir: Path, options: DemoOptions) -> None:
        self.processes, self.workdir, self.options = processes, workdir, options
        self.extra: list[Callable[[], None]] = []
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for step in self.extra:
                with suppress(Exception):
                    step()
            self.processes.stop_all(self.options.stop_grace_s)
            if not self.options.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


class JobFeed:
    """Submits the slice's jobs at their compressed trace arrival times."""

    def __init__(
        self,
        jobs: Sequence[WorkloadJob],
        compression: float,
        max_job_s: float,
        too_large: Collection[str] = (),
    ) -> None:
        self.jobs, self.compression, self.max_job_s = jobs, compression, max_job_s
        self.too_large = frozenset(too_large)
        self.t0 = time.monotonic()
        first_s = jobs[0].submit_s
        self.due = [self.t0 + (j.submit_s - first_s) / compression for j in jobs]
        self.finish_by = self.due[-1] + max_job_s + FINISH_SLACK_S
        self.submitted = 0

    @property
    def done(self) -> bool:
        """Every job was submitted."""
        return self.submitted == len(self.jobs)

    def submit_due(self, client: Client, now: float) -> None:
        """Submit every job whose time has come (request id from the trace job: no doubles)."""
        while not self.done and self.due[self.submitted] <= now:
            job = self.jobs[self.submitted]
            spec = job_spec(job, self.compression, self.max_job_s)
            record = client.submit(spec, request_id=f"demo-{job.job_id}")
            if job.job_id in self.too_large:
                # it would wait for ever; the simulator counts it as "too large" the same way
                client.cancel(record.job.job_id, reason=TOO_LARGE)
            self.submitted += 1


class DemoRun:
    """The steps of one run; `run()` owns the processes and always cleans up."""

    def __init__(self, options: DemoOptions, out: Console, ui: Console) -> None:
        self.options, self.out, self.ui = options, out, ui
        self.topology: Topology = default_topology()
        self.workdir = Path(tempfile.mkdtemp(prefix="computenet-demo-"))
        self.processes = ProcessSet(MARKER_ENV)
        self.cleanup = Cleanup(self.processes, self.workdir, options)
        self.marker = {MARKER_ENV: self.processes.marker_value}
        self.started = time.monotonic()
        self.compression = options.compression or 1.0

    def run(self) -> Summary:
        """Run the demo and return its summary (after the federation is stopped)."""
        atexit.register(self.cleanup)
        try:
            with _signals_raise_interrupt():
                summary, address = self._run()
                if self.options.keep_running:
                    self._stay_up(address)
            return summary
        finally:
            self.cleanup()
            atexit.unregister(self.cleanup)

    def _run(self) -> tuple[Summary, str]:
        opts = self.options
        self.ui.print(f"[bold]ComputeNet demo[/] in {self.workdir}")
        self.ui.print(
            f"Starting a broker and {len(self.topology.sites)} site agents on loopback "
            "(TLS, site certificates and an operator token made for this run)…"
        )
        pki = make_demo_pki(self.workdir, [site.id for site in self.topology.sites])
        address, agent_address = start_broker(
            self.processes, self.workdir, opts.suspect_after_s, opts.lost_after_s, pki
        )
        plan = self._plan(self._load_slice())
        jobs, load = list(plan.jobs), plan.load
        pools = scaled_pools(self.topology, load.scale)
        start_agents(self.processes, self.topology, agent_address, self.workdir, pki, pools)
        workload = self.workdir / "workload.csv"
        write_workload(jobs, workload)
        baseline = BaselineRun(
            workload, seed=opts.seed, data_dir=opts.data_dir, scale=load.scale,
            extra_env=self.marker,
        )  # fmt: skip
        self.cleanup.extra.append(baseline.stop)
        client = pki.client(address)
        self.cleanup.extra.append(client.close)
        wait_until_active(client, self.processes, len(self.topology.sites))
        self.ui.print(f"All {len(self.topology.sites)} sites active; broker at {address}.")
        records = self._submit_and_follow(client, jobs, pki, load.too_large)
        events: dict[str, list[JobEvent]] = {
            job.job_id: list(client.watch(job.job_id)) for job in records
        }
        accounted = accounted_jobs(records, events, self.compression, self.topology)
        write_placements(accounted, self.workdir / "placements.json")
        summary = summarise(
            records, accounted, baseline.result(), load=load,
            map_png=self._map_path(), elapsed_s=0.0, extra=self._extra(address, jobs, pki),
        )  # fmt: skip
        self._draw(summary, accounted)
        summary = dataclasses.replace(summary, elapsed_s=time.monotonic() - self.started)
        self._report(summary, address)
        return summary, address

    def _load_slice(self) -> list[WorkloadJob]:
        opts = self.options
        self.ui.print(
            f"Exporting the first {opts.days} trace days (Philly + Alibaba GenAI, seed "
            f"{opts.seed}) with the simulator…"
        )
        exported = export_days(
            self.workdir / "export.csv", days=opts.days, seed=opts.seed,
            data_dir=opts.data_dir, extra_env=self.marker,
        )  # fmt: skip
        return select_slice(exported, opts.days, opts.jobs)

    def _prepare(self, jobs: Sequence[WorkloadJob]) -> tuple[list[WorkloadJob], float]:
        """The jobs both arms run at the compression their arrivals play at."""
        opts = self.options
        compression = opts.compression or auto_compression(jobs, SUBMIT_WALL_S)
        return like_for_like(jobs, compression, opts.max_job_s), compression

    def _plan(self, picked: Sequence[WorkloadJob]) -> DemoPlan:
        opts = self.options
        plan = plan_at_load(picked, self.topology, opts.load, self._prepare)
        self.compression = plan.compression
        load = plan.load
        kinds = {k: sum(j.kind == k for j in plan.jobs) for k in ("training", "inference")}
        self.ui.print(
            f"Slice: {len(plan.jobs)} jobs ({kinds['training']} training, "
            f"{kinds['inference']} inference); arrivals x{plan.arrival_factor:.3g}, "
            f"compression {self.compression:,.0f}x: one trace day plays in "
            f"{86_400 / self.compression:.1f} s; trace jobs longer than "
            f"{opts.max_job_s * self.compression / 3600:,.1f} h are cut to that in both arms."
        )
        self.ui.print(
            f"Federation: every pool x{load.scale:.4g} = {load.cards:,} cards, the fewest that "
            f"hold every job; offered load {_load_text(load.offered.overall)} (target "
            f"{opts.load:g}) over {load.offered.window.hours:,.1f} trace hours."
        )
        return plan

    def _submit_and_follow(
        self, client: Client, jobs: Sequence[WorkloadJob], pki: DemoPki, too_large: Collection[str]
    ) -> list[Job]:
        feed = JobFeed(jobs, self.compression, self.options.max_job_s, too_large)
        tracker = JobTracker(pki.client(client.address))
        self.cleanup.extra.append(tracker.stop)
        tracker.start()
        sites: list[SiteInfo] = []
        last_sites = last_list = 0.0
        with LiveView(self.ui, len(jobs)) as view:
            while not feed.done or tracker.final() < len(jobs):
                now = time.monotonic()
                feed.submit_due(client, now)
                if now - last_sites >= SITES_EVERY_S:
                    sites, last_sites = client.sites(), now
                    self.processes.check_alive()
                if feed.done and now - last_list >= LIST_EVERY_S:
                    tracker.update(list(client.list()))
                    last_list = now
                view.show(submitted=feed.submitted, counts=tracker.counts(), sites=sites)
                if now > feed.finish_by:
                    raise DemoError(
                        f"jobs unfinished after {now - feed.t0:.0f} s: {tracker.counts()}"
                    )
                time.sleep(TICK_S)
            view.show(
                submitted=feed.submitted, counts=tracker.counts(), sites=self._settled(client)
            )
        tracker.stop()
        return list(client.list())

    def _settled(self, client: Client) -> list[SiteInfo]:
        """Sites once their reports show the finished jobs' cards free (a heartbeat or two)."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            sites = client.sites()
            if time.monotonic() > deadline or not any(p.in_use for s in sites for p in s.pools):
                return sites
            time.sleep(0.25)

    def _map_path(self) -> Path:
        if self.options.map_path is not None:
            return self.options.map_path.resolve()
        return Path(tempfile.gettempdir()) / "computenet-demo-map.png"

    def _extra(self, address: str, jobs: Sequence[WorkloadJob], pki: DemoPki) -> dict[str, Any]:
        opts = self.options
        extra: dict[str, Any] = {
            "submitted": len(jobs),
            "trace_days": opts.days,
            "seed": opts.seed,
            "compression": round(self.compression, 3),
            "target_load": opts.load,
        }
        if opts.keep:
            extra["workdir"] = str(self.workdir)
            extra["placements_file"] = str(self.workdir / "placements.json")
        if opts.keep_running:
            extra["broker"] = address
            extra["ca"] = str(pki.ca)
            extra["token_file"] = str(pki.token_file)
        return extra

    def _draw(self, summary: Summary, accounted: Sequence[PlacedJob]) -> None:
        ran = [job for job in accounted if job.ran]
        draw_map(
            self.topology, ran, summary.map_png,
            title=map_title(summary), notes=map_notes(summary, self.options.days),
        )  # fmt: skip

    def _report(self, summary: Summary, address: str) -> None:
        if self.options.as_json:
            self.out.file.write(json.dumps(summary.to_json(), ensure_ascii=False) + "\n")
            self.out.file.flush()
        else:
            print_summary(self.out, summary, address, self.options.keep_running)

    def _stay_up(self, address: str) -> None:
        self.ui.print(f"Federation up at {address}; Ctrl-C stops it.")
        try:
            while True:
                self.processes.check_alive()
                time.sleep(1.0)
        except KeyboardInterrupt:
            self.ui.print("Stopping the federation…")
        except ProcessError as exc:
            raise DemoError(str(exc)) from None


def run_demo(options: DemoOptions, out: Console, ui: Console) -> Summary:
    """Run the demo: `out` gets the summary, `ui` the progress."""
    return DemoRun(options, out, ui).run()
