"""The federation in domain terms: site views with ledger holds, and draining, for every edge."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from broker.control.capacity import SiteHolds, holds_by_site, pool_views
from broker.sites.registry import SiteRegistry, StatusChange, report_to_json
from broker.sites.sessions import OutDrain, SessionTable
from broker.store.protocol import Fence, FenceLostError, SiteRecord
from broker.writer import StoreWriter
from computenet.errors import SiteNotFoundError, UnavailableError
from computenet.types import ACTIVE_STATES, SiteId, SiteInfo, SiteStatus


@dataclass(frozen=True, slots=True)
class LivePrice:
    """What a site last reported of its power: price and grid carbon (0: not reported)."""

    price_cny_per_kwh: float = 0.0
    carbon_kg_per_kwh: float = 0.0


class Federation:
    """Site views and drains of the current leadership term (its registry is live)."""

    def __init__(
        self,
        *,
        registry: SiteRegistry,
        sessions: SessionTable,
        writer: StoreWriter,
        on_status: Callable[[list[StatusChange]], Awaitable[None]],
        fence: Fence | None = None,
    ) -> None:
        """With a `fence` (the leader's epoch), drains are saved only while it holds."""
        self._registry = registry
        self._sessions = sessions
        self._writer = writer
        self._on_status = on_status
        self._fence = fence

    @property
    def revision(self) -> int:
        """Grows whenever a site's status, report or drain changes."""
        return self._registry.revision

    async def views(self) -> SiteViews:
        """Per-request site views: active job counts and ledger holds, read once."""
        store = self._writer.store
        active = await self._writer.read(lambda: store.jobs_in_states(frozenset(ACTIVE_STATES)))
        holds = await self._writer.read(store.holds)
        return SiteViews(Counter(j.site for j in active if j.site), holds_by_site(holds), self)

    def info(self, site_id: SiteId, running: int, held: SiteHolds | None) -> SiteInfo:
        """The public view of a site, its pools showing what the ledger holds and what is free."""
        info = self._registry.info(site_id, running)
        return replace(info, pools=pool_views(info.pools, held))

    def site_ids(self, status: SiteStatus | None = None) -> list[SiteId]:
        """Sites in topology order, those of one status if given."""
        return [e.site_id for e in self._registry.entries() if status is None or e.status == status]

    def statuses(self) -> dict[str, str]:
        """Every site's status, in topology order."""
        return {e.site_id: e.status.value for e in self._registry.entries()}

    def live_price(self, site_id: SiteId) -> LivePrice:
        """The power price and carbon the site's agent last reported."""
        report = self._registry.get(site_id).report
        return LivePrice(report.price_cny_per_kwh, report.carbon_kg_per_kwh)

    def require(self, site_id: str) -> SiteId:
        """`site_id` as a SiteId; SiteNotFoundError if the topology has no such site."""
        if site_id not in self._registry:
            raise SiteNotFoundError(f"site {site_id!r} is not in the topology")
        return SiteId(site_id)

    async def drain(self, site_id: str, drain: bool) -> SiteInfo:
        """Drain a site (no new work; running work stays) or resume it; saved and told to the
        site's agent."""
        sid = self.require(site_id)
        change = self._registry.set_drained(sid, drain)
        entry = self._registry.get(sid)
        record = SiteRecord(
            site_id=sid,
            status=entry.status,
            last_report_unix_ms=entry.last_report_unix_ms,
            report_json=report_to_json(entry.report),
            executor=entry.executor,
            agent_version=entry.agent_version,
            agent_epoch=entry.agent_epoch,
            drained=drain,
        )
        try:
            await self._writer.write(
                lambda: self._writer.store.save_site(record, fence=self._fence)
            )
        except FenceLostError:
            raise UnavailableError("this broker replica no longer leads; retry", 0.5) from None
        session = self._sessions.get(sid)
        if session is not None:
            session.send(OutDrain(session.next_id(), drain))
        if change is not None:
            await self._on_status([change])
        return (await self.views())[sid]


class SiteViews:
    """Site views of one request: active job counts and ledger holds, read once."""

    def __init__(
        self, running: Counter[str], held: dict[str, SiteHolds], federation: Federation
    ) -> None:
        self._running = running
        self._held = held
        self._federation = federation

    def __getitem__(self, site_id: str) -> SiteInfo:
        sid = SiteId(site_id)
        return self._federation.info(sid, self._running[site_id], self._held.get(site_id))

    def held(self, site_id: str) -> SiteHolds | None:
        """The ledger's holds at a site (None: nothing held)."""
        return self._held.get(site_id)
