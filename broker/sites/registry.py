"""The live registry of member sites: status by heartbeat TTL, latest capacity, connection facts.

Liveness: a site that sends heartbeats is `active`; silent past `suspect_after_s` it becomes
`suspect` (no new work); silent past `lost_after_s` it is `lost` and its jobs are requeued or
failed. After a broker restart every site starts `offline` with its clock at the restart, which
gives agents a grace period of `lost_after_s` to reconnect before anything is declared lost.

Capacity is apart from liveness: a heartbeat whose probe failed keeps the site alive and the last
good capacity, marked stale; stale past `stale_capacity_after_s` the site takes no new work.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from computenet.types import CapacityReport, PoolCapacity, SiteId, SiteInfo, SiteStatus


def report_to_json(report: CapacityReport) -> str:
    """A site's latest capacity report as the store keeps it between restarts."""
    document: dict[str, object] = {
        "pools": [
            [p.model, p.total, p.allocatable, p.in_use, p.federation_in_use]
            + ([p.nodes, p.cards_per_node] if p.nodes or p.cards_per_node else [])
            for p in report.pools
        ],
        "cpu": [report.cpu_cores, report.cpu_cores_free, report.federation_cpu_cores],
        "mem": [report.memory_gb, report.memory_gb_free, report.federation_memory_gb],
    }
    if report.price_cny_per_kwh or report.carbon_kg_per_kwh:
        document["live"] = [report.price_cny_per_kwh, report.carbon_kg_per_kwh]
    return json.dumps(document)


def report_from_json(text: str) -> CapacityReport:
    """Inverse of report_to_json; an empty or unknown document gives an empty report."""
    data = json.loads(text or "{}")
    if not data:
        return CapacityReport()
    price, carbon = data.get("live", (0.0, 0.0))
    cpu, mem = [*data["cpu"], 0.0][:3], [*data["mem"], 0.0][:3]  # older records lack the last
    return CapacityReport(
        pools=tuple(_pool_from_json(p) for p in data.get("pools", [])),
        cpu_cores=cpu[0],
        cpu_cores_free=cpu[1],
        memory_gb=mem[0],
        memory_gb_free=mem[1],
        federation_cpu_cores=cpu[2],
        federation_memory_gb=mem[2],
        price_cny_per_kwh=price,
        carbon_kg_per_kwh=carbon,
    )


def _pool_from_json(item: list[Any]) -> PoolCapacity:
    """[model, total, allocatable, in_use, federation_in_use?, nodes?, cards_per_node?]."""
    model, total, allocatable, in_use, federation_in_use, nodes, per_node = [*item, 0, 0, 0][:7]
    return PoolCapacity(
        model,
        total,
        allocatable,
        in_use,
        federation_in_use,
        nodes=nodes,
        cards_per_node=per_node,
    )


