"""The agent process: wires config, capacity source, executor, journal and link, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import uuid
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from computenet.errors import ComputeNetError
from computenet.types import CapacityReport
from site_agent.capacity.base import CapacityError, CapacitySource
from site_agent.capacity.host import HostSource
from site_agent.capacity.slurm import SlurmSource
from site_agent.capacity.static import StaticSource
from site_agent.checkpoints import CheckpointTransfer
from site_agent.config import AgentConfig
from site_agent.devices.inventory import inventory_for
from site_agent.events import ShuttingDown, Started
from site_agent.executors.base import Executor
from site_agent.executors.local import LocalExecutor
from site_agent.executors.slurm import SlurmExecutor
from site_agent.journal import Journal
from site_agent.link import BrokerLink, LinkSettings, credentials_for
from site_agent.runtime import AgentRuntime
from site_agent.state import AgentState

log = logging.getLogger(__name__)

LOCK_FILE = "agent.lock"


class AgentError(ComputeNetError):
    """The agent cannot run as configured (state dir in use, probe failed, ...)."""

    reason = "AGENT_ERROR"


def agent_version() -> str:
    """The installed computenet version."""
    try:
        return metadata.version("computenet")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def make_capacity_source(cfg: AgentConfig, env: Mapping[str, str] | None = None) -> CapacitySource:
    """The capacity source the config names."""
    cap = cfg.capacity
    if cap.source == "static":
        pools = [(p.model, p.count, p.nodes or 0, p.cards_per_node or 0) for p in cap.pools]
        return StaticSource(pools, cpu_cores=cap.cpu_cores, memory_gb=cap.memory_gb)
    if cap.source == "host":
        return HostSource(env=env)
    return SlurmSource(partition=cap.partition, env=env, gres_models=cap.gres_models)


def make_executor(cfg: AgentConfig, env: Mapping[str, str] | None = None) -> Executor:
    """The executor the config names."""
    ex = cfg.executor
    if ex.kind == "local":
        return LocalExecutor(
            cfg.state_dir,
            cancel_grace_s=ex.cancel_grace_s,
            checkpoint_grace_s=cfg.checkpoint_grace_s,
            env=env,
            devices=inventory_for(cfg, env),
        )
    return SlurmExecutor(
        cfg.state_dir,
        env=env,
        partition=ex.partition,
        account=ex.account,
        extra_args=ex.sbatch_args,
        time_headroom=ex.time_headroom,
        gres_models=cfg.capacity.gres_models,
        checkpoint_grace_s=cfg.checkpoint_grace_s,
    )


def make_checkpoint_transfer(cfg: AgentConfig) -> CheckpointTransfer:
    """The checkpoint store the config names (none: checkpoints stay on this site)."""
    ck = cfg.checkpoints
    if ck is None:
        return CheckpointTransfer(cfg.state_dir)
    return CheckpointTransfer(
        cfg.state_dir,
        store=ck.store,
        export_command=ck.export_command,
        import_command=ck.import_command,
        timeout_s=ck.timeout_s,
    )


def advertised(cfg: AgentConfig, report: CapacityReport) -> dict[str, Any]:
    """The JSON shape `computenet-agent check --json` prints."""
    return {
        "site": cfg.site,
        "broker": cfg.broker,
        "brokers": list(cfg.brokers),
        "executor": cfg.executor.kind,
        "pools": [
            {"model": p.model, "total": p.total, "allocatable": p.allocatable, "in_use": p.in_use}
            for p in report.pools
        ],
        "cpu_cores": report.cpu_cores,
        "memory_gb": report.memory_gb,
    }


@contextlib.contextmanager
def state_dir_lock(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state dir so two agents never share one."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise AgentError(
                f"state dir {state_dir} is in use by another agent (pid {owner})"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


async def run_agent(
    cfg: AgentConfig, stop: asyncio.Event, *, env: Mapping[str, str] | None = None
) -> None:
    """Run until `stop` is set; raises SiteRejectedError if the broker refuses the site."""
    with state_dir_lock(cfg.state_dir):
        journal = Journal(cfg.state_dir)
        try:
            await _run(cfg, stop, journal, env)
        finally:
            journal.close()


async def _run(
    cfg: AgentConfig, stop: asyncio.Event, journal: Journal, env: Mapping[str, str] | None
) -> None:
    state = AgentState(
        journal.load(),
        lease_ms=int(cfg.lease_s * 1000),
        # stopping begins this long before the lease ends, so SIGKILL is not needed before it
        stop_lead_ms=int(cfg.executor.cancel_grace_s * 1000),
    )
    source = make_capacity_source(cfg, env)
    if isinstance(source, SlurmSource):
        # the first probe warns about GRES types that map to no model: at start, not only once
        # the broker answers (a failing probe here is reported by the heartbeats, as always)
        with contextlib.suppress(CapacityError):
            await asyncio.to_thread(source.probe)
    executor = make_executor(cfg, env)
    checkpoints = make_checkpoint_transfer(cfg)
    for line in checkpoints.warnings():
        log.warning("%s", line)
    runtime = AgentRuntime(
        state=state,
        journal=journal,
        executor=executor,
        site=cfg.site,
        checkpoints=checkpoints,
    )
    settings = LinkSettings(
        targets=cfg.brokers,
        site_id=cfg.site,
        agent_version=agent_version(),
        epoch=uuid.uuid4().hex,
        executor_kind=cfg.executor.kind,
        heartbeat_interval_s=cfg.heartbeat_interval_s,
        credentials=credentials_for(cfg.tls),
        server_name=cfg.tls.server_name if cfg.tls else None,
        checkpoints=checkpoints.configured,
    )
    link = BrokerLink(settings, runtime, lambda: runtime.capacity(source))
    started = Started(
        runtime.stimulus_id("start"), runtime.clock_ms(), runtime.mono_ms(), executor.lease()
    )
    await runtime.handle(started)
    log.info("agent started site=%s broker=%s epoch=%s", cfg.site, cfg.broker, settings.epoch)
    loops = asyncio.create_task(
        runtime.run_loops(stop, poll_interval_s=cfg.executor.poll_interval_s)
    )
    try:
        await link.run(stop)
    finally:
        stop.set()
        await loops
        # a transfer under way finishes (its outcome is journalled) before the journal closes
        await runtime.transfers_done()
        stop_attempts = cfg.executor.stop_jobs_on_exit
        await runtime.handle(ShuttingDown(runtime.stimulus_id("shutdown"), stop_attempts))
        log.info("agent stopped site=%s", cfg.site)


async def serve(cfg: AgentConfig) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_agent(cfg, stop)
