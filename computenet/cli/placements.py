"""How `plan`, `explain` and `computenet-broker plan` print a placement: a table of every
candidate site, and for a pending job its place in the queue and why it waits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from computenet.cli.energy_inputs import energy_lines
from computenet.cli.safe_text import cell
from computenet.cli.tables import Column, Grid, OutputFormat, emit_document, is_document, print_grid
from computenet.types import Placement, SiteInfo
from computenet.usage import QueuedJob


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a pending job waits: its queue entry (None if the queue does not list it) and the
    live capacity of each site (empty if the broker would not say)."""

    job_reason: str
    queued: QueuedJob | None
    capacity: Mapping[str, str]


def capacity_by_site(sites: list[SiteInfo]) -> dict[str, str]:
    """`status, model free/total, ...` of each site, as the capacity ledger sees it now."""
    out: dict[str, str] = {}
    for s in sites:
        pools = " ".join(f"{p.model} {p.free}/{p.total}" for p in s.pools) or "no pools"
        out[s.site_id] = f"{pools}" if s.status.value == "active" else f"{s.status.value} {pools}"
    return out


def placement_grid(
    placement: Placement, title: str, capacity: Mapping[str, str] | None = None
) -> Grid:
    """Candidates with each cost term and the total, the reason last; the chosen site marked.

    With `capacity`, a column says what each site has free now (explain of a pending job).
    """
    terms: list[str] = []
    for candidate in placement.candidates:
        terms.extend(t for t in candidate.terms_cny if t not in terms)
    with_model = any(c.accelerator for c in placement.candidates)
    with_total = any(c.feasible for c in placement.candidates)
    columns = [Column("")] if placement.chosen else []
    columns.append(Column("site"))
    if capacity is not None:
        columns.append(Column("free/total now", drop=1))
    if with_model:  # the model and run time, where the broker says (for every feasible site)
        columns += [Column("model", drop=3), Column("hours", "right", drop=4)]
    columns.append(Column("feasible"))
    columns += [Column(t, "right", drop=5) for t in terms]
    if with_total:
        columns.append(Column("total", "right"))
    # with live capacity, the reasons go below the table before the capacity is hidden
    columns.append(Column("reason", prose=True, drop=2 if capacity is not None else 0))
    caption = "CNY per job" + ("; * chosen" if placement.chosen else "") if with_total else ""
    grid = Grid(columns, title=title, caption=caption, key=1 if placement.chosen else 0)
    marked = False
    for c in placement.candidates:
        # rows are cheapest first: mark the chosen site's first (a site may list several models)
        chosen = not marked and c.site == placement.chosen
        marked = marked or chosen
        cells: list[object] = ["*" if chosen else ""] if placement.chosen else []
        cells.append(c.site)
        if capacity is not None:
            cells.append(capacity.get(c.site, "-"))
        if with_model:
            cells += [c.accelerator, f"{c.run_hours:,.1f}" if c.feasible else ""]
        cells.append("yes" if c.feasible else "no")
        cells += [f"{c.terms_cny[t]:,.2f}" if t in c.terms_cny else "" for t in terms]
        if with_total:
            cells.append(f"{c.total_cny:,.2f}" if c.feasible else "")
        cells.append(c.reason)
        grid.add(*cells, style="bold green" if chosen else None)
    return grid


def show_placement(
    placement: Placement, fmt: OutputFormat | None, title: str, out: Console | None = None
) -> None:
    """Print a placement as a `Placement.to_dict()` document or as a table with a verdict."""
    if is_document(fmt):
        emit_document(placement.to_dict(), fmt)
        return
    out = out or Console(highlight=False, soft_wrap=False)
    print_grid(placement_grid(placement, title), fmt, out)
    for line in energy_lines(placement):
        out.print(cell(line))
    if placement.chosen:
        out.print(cell(f"chosen: {placement.chosen}"))
    else:
        out.print("chosen: none (no feasible site now; a submitted job would wait as pending)")


def waiting_dict(placement: Placement, waiting: Waiting) -> dict[str, Any]:
    """The document of `explain` for a pending job: the live plan, the queue entry, capacity."""
    queued = waiting.queued
    return {
        "state": "pending",
        "reason": waiting.job_reason,
        "queue": None
        if queued is None
        else {
            "position": queued.position,
            "reason": queued.reason.value,
            "reason_text": queued.reason_text,
        },
        "capacity": dict(waiting.capacity),
        "live_plan": placement.to_dict(),
    }


def show_waiting(
    job_id: str,
    placement: Placement,
    waiting: Waiting,
    fmt: OutputFormat | None,
    out: Console | None = None,
) -> None:
    """Print why a pending job waits: every site now (capacity, feasibility, reason), then
    its place in the queue and the reason the scheduler gives."""
    if is_document(fmt):
        emit_document(waiting_dict(placement, waiting), fmt)
        return
    out = out or Console(highlight=False, soft_wrap=False)
    capacity = waiting.capacity if waiting.capacity else None
    grid = placement_grid(placement, f"{job_id} is pending; every site now", capacity)
    print_grid(grid, fmt, out)
    for line in _verdict(placement, waiting):
        out.print(cell(line))


def _verdict(placement: Placement, waiting: Waiting) -> list[str]:
    lines = []
    if placement.chosen:
        lines.append(f"fits now at: {placement.chosen} (placed at the next round it is admitted)")
    else:
        lines.append("fits now at: no site (it waits for capacity)")
    queued = waiting.queued
    if queued is not None:
        lines.append(f"queue: position {queued.position}, {queued.reason.value}")
        if queued.reason_text:
            lines.append(f"waiting because: {queued.reason_text}")
    elif waiting.job_reason:
        lines.append(f"waiting because: {waiting.job_reason}")
    return lines