@dataclass(slots=True)
class SiteEntry:
    """What the broker knows about one site right now."""

    site_id: SiteId
    name: str
    province: str
    side: str
    status: SiteStatus = SiteStatus.OFFLINE
    last_seen_s: float = 0.0
    last_report_unix_ms: int = 0
    report: CapacityReport = field(default_factory=CapacityReport)
    drained: bool = False
    executor: str = ""
    agent_version: str = ""
    agent_epoch: str = ""
    connected: bool = False
    checkpoints: bool = False
    """The agent's last hello said it sends and receives checkpoints of moved jobs."""
    capacity_unix_ms: int = 0
    """When the last good capacity report arrived (0: never)."""
    capacity_error: str = ""
    """Why the agent's probe fails; empty while capacity is fresh."""
    capacity_stale_since_s: float | None = None
    """Monotonic time of the first failed probe since the last good one; None when fresh."""
    revision: int = 0
    """The registry's revision when status, report, drain or stale capacity last changed."""

    @property
    def capacity_stale(self) -> bool:
        """True while the agent's probe fails (the report is the last good one)."""
        return self.capacity_stale_since_s is not None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A site moved from one status to another."""

    site_id: SiteId
    old: SiteStatus
    new: SiteStatus


class SiteRegistry:
    """Sites of the served topology, their status and their latest reports."""

    def __init__(
        self,
        sites: Iterable[tuple[SiteId, str, str, str]],
        *,
        suspect_after_s: float,
        lost_after_s: float,
        now_s: float,
        stale_capacity_after_s: float = 60.0,
    ) -> None:
        if lost_after_s <= suspect_after_s:
            raise ValueError("lost_after_s must exceed suspect_after_s")
        self.suspect_after_s = suspect_after_s
        self.lost_after_s = lost_after_s
        self.stale_capacity_after_s = stale_capacity_after_s
        self._sites = {
            sid: SiteEntry(sid, name, province, side, last_seen_s=now_s)
            for sid, name, province, side in sites
        }
        self.revision = 0
        """Grows whenever any entry's status, report, drain or stale capacity changes, so a
        reader can find what changed since it last looked (each entry keeps its own)."""
        self.active_sites = 0
        """Entries whose status is `active`, kept as statuses change."""

    def __contains__(self, site_id: object) -> bool:
        return site_id in self._sites

    def get(self, site_id: SiteId) -> SiteEntry:
        """The entry of a site; KeyError if not in the topology."""
        return self._sites[site_id]

    def entries(self) -> list[SiteEntry]:
        """All entries in topology order."""
        return list(self._sites.values())

    def changed_since(self, revision: int) -> list[SiteEntry]:
        """Entries whose status, report, drain or stale capacity changed after `revision`."""
        if revision >= self.revision:
            return []
        return [e for e in self._sites.values() if e.revision > revision]

    def _changed(self, entry: SiteEntry) -> None:
        self.revision += 1
        entry.revision = self.revision

    def _set_status(self, entry: SiteEntry, new: SiteStatus) -> StatusChange:
        change = StatusChange(entry.site_id, entry.status, new)
        self.active_sites += (new == SiteStatus.ACTIVE) - (entry.status == SiteStatus.ACTIVE)
        entry.status = new
        self._changed(entry)
        return change

    def _status_for(self, entry: SiteEntry) -> SiteStatus:
        return SiteStatus.DRAINING if entry.drained else SiteStatus.ACTIVE

    def connected(
        self,
        site_id: SiteId,
        *,
        now_s: float,
        executor: str,
        version: str,
        epoch: str,
        checkpoints: bool = False,
    ) -> StatusChange | None:
        """An agent said hello (`checkpoints`: it can send and receive moved checkpoints)."""
        entry = self._sites[site_id]
        entry.connected, entry.checkpoints = True, checkpoints
        entry.executor, entry.agent_version, entry.agent_epoch = executor, version, epoch
        return self._seen(entry, now_s)

    def disconnected(self, site_id: SiteId) -> None:
        """The agent's stream ended; liveness now runs on the TTL alone."""
        self._sites[site_id].connected = False

    def reported(
        self, site_id: SiteId, report: CapacityReport, *, now_s: float, now_unix_ms: int
    ) -> StatusChange | None:
        """A good capacity report arrived (alone from older agents, or in a heartbeat)."""
        entry = self._sites[site_id]
        if entry.capacity_stale_since_s is not None or entry.report != report:
            self._changed(entry)
        entry.report = report
        entry.last_report_unix_ms = entry.capacity_unix_ms = now_unix_ms
        entry.capacity_error, entry.capacity_stale_since_s = "", None
        return self._seen(entry, now_s)

    def heartbeat(
        self,
        site_id: SiteId,
        capacity: CapacityReport | None,
        *,
        error: str = "",
        now_s: float,
        now_unix_ms: int,
    ) -> StatusChange | None:
        """A heartbeat arrived: the site is alive; without capacity, the last report goes stale."""
        if capacity is not None:
            return self.reported(site_id, capacity, now_s=now_s, now_unix_ms=now_unix_ms)
        entry = self._sites[site_id]
        entry.last_report_unix_ms = now_unix_ms
        entry.capacity_error = error or "capacity probe failed"
        if entry.capacity_stale_since_s is None:
            entry.capacity_stale_since_s = now_s
            self._changed(entry)
        return self._seen(entry, now_s)

    def capacity_withheld(self, entry: SiteEntry, now_s: float) -> bool:
        """True if the site's capacity has been stale too long to place new work on it."""
        since = entry.capacity_stale_since_s
        return since is not None and now_s - since > self.stale_capacity_after_s

    def _seen(self, entry: SiteEntry, now_s: float) -> StatusChange | None:
        entry.last_seen_s = now_s
        new = self._status_for(entry)
        if entry.status == new:
            return None
        return self._set_status(entry, new)

    def set_drained(self, site_id: SiteId, drained: bool) -> StatusChange | None:
        """Drain or undrain a site; a silent site keeps its liveness status."""
        entry = self._sites[site_id]
        if entry.drained != drained:
            self._changed(entry)
        entry.drained = drained
        if entry.status not in (SiteStatus.ACTIVE, SiteStatus.DRAINING):
            return None
        new = self._status_for(entry)
        if new == entry.status:
            return None
        return self._set_status(entry, new)

    def tick(self, now_s: float) -> list[StatusChange]:
        """Apply the heartbeat TTLs; returns the changes (to suspect or lost)."""
        changes = []
        for entry in self._sites.values():
            silent_s = now_s - entry.last_seen_s
            new = entry.status
            live = entry.status in (SiteStatus.ACTIVE, SiteStatus.DRAINING)
            if live and silent_s > self.suspect_after_s:
                new = SiteStatus.SUSPECT
            if entry.status != SiteStatus.LOST and silent_s > self.lost_after_s:
                new = SiteStatus.LOST
            if new != entry.status:
                changes.append(self._set_status(entry, new))
        return changes

    def info(self, site_id: SiteId, running_jobs: int = 0) -> SiteInfo:
        """The public view of a site."""
        e = self._sites[site_id]
        return SiteInfo(
            site_id=e.site_id,
            name=e.name,
            province=e.province,
            side=e.side,
            status=e.status,
            pools=e.report.pools,
            cpu_cores=e.report.cpu_cores,
            memory_gb=e.report.memory_gb,
            last_report_unix_ms=e.last_report_unix_ms,
            running_jobs=running_jobs,
            executor=e.executor,
            agent_version=e.agent_version,
            capacity_stale=e.capacity_stale,
            capacity_error=e.capacity_error,
            capacity_unix_ms=e.capacity_unix_ms,
        )

    def restore(self, site_id: SiteId, *, drained: bool, report: CapacityReport) -> None:
        """Load what the store remembers (drain flag, last report) after a restart."""
        if site_id in self._sites:
            entry = self._sites[site_id]
            self._sites[site_id] = entry = replace(entry, drained=drained, report=report)
            self._changed(entry)
