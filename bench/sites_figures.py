"""Figures of the thousand-site benchmark from what its processes saw: latency, lag, CPU, RSS."""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bench.sim_agents import WorkerResult


@dataclass
class Timeline:
    """What the driving process saw, in wall-clock seconds."""

    submitted: dict[str, tuple[float, float]]
    """job id -> (sent, answered) of each submission made in the window."""
    submit_errors: dict[str, int]
    stamps: set[tuple[str, int]]
    """(site, last_report_unix_ms) pairs seen by the lag probe in the window."""
    samples: list[dict[str, float]]
    window: tuple[float, float]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


def _dist_ms(values_s: list[float]) -> dict[str, float | int | None]:
    ms = [v * 1000 for v in values_s]
    return {
        "count": len(ms),
        "p50_ms": _pct(ms, 0.5),
        "p90_ms": _pct(ms, 0.9),
        "p99_ms": _pct(ms, 0.99),
        "max_ms": round(max(ms), 2) if ms else None,
    }


def dispatch_latency(timeline: Timeline, results: list[WorkerResult]) -> dict[str, Any]:
    first: dict[str, float] = {}
    for result in results:
        for job_id, attempt, received in result.dispatches:
            if attempt == 1 and (job_id not in first or received < first[job_id]):
                first[job_id] = received
    from_ack, from_send, early = [], [], 0
    for job_id, (sent, answered) in timeline.submitted.items():
        if job_id not in first:
            continue
        at = first[job_id]
        if at < answered:
            early += 1  # the dispatch beat the answer to the client
        from_ack.append(max(0.0, at - answered))
        from_send.append(at - sent)
    return {
        "definition": (
            "wall-clock time from SubmitJob answering (the job is durable) to the first "
            "attempt's dispatch reaching its simulated agent; after_submit_sent counts from "
            "the request being sent"
        ),
        "after_submit_answered": _dist_ms(from_ack),
        "after_submit_sent": _dist_ms(from_send),
        "jobs_submitted_in_window": len(timeline.submitted),
        "jobs_not_dispatched": len(timeline.submitted) - len(from_ack),
        "dispatched_before_submit_answered": early,
    }


def heartbeat_lag(timeline: Timeline, results: list[WorkerResult]) -> dict[str, Any]:
    sends: dict[str, list[float]] = defaultdict(list)
    for result in results:
        for site, at in result.reports:
            sends[site].append(at * 1000)
    for times in sends.values():
        times.sort()
    lags, unmatched = [], 0
    start_ms, end_ms = timeline.window[0] * 1000, timeline.window[1] * 1000
    for site, stamp_ms in timeline.stamps:
        if not start_ms <= stamp_ms <= end_ms:
            continue
        times = sends.get(site, [])
        # The stamp is whole milliseconds; a report sent in the same millisecond still counts.
        i = bisect.bisect_right(times, stamp_ms + 1) - 1
        if i < 0:
            unmatched += 1
            continue
        lags.append(max(0.0, stamp_ms - times[i]) / 1000)
    window_s = timeline.window[1] - timeline.window[0]
    sent = sum(1 for times in sends.values() for t in times if start_ms <= t <= end_ms)
    return {
        "definition": (
            "wall-clock time from an agent writing a capacity report to the broker stamping "
            "it as the site's last report (last_report_unix_ms, whole ms, taken when the "
            "report's handler runs), for the stamps seen by listing the sites every 5 s"
        ),
        **_dist_ms(lags),
        "unmatched_stamps": unmatched,
        "reports_per_s": round(sent / window_s, 1) if window_s > 0 else None,
    }


def resources(timeline: Timeline) -> dict[str, Any]:
    s = timeline.samples
    span = s[-1]["t"] - s[0]["t"]
    steps = [
        (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"])
        for a, b in itertools.pairwise(s)
        if b["t"] > a["t"]
    ]
    return {
        "broker_cores": round((s[-1]["cpu_s"] - s[0]["cpu_s"]) / span, 3),
        "broker_main_process_cores": round((s[-1]["main_cpu_s"] - s[0]["main_cpu_s"]) / span, 3),
        "broker_cores_median_5s": round(statistics.median(steps), 3) if steps else None,
        "broker_cores_max_5s": round(max(steps), 3) if steps else None,
        "broker_rss_mb_start": round(s[0]["rss_kb"] / 1024, 1),
        "broker_rss_mb_end": round(s[-1]["rss_kb"] / 1024, 1),
        "broker_rss_mb_max": round(max(x["rss_kb"] for x in s) / 1024, 1),
        "broker_main_rss_mb_end": round(s[-1]["main_rss_kb"] / 1024, 1),
        "broker_fds_end": int(s[-1]["fds"]),
        "agents_cores": round((s[-1]["agents_cpu_s"] - s[0]["agents_cpu_s"]) / span, 3),
        "window_s": round(span, 1),
    }
