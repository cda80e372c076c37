"""A real multi-node Slurm for tests: one slurmd per network namespace, fake A800s, slurmdbd.

Several slurmd on one host need distinct addresses, so each node gets its own namespace on a
test bridge (tests/harness/netns.py); slurmctld runs in the root namespace on the bridge
address; MariaDB + slurmdbd (tests/harness/slurm_accounting.py) give `sacct` its records.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness import netns
from tests.harness.services import (
    ServiceUnavailable,
    free_port,
    live_run_dirs,
    make_run_dir,
    missing_commands,
    read_pid,
    remove_run_dir,
    require_from,
    run,
    stale_run_dirs,
    tails,
    terminate,
    wait_until,
    which,
)
from tests.harness.slurm import (
    INSTALL_HINT,
    SLURM_COMMANDS,
    SlurmCluster,
    _cluster_env,
    _create_fake_gpus,
    _daemon_alive,
    _probe_node,
    _remove_fake_gpus,
    _spawn,
    ensure_munge,
)
from tests.harness.slurm_accounting import (
    Accounting,
    accounting_problem,
    start_accounting,
    stop_accounting,
    wait_accounting,
)

logger = logging.getLogger(__name__)

RUN_DIR_PREFIX = "computenet-slurmnodes-"
NODE_COUNT = 2
GPUS_PER_NODE = 2
GPU_TYPE = "nvidia_a800"
"""Not a topology model id: the agent needs capacity.gres_models to offer these cards."""
PARTITION = "gpu"
FAKE_GPU_PATTERN = "/dev/cnnodegpu{}"
FAKE_GPU_MARKER = Path("/tmp/computenet-nodegpu-created")
READY_TIMEOUT_S = 60.0
MIN_JOB_AGE_S = 2
"""Finished jobs leave the controller (and squeue) soon, so tests reach the sacct path."""


@dataclass
class SlurmNodesCluster(SlurmCluster):
    """A running multi-node cluster; `node_name` is the first node, `nodes` all of them."""

    nodes: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    gpus_per_node: int = GPUS_PER_NODE
    accounting: bool = True
    bridge: netns.Bridge | None = field(default=None, repr=False)

    def job_fields(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` fields, or State/ExitCode from sacct once the job is purged."""
        fields = super().job_fields(job_id)
        if fields:
            return fields
        out = run(
            ["sacct", "-n", "-P", "-X", "-j", str(job_id), "-o", "State,ExitCode,NodeList"],
            env=self.env,
            check=False,
        ).stdout
        for line in out.splitlines():
            state, code, nodes = [*line.split("|"), "", ""][:3]
            return {"JobState": state.split()[0], "ExitCode": code, "NodeList": nodes}
        return {}

    def stop(self) -> None:
        """Cancel all jobs, stop every daemon, remove namespaces, bridge and folder (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        _teardown(self.run_dir, self.bridge)


def _write_config(
    run_dir: Path,
    cluster: str,
    hw: dict[str, int],
    bridge: netns.Bridge,
    nodes: dict[str, str],
    accounting: Accounting | None,
) -> tuple[Path, int]:
    for sub in ("state", "d", "log"):
        (run_dir / sub).mkdir(mode=0o755)
    (run_dir / "plugstack.conf").write_text("")
    devices = FAKE_GPU_PATTERN.format(f"[0-{GPUS_PER_NODE - 1}]")
    names = ",".join(nodes)
    (run_dir / "gres.conf").write_text(
        f"AutoDetect=off\nNodeName={names} Name=gpu Type={GPU_TYPE} File={devices}\n"
    )
    memory_mb = max(256, min(4096, hw["RealMemory"] // (2 * NODE_COUNT)))
    no_accounting = ["AccountingStorageType=accounting_storage/none"]
    acct = accounting.slurm_conf_lines() if accounting else no_accounting
    lines = [
        f"ClusterName={cluster}",
        # the controller's name must be this host's short name; its address is the bridge's
        f"SlurmctldHost={socket.gethostname().split('.')[0]}({bridge.address})",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"StateSaveLocation={run_dir / 'state'}",
        f"SlurmdSpoolDir={run_dir / 'd' / '%n'}",
        f"SlurmctldPidFile={run_dir / 'slurmctld.pid'}",
        f"SlurmdPidFile={run_dir / 'slurmd-%n.pid'}",
        f"SlurmctldLogFile={run_dir / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={run_dir / 'log' / 'slurmd-%n.log'}",
        f"PlugStackConfig={run_dir / 'plugstack.conf'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=64",
        "GresTypes=gpu",
        *acct,
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        "KillWait=5",
        f"MinJobAge={MIN_JOB_AGE_S}",
        "InactiveLimit=0",
        "MailProg=/bin/true",
        *(
            f"NodeName={name} NodeAddr={address} NodeHostname={name} CPUs={hw['CPUs']} "
            f"RealMemory={memory_mb} Gres=gpu:{GPU_TYPE}:{GPUS_PER_NODE} State=UNKNOWN"
            for name, address in nodes.items()
        ),
        f"PartitionName={PARTITION} Nodes={names} Default=YES MaxTime=INFINITE State=UP",
    ]
    conf_path = run_dir / "slurm.conf"
    conf_path.write_text("\n".join(lines) + "\n")
    return conf_path, memory_mb


def _stop_daemons(run_dir: Path, env: dict[str, str]) -> None:
    conf = str(run_dir / "slurm.conf")
    if _daemon_alive(run_dir, "slurmctld"):
        with contextlib.suppress(ServiceUnavailable):
            run(["scontrol", "shutdown"], env=env, check=False, timeout_s=20)
    for pid_file in sorted(run_dir.glob("*.harness.pid")):
        name = pid_file.name.removesuffix(".harness.pid")
        if name.startswith("slurm") and name != "slurmdbd":
            pid = read_pid(pid_file)
            if pid is not None:
                terminate(pid, marker=conf, grace_s=15)
    stop_accounting(run_dir)


def _teardown(run_dir: Path, bridge: netns.Bridge | None) -> None:
    """Cancel jobs, stop daemons, then remove the namespaces, bridge, devices and folder."""
    env = _cluster_env(run_dir / "slurm.conf")
    if _daemon_alive(run_dir, "slurmctld"):
        with contextlib.suppress(ServiceUnavailable):
            run(["scancel", "--partition", PARTITION], env=env, check=False)

            def drained() -> bool:
                out = run(["squeue", "-h", "-o", "%i"], env=env, check=False, timeout_s=10)
                return out.returncode == 0 and not out.stdout.strip()

            wait_until(drained, timeout_s=20, interval_s=0.5)
    _stop_daemons(run_dir, env)
    if bridge is not None:
        bridge.destroy()
    _remove_fake_gpus(RUN_DIR_PREFIX, FAKE_GPU_MARKER)
    remove_run_dir(run_dir)


def cleanup_stale_clusters() -> None:
    """Tear down clusters (and namespaces) of harness sessions that died without doing so."""
    for run_dir in stale_run_dirs(RUN_DIR_PREFIX):
        logger.info("removing stale multi-node slurm cluster path=%s", run_dir)
        _teardown(run_dir, None)
    netns.remove_stale()


def _nodes_ready(env: dict[str, str], nodes: tuple[str, ...]) -> bool:
    proc = run(["sinfo", "-h", "-N", "-o", "%N %T %G"], env=env, check=False, timeout_s=10)
    idle = {
        parts[0]
        for parts in (line.split() for line in proc.stdout.splitlines())
        if len(parts) >= 3 and parts[1] == "idle" and f"gpu:{GPU_TYPE}:{GPUS_PER_NODE}" in parts[2]
    }
    return idle >= set(nodes)


def _start_daemons(cluster: SlurmNodesCluster, bridge: netns.Bridge) -> None:
    conf = str(cluster.conf_path)
    _spawn(cluster.run_dir, "slurmctld", [which("slurmctld"), "-D", "-f", conf], cluster.env)
    for name in cluster.nodes:
        node = bridge.nodes[name]
        # nsenter, not `ip netns exec`: that also remounts /sys, hiding /sys/fs/cgroup
        command = [which("nsenter"), f"--net={netns.NETNS_DIR / node.name}"]
        command += [which("slurmd"), "-D", "-N", name, "-f", conf]
        _spawn(cluster.run_dir, f"slurmd-{name}", command, cluster.env)


def _wait_ready(cluster: SlurmNodesCluster) -> None:
    daemons = ("slurmctld", *(f"slurmd-{name}" for name in cluster.nodes))

    def settled() -> bool:
        dead = not all(_daemon_alive(cluster.run_dir, name) for name in daemons)
        return dead or _nodes_ready(cluster.env, cluster.nodes)

    wait_until(settled, timeout_s=READY_TIMEOUT_S, interval_s=0.1)
    if _nodes_ready(cluster.env, cluster.nodes):
        return
    dead = [name for name in daemons if not _daemon_alive(cluster.run_dir, name)]
    problem = f"{' and '.join(dead)} exited" if dead else f"not ready after {READY_TIMEOUT_S:.0f}s"
    sinfo = run(["sinfo", "-N", "-l"], env=cluster.env, check=False, timeout_s=10)
    raise ServiceUnavailable(
        f"nodes {','.join(cluster.nodes)} not idle with their GPUs: {problem}",
        log_tail=sinfo.stdout + sinfo.stderr + tails(sorted((cluster.run_dir / "log").iterdir())),
    )


def start_slurm_nodes_cluster(*, accounting: bool = True) -> SlurmNodesCluster:
    """Bring up slurmctld, NODE_COUNT slurmd in namespaces and (optionally) slurmdbd."""
    if missing := missing_commands([*SLURM_COMMANDS, "nsenter"]):
        raise ServiceUnavailable(f"missing {', '.join(missing)}", install_hint=INSTALL_HINT)
    if problem := netns.netns_problem():
        raise ServiceUnavailable(problem)
    if accounting and (problem := accounting_problem()):
        raise ServiceUnavailable(problem)
    ensure_munge()
    cleanup_stale_clusters()
    started = time.monotonic()
    run_dir = make_run_dir(RUN_DIR_PREFIX)
    os.chmod(run_dir, 0o755)
    bridge = netns.make_bridge()
    cluster_name = f"cn{uuid.uuid4().hex[:10]}"
    cluster: SlurmNodesCluster | None = None
    try:
        names = tuple(f"node{index}" for index in range(1, NODE_COUNT + 1))
        addresses = tuple(bridge.add_node(name).address for name in names)
        hw = _probe_node()
        acct = Accounting() if accounting else None
        conf_path, memory_mb = _write_config(
            run_dir, cluster_name, hw, bridge, dict(zip(names, addresses, strict=True)), acct
        )
        cluster = SlurmNodesCluster(
            env=_cluster_env(conf_path),
            conf_path=conf_path,
            node_name=names[0],
            cpus=hw["CPUs"],
            memory_mb=memory_mb,
            cluster_name=cluster_name,
            run_dir=run_dir,
            gpu_type=GPU_TYPE,
            gpu_count=GPUS_PER_NODE * NODE_COUNT,
            partition=PARTITION,
            nodes=names,
            addresses=addresses,
            accounting=accounting,
            bridge=bridge,
        )
        _create_fake_gpus(FAKE_GPU_PATTERN, GPUS_PER_NODE, FAKE_GPU_MARKER)
        if acct is not None:
            start_accounting(run_dir, cluster.env, acct)
            wait_accounting(run_dir, cluster.env, cluster_name)
        _start_daemons(cluster, bridge)
        _wait_ready(cluster)
    except BaseException:
        if cluster is not None:
            cluster.stop()
        else:
            _teardown(run_dir, bridge)
        raise
    logger.info(
        "multi-node slurm cluster up cluster=%s nodes=%s startup_s=%.1f",
        cluster_name,
        ",".join(cluster.nodes),
        time.monotonic() - started,
    )
    return cluster


@contextlib.contextmanager
def slurm_nodes_cluster_context(*, accounting: bool = True) -> Iterator[SlurmNodesCluster]:
    """`start_slurm_nodes_cluster` as a context manager that always tears it down."""
    cluster = start_slurm_nodes_cluster(accounting=accounting)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_nodes_cluster() -> Iterator[SlurmNodesCluster]:
    """A two-node Slurm with accounting for the session (skipped locally / failed in CI)."""
    try:
        cluster = start_slurm_nodes_cluster()
    except ServiceUnavailable as exc:
        require_from("multi-node Slurm", exc)
    with cluster:
        yield cluster


def other_live_clusters() -> list[Path]:
    """Run folders of multi-node clusters other live sessions own."""
    return live_run_dirs(RUN_DIR_PREFIX)
