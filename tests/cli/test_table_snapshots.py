"""Every table of the CLI at 80 and 120 columns against its checked-in snapshot: no line wider
than the terminal, every id whole, every header whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from rich.console import Console

from broker.placement import FederationSnapshot, Policy, place
from computenet.cli.accounting import queue_table, tenants_table, usage_table
from computenet.cli.cluster import replicas_table
from computenet.cli.jobs import jobs_grid
from computenet.cli.placements import Waiting, capacity_by_site, show_placement, show_waiting
from computenet.cli.rebalance import moves_table, runs_table
from computenet.cli.sites import pools_table, sites_table
from computenet.cli.tables import Grid, OutputFormat, print_grid
from computenet.cli.topology import regions_grid, sites_grid
from computenet.spec import JobSpec
from tests.cli import samples
from tests.cli.snapshots import matches_snapshot, rendered
from topology import default_topology

WIDTHS = (80, 120)
PLAN_TIME_S = 1_780_000_000.0
"""A fixed time for the broker's plan: prices follow the hour of day."""


@dataclass(frozen=True)
class Case:
    draw: Callable[[Console], None]
    ids: tuple[str, ...]
    """Text that must appear whole on one line (ids, whole reasons where asked)."""
    headers: tuple[str, ...] = ()
    """Headers that must appear whole (always-shown columns)."""


def _grid(make: Callable[[], Grid]) -> Callable[[Console], None]:
    return lambda out: print_grid(make(), None, out)


def _broker_plan(out: Console) -> None:
    # what `computenet-broker plan` prints, on the built-in topology at a fixed time
    spec = JobSpec.model_validate(
        {"name": "finetune", "kind": "training", "resources": {"accelerator": "a800", "count": 64},
         "duration_hours": 24, "command": ["python", "train.py"]}
    )  # fmt: skip
    snapshot = FederationSnapshot.all_free(default_topology(), PLAN_TIME_S)
    show_placement(place(spec, snapshot, Policy.default()), None, "plan for finetune", out)


def _explain_pending(out: Console) -> None:
    queued = samples.queue()[0]
    waiting = Waiting(samples.LONG_REASON, queued, capacity_by_site(samples.sites()))
    show_waiting(samples.JOB_IDS[0], samples.pending_placement(), waiting, None, out)


TOPOLOGY_SITES = tuple(s.id for s in default_topology().sites)
TOPOLOGY_REGIONS = tuple(r.id for r in default_topology().regions)

CASES: dict[str, Case] = {
    "jobs-list": Case(_grid(lambda: jobs_grid(samples.jobs())), samples.JOB_IDS,
                      ("job id", "state", "site")),
    "sites-list": Case(_grid(lambda: sites_table(samples.sites(), samples.NOW_MS)),
                       samples.SITE_IDS, ("id", "status", "pools free/total")),
    "sites-get-pools": Case(_grid(lambda: pools_table(samples.sites()[0])), ("a800", "910b"),
                            ("pool", "total", "held", "in use", "free")),
    "topology-sites": Case(_grid(lambda: sites_grid(default_topology())), TOPOLOGY_SITES,
                           ("id", "side")),
    "topology-regions": Case(_grid(lambda: regions_grid(default_topology())), TOPOLOGY_REGIONS,
                             ("id", "nearest site (RTT ms)")),
    "cluster-status": Case(_grid(lambda: replicas_table(samples.cluster(), samples.NOW_MS)),
                           ("broker-7f3a9c21d0e4", "broker-0b8e55d1a9c7", "10.20.30.42:50051"),
                           ("replica", "role", "last seen", "address")),
    "rebalance-plan": Case(_grid(lambda: moves_table(samples.runs()[0])), samples.JOB_IDS[:2],
                           ("job", "from", "to", "net CNY")),
    "rebalance-history": Case(_grid(lambda: runs_table(samples.runs())), samples.RUN_IDS,
                              ("run", "started", "planned", "applied", "errors")),
    "usage": Case(_grid(lambda: usage_table(samples.usage())),
                  ("zhangjiakou", "yangtze-demo", "12,345.50"), ("site", "card-hours", "CNY")),
    "queue": Case(_grid(lambda: queue_table(samples.queue())),
                  (samples.JOB_IDS[0], samples.JOB_IDS[2], "lab-b-with-a-long-tenant-name"),
                  ("#", "job", "tenant", "reason")),
    "tenants": Case(_grid(lambda: tenants_table(samples.tenants())),
                    ("lab-a", "visiting-group-7 (unlisted)"),
                    ("tenant", "model", "quota", "held", "borrowed")),
    "explain-placed": Case(
        lambda out: show_placement(samples.placement(), None, "placement of job-1", out),
        ("horinger", "zhangjiakou", "qingyang", "yangtze-demo", "chosen: horinger"),
        ("site", "feasible", "total"),
    ),
    "explain-pending": Case(
        _explain_pending,
        (samples.JOB_IDS[0], "zhangjiakou", "qingyang", "yangtze-demo", "queue: position 1"),
        ("site", "feasible"),
    ),
    "broker-plan": Case(_broker_plan, TOPOLOGY_SITES, ("site", "feasible", "total")),
}  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_table_fits_keeps_ids_whole_and_matches_its_snapshot(name: str, width: int) -> None:
    case = CASES[name]
    text = rendered(width, case.draw)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), text
    words = {w for line in lines for w in line.split()}
    for whole in case.ids:
        assert any(whole in line for line in lines) or whole in words, f"{whole!r} cut:\n{text}"
    header = next(line for line in lines if all(h in line for h in case.headers))
    assert header, text
    assert matches_snapshot(f"{name}-{width}", text), f"{name} at {width} changed:\n{text}"


def test_wide_shows_every_column_whatever_the_width() -> None:
    text = rendered(80, lambda out: print_grid(jobs_grid(samples.jobs()), OutputFormat.WIDE, out))
    header = text.splitlines()[0].split()
    assert header == ["job", "id", "name", "kind", "state", "site", "attempt", "tenant", "pool",
                      "reason"]  # fmt: skip
    assert "not shown" not in text
