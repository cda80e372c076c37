"""What the lifecycle core asks its shells to do: write a transition, dispatch, stop, move on.

Effects of one `handle` call are carried out in order; those after a `Write` depend on it, so
a shell stops at a write whose compare-and-set did not hold (someone else moved the job).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.store.protocol import Transition
from computenet.types import JobId, SiteId


@dataclass(frozen=True, slots=True)
class Write:
    """Record a state change (and its ledger lines) as one compare-and-set transition."""

    transition: Transition


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Deliver the attempt to its site, to run in `pool`."""

    job_id: JobId
    attempt: int
    site: SiteId
    pool: str
    restore_ref: str = ""
    """The checkpoint the attempt restores from before it starts ("" to start fresh)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Ask a site to stop one attempt, checkpointing first if `checkpoint`."""

    site: SiteId
    job_id: JobId
    attempt: int
    reason: str
    checkpoint: bool = False


@dataclass(frozen=True, slots=True)
class PlaceAtTarget:
    """The migrating job may now be placed at its target (the shell checks it still fits)."""

    job_id: JobId
    target: SiteId
    note: str = ""
    replacing: int = 0
    """The attempt known to be over (stopped, or its site gone); `Placed` must name it."""
    restore_ref: str = ""
    """The checkpoint the new attempt restores from: `Placed` (or the requeue if the target
    cannot take the job) must carry it on, so the job records it."""
    cause: str = "migrated"
    """The cause the placement records (`migration_fell_back` when `target` is the site the
    job came from because its checkpoint could not be taken or exported)."""


Effect = Write | Dispatch | Stop | PlaceAtTarget
