"""The election loop: takes or renews the leader lease and tells the replica when its role changes.

Every replica runs one. The lease attempt is a single conditional write (broker.store.SqlLease);
its outcome is judged by the pure rules of broker.leadership.term. The loop also records this
replica in the roster, so `computenet cluster status` can list every replica and its role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from broker.leadership.term import LeadershipTiming, Term, Verdict, expired, judge
from broker.store import Coordination, LeaderRecord, ReplicaRecord

log = logging.getLogger(__name__)

LEADER = "leader"
FOLLOWER = "follower"


@dataclass(frozen=True, slots=True)
class ReplicaIdentity:
    """Who this replica is and where others reach it."""

    broker_id: str
    address: str
    agent_address: str
    started_unix_ms: int


RoleHook = Callable[[Term], Awaitable[None]]
DemoteHook = Callable[[str], Awaitable[None]]


class Elector:
    """Keeps this replica's view of its leadership current and calls back on every change.

    `on_elected(term)` runs when a term starts (build the leader's state), `on_deposed(reason)`
    when it ends (stop acting at once). Both run on the event loop, never concurrently.
    """

    def __init__(
        self,
        coordination: Coordination,
        identity: ReplicaIdentity,
        *,
        timing: LeadershipTiming,
        on_elected: RoleHook,
        on_deposed: DemoteHook,
        exclusive: bool = False,
    ) -> None:
        """With `exclusive`, this replica is known to be the only one (SQLite's file lock
        proves it): it seizes the lease when it has none instead of waiting out a dead
        predecessor's."""
        self._coordination = coordination
        self.identity = identity
        self.timing = timing
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._exclusive = exclusive
        self.term: Term | None = None
        self.terms_started = 0
        self._changing = asyncio.Lock()
        self.leader_hint: LeaderRecord | None = None
        """The leader as last read from the database (followers refer callers to it)."""

    def leading(self) -> bool:
        """True while this replica may act as leader (checked before every leader action)."""
        term = self.term
        return term is not None and term.valid(time.monotonic())

    @property
    def epoch(self) -> int:
        """The current term's epoch, 0 while following."""
        term = self.term
        return term.epoch if term is not None else 0

    async def attempt(self) -> None:
        """One lease attempt and its consequences."""
        sent_s = time.monotonic()
        lease = self._coordination.leader_lease
        budget_s = max(self.timing.valid_until(sent_s) - sent_s, 0.1)
        take = lease.seize if self._exclusive and self.term is None else lease.try_acquire
        try:
            epoch = await asyncio.wait_for(
                asyncio.to_thread(take, self.identity.broker_id, self.timing.lease_s),
                budget_s,
            )
        except Exception as exc:  # the database is away: keep the term until it runs out
            log.warning("leader lease attempt failed error=%s", exc)
            epoch = None
        verdict = judge(
            self.term,
            epoch,
            sent_s=sent_s,
            now_s=time.monotonic(),
            now_unix_ms=int(time.time() * 1000),
            timing=self.timing,
        )
        await self._apply(verdict)
        await self._record()
        await self._read_leader()

    async def _read_leader(self) -> None:
        if self.term is not None:
            me = self.identity
            self.leader_hint = LeaderRecord(
                me.broker_id,
                me.address,
                me.agent_address,
                self.term.epoch,
                self.term.since_unix_ms,
            )
            return
        try:
            self.leader_hint = await asyncio.to_thread(self._coordination.roster.leader, None)
        except Exception as exc:
            log.debug("cannot read the leader error=%s", exc)

    async def check_expiry(self) -> None:
        """Step down if the term ran out without a renewal (a slow or failing database)."""
        verdict = expired(self.term, time.monotonic())
        if verdict is not None:
            await self._apply(verdict)

    async def step_down(self, reason: str) -> None:
        """Stop leading now (a fenced write was refused: a newer epoch exists)."""
        if self.term is not None:
            await self._apply(Verdict(None, deposed=reason))

    async def _apply(self, verdict: Verdict) -> None:
        async with self._changing:
            if verdict.deposed and self.term is not None:
                old = self.term
                self.term = None
                if self.leader_hint is not None and (
                    self.leader_hint.broker_id == self.identity.broker_id
                ):
                    self.leader_hint = None  # not us any more; the next round reads who is
                log.warning("leadership lost epoch=%d reason=%s", old.epoch, verdict.deposed)
                await self._on_deposed(verdict.deposed)
            if verdict.elected and verdict.term is not None:
                self.term = verdict.term
                self.terms_started += 1
                log.info(
                    "leadership acquired broker_id=%s epoch=%d",
                    self.identity.broker_id,
                    verdict.term.epoch,
                )
                try:
                    await self._on_elected(verdict.term)
                except Exception:
                    log.exception("cannot take up leadership epoch=%d", verdict.term.epoch)
                    self.term = None
                    await self._on_deposed("leader start failed")
                    await self._release(verdict.term.epoch)
            elif verdict.term is not None:
                self.term = verdict.term

    async def _release(self, epoch: int) -> None:
        lease = self._coordination.leader_lease
        with contextlib.suppress(Exception):
            await asyncio.to_thread(lease.release, self.identity.broker_id, epoch)

    async def _record(self) -> None:
        me = self.identity
        term = self.term
        role = LEADER if term is not None else FOLLOWER
        record = ReplicaRecord(
            broker_id=me.broker_id,
            address=me.address,
            agent_address=me.agent_address,
            role=role,
            epoch=term.epoch if term is not None else 0,
            started_unix_ms=me.started_unix_ms,
            last_seen_unix_ms=int(time.time() * 1000),
        )
        try:
            await asyncio.to_thread(self._coordination.roster.record, record)
        except Exception as exc:
            log.debug("cannot record replica error=%s", exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Attempt every `renew_every_s`, and step down the moment a term runs out."""
        while not stop.is_set():
            try:
                await self.attempt()
            except Exception:
                log.exception("election round failed")
            deadline = time.monotonic() + self.timing.renew_every_s
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                term = self.term
                wait_s = left if term is None else min(left, term.valid_until_s - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(wait_s, 0.0) + 0.001)
                await self.check_expiry()

    async def resign(self) -> None:
        """Give the lease up at shutdown, so another replica takes over without waiting."""
        term = self.term
        if term is not None:
            await self._apply(Verdict(None, deposed="shutting down"))
            await self._release(term.epoch)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._coordination.roster.forget, self.identity.broker_id)
