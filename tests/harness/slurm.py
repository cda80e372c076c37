"""A real single-node Slurm cluster (slurmctld + slurmd on loopback, fake A800 GPUs) for tests."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import pwd
import re
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness.services import (
    ServiceUnavailable,
    free_port,
    live_run_dirs,
    make_run_dir,
    missing_commands,
    pid_alive,
    read_pid,
    remove_run_dir,
    require_from,
    run,
    stale_run_dirs,
    tail,
    tails,
    terminate,
    wait_until,
    which,
)

logger = logging.getLogger(__name__)

RUN_DIR_PREFIX = "computenet-slurm-"
INSTALL_HINT = "apt-get install slurm-wlm munge"
GPU_TYPE = "a800"
GPU_COUNT = 4
PARTITION = "debug"
FAKE_GPU_PATTERN = "/dev/fakegpu{}"
READY_TIMEOUT_S = 60.0
SLURM_COMMANDS = ("slurmctld", "slurmd", "sinfo", "sbatch", "scontrol", "scancel", "squeue")
MUNGE_COMMANDS = ("munged", "munge", "unmunge")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_LOG = Path("/var/log/munge/munged.log")
FAKE_GPU_MARKER = Path(tempfile.gettempdir()) / "computenet-fakegpu-created"
TERMINAL_JOB_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)


@dataclass
class SlurmCluster:
    """A running single-node cluster; pass `env` to every Slurm command and job submission."""

    env: dict[str, str]
    """Full environment for subprocesses: the caller's, minus SLURM_*, plus SLURM_CONF."""
    conf_path: Path
    node_name: str
    cpus: int
    memory_mb: int
    cluster_name: str
    run_dir: Path
    gpu_type: str = GPU_TYPE
    gpu_count: int = GPU_COUNT
    partition: str = PARTITION
    _stopped: bool = field(default=False, repr=False)

    @property
    def log_paths(self) -> list[Path]:
        return sorted((self.run_dir / "log").glob("*.log"))

    def run(self, *args: str, timeout_s: float = 30, check: bool = True) -> str:
        """Run a Slurm command against this cluster and return its stdout."""
        return run(args, env=self.env, timeout_s=timeout_s, check=check).stdout

    def sbatch(self, *args: str, cwd: Path | None = None) -> int:
        """Submit a batch job (`sbatch --parsable ARGS`) and return its job id."""
        out = run(["sbatch", "--parsable", *args], env=self.env, cwd=cwd, timeout_s=30).stdout
        return int(out.strip().split(";")[0])

    def job_fields(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as a dict of its KEY=VALUE fields ({} once the job is purged)."""
        proc = run(["scontrol", "-o", "show", "job", str(job_id)], env=self.env, check=False)
        if proc.returncode != 0:
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))

    def wait_job_state(self, job_id: int, states: Set[str], *, timeout_s: float = 60) -> bool:
        """Poll `scontrol show job` until the job's state is one of `states` (bounded wait)."""

        def reached() -> bool:
            return self.job_fields(job_id).get("JobState") in states

        return wait_until(reached, timeout_s=timeout_s, interval_s=0.25)

    def wait_job_done(self, job_id: int, *, timeout_s: float = 60) -> dict[str, str]:
        """Poll until the job reaches a terminal state and return its fields (bounded wait)."""
        if not self.wait_job_state(job_id, TERMINAL_JOB_STATES, timeout_s=timeout_s):
            raise TimeoutError(
                f"job {job_id} not finished after {timeout_s}s: {self.job_fields(job_id)}"
            )
        return self.job_fields(job_id)

    def stop(self) -> None:
        """Cancel all jobs, shut both daemons down and remove the run directory (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        _teardown(self.run_dir)

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _munge_works() -> bool:
    try:
        cred = run(["munge", "-n"], timeout_s=10).stdout
        proc = subprocess.run(
            ["unmunge"], input=cred, capture_output=True, text=True, timeout=10, check=False
        )
    except (ServiceUnavailable, subprocess.TimeoutExpired, OSError):
        return False
    return proc.returncode == 0


def _ensure_munge_key(uid: int, gid: int) -> None:
    """Create the munge key if missing; munged insists it is owned by its user and private."""
    MUNGE_KEY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(MUNGE_KEY.parent, uid, gid)
    if not MUNGE_KEY.exists():
        logger.info("creating munge key path=%s", MUNGE_KEY)
        if not missing_commands(["mungekey"]):
            run([which("mungekey"), "--create", f"--keyfile={MUNGE_KEY}"], timeout_s=30)
        else:
            fd = os.open(MUNGE_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "wb") as key:
                key.write(os.urandom(1024))
        os.chmod(MUNGE_KEY, 0o400)
    key_stat = MUNGE_KEY.stat()
    if (key_stat.st_uid, key_stat.st_gid) != (uid, gid):
        os.chown(MUNGE_KEY, uid, gid)
    if key_stat.st_mode & 0o077:
        os.chmod(MUNGE_KEY, 0o400)


def ensure_munge() -> None:
    """Make sure a munged with a valid key answers on the default socket (starting it if not)."""
    if missing := missing_commands(MUNGE_COMMANDS):
        raise ServiceUnavailable(f"missing {', '.join(missing)}", install_hint=INSTALL_HINT)
    if _munge_works():
        return
    if os.geteuid() != 0:
        raise ServiceUnavailable("munged is not running and starting it needs root")
    try:
        account = pwd.getpwnam("munge")
        uid, gid, as_user = account.pw_uid, account.pw_gid, [which("runuser"), "-u", "munge", "--"]
    except KeyError:
        uid, gid, as_user = 0, 0, []
    _ensure_munge_key(uid, gid)
    for directory, mode in (
        ("/run/munge", 0o755),
        ("/var/lib/munge", 0o711),
        ("/var/log/munge", 0o700),
    ):
        Path(directory).mkdir(mode=mode, parents=True, exist_ok=True)
        os.chown(directory, uid, gid)
    logger.info("starting munged")
    run([*as_user, which("munged"), "--force"], timeout_s=30)
    if not wait_until(_munge_works, timeout_s=15, interval_s=0.2):
        raise ServiceUnavailable(
            "munged started but `munge -n | unmunge` fails", log_tail=tail(MUNGE_LOG)
        )


def _probe_node() -> dict[str, int]:
    """Hardware as slurmd sees it (`slurmd -C`): CPUs, topology and RealMemory."""
    out = run([which("slurmd"), "-C"], timeout_s=30).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    try:
        return {key: int(fields[key]) for key in keys}
    except (KeyError, ValueError) as exc:
        raise ServiceUnavailable(f"cannot parse `slurmd -C`: {out!r}") from exc


def _create_fake_gpus(
    pattern: str = FAKE_GPU_PATTERN, count: int = GPU_COUNT, marker: Path = FAKE_GPU_MARKER
) -> None:
    """Stand-in character devices (like /dev/null) for the GRES File= entries.

    Devices the harness creates are listed in a marker file so that whichever session ends
    last removes them; devices that existed beforehand are never touched.
    """
    created = []
    for index in range(count):
        path = pattern.format(index)
        if os.path.exists(path):
            continue
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except FileExistsError:
            continue
        except OSError as exc:
            raise ServiceUnavailable(f"cannot create fake GPU device {path}: {exc}") from exc
        os.chmod(path, 0o666)
        created.append(path)
    if created:
        with open(marker, "a") as out:
            out.writelines(f"{path}\n" for path in created)


def _remove_fake_gpus(prefix: str = RUN_DIR_PREFIX, marker: Path = FAKE_GPU_MARKER) -> None:
    """Remove harness-created devices once no other harness session of `prefix` is alive."""
    if live_run_dirs(prefix):
        return
    try:
        created = set(marker.read_text().split())
    except OSError:
        return
    for path in created:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    marker.unlink(missing_ok=True)


def _bind_settings() -> tuple[str, str]:
    """The address daemons use and the CommunicationParameters line that keeps them on it.

    With NoInAddrAny/NoCtldInAddrAny Slurm binds to whatever the hostname resolves to, so it is
    only safe (and only consistent with NodeAddr) when that is a loopback address; otherwise the
    daemons listen on all interfaces while every peer still talks to 127.0.0.1.
    """
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        infos = []
    if infos and ipaddress.ip_address(infos[0][4][0]).is_loopback:
        return str(infos[0][4][0]), "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny"
    logger.warning("hostname does not resolve to loopback; slurm daemons will bind all addresses")
    return "127.0.0.1", "# hostname is not loopback: daemons bind INADDR_ANY"


def _write_config(run_dir: Path, node: str, hw: dict[str, int], cluster: str) -> tuple[Path, int]:
    for sub in ("state", "spool", "log"):
        (run_dir / sub).mkdir(mode=0o755)
    (run_dir / "plugstack.conf").write_text("")
    memory_mb = max(256, hw["RealMemory"] - min(1024, hw["RealMemory"] // 10))
    gpus = f"{FAKE_GPU_PATTERN.format(f'[0-{GPU_COUNT - 1}]')}"
    (run_dir / "gres.conf").write_text(
        f"AutoDetect=off\nNodeName={node} Name=gpu Type={GPU_TYPE} File={gpus}\n"
    )
    topology = " ".join(
        f"{key}={hw[key]}"
        for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    )
    address, comm_params = _bind_settings()
    lines = [
        f"ClusterName={cluster}",
        f"SlurmctldHost={node}({address})",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        comm_params,
        f"StateSaveLocation={run_dir / 'state'}",
        f"SlurmdSpoolDir={run_dir / 'spool'}",
        f"SlurmctldPidFile={run_dir / 'slurmctld.pid'}",
        f"SlurmdPidFile={run_dir / 'slurmd.pid'}",
        f"SlurmctldLogFile={run_dir / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={run_dir / 'log' / 'slurmd.log'}",
        f"PlugStackConfig={run_dir / 'plugstack.conf'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=128",
        "GresTypes=gpu",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        "KillWait=5",
        "MinJobAge=300",
        "InactiveLimit=0",
        "MailProg=/bin/true",
        f"NodeName={node} NodeAddr={address} {topology} RealMemory={memory_mb} "
        f"Gres=gpu:{GPU_TYPE}:{GPU_COUNT} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]
    conf_path = run_dir / "slurm.conf"
    conf_path.write_text("\n".join(lines) + "\n")
    return conf_path, memory_mb


def _spawn(run_dir: Path, name: str, cmd: Sequence[str], env: dict[str, str]) -> None:
    """Start a daemon in the foreground (-D) as a detached child and record its pid."""
    with open(run_dir / "log" / f"{name}.stderr", "ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    (run_dir / f"{name}.harness.pid").write_text(f"{proc.pid}\n")


def _daemon_alive(run_dir: Path, name: str) -> bool:
    pid = read_pid(run_dir / f"{name}.harness.pid")
    return pid is not None and pid_alive(pid)


def _stop_daemons(run_dir: Path, env: dict[str, str]) -> None:
    conf_path = str(run_dir / "slurm.conf")
    pids = [read_pid(run_dir / f"{name}.harness.pid") for name in ("slurmd", "slurmctld")]
    if _daemon_alive(run_dir, "slurmctld"):
        with contextlib.suppress(ServiceUnavailable):
            run(["scontrol", "shutdown"], env=env, check=False, timeout_s=20)
    for pid in pids:
        if pid is not None:
            terminate(pid, marker=conf_path, grace_s=15)


def _queue_empty(env: dict[str, str]) -> bool:
    proc = run(["squeue", "-h", "-o", "%i"], env=env, check=False, timeout_s=10)
    return proc.returncode == 0 and not proc.stdout.strip()


def _teardown(run_dir: Path) -> None:
    """Cancel the cluster's jobs (so no job processes outlive it), stop it, clean up after it."""
    env = _cluster_env(run_dir / "slurm.conf")
    if _daemon_alive(run_dir, "slurmctld"):
        with contextlib.suppress(ServiceUnavailable):
            run(["scancel", "--partition", PARTITION], env=env, check=False)
            wait_until(lambda: _queue_empty(env), timeout_s=20, interval_s=0.5)
    _stop_daemons(run_dir, env)
    _remove_fake_gpus()
    remove_run_dir(run_dir)


def cleanup_stale_clusters() -> None:
    """Tear down clusters of harness sessions that died without doing so (found by pid file)."""
    for run_dir in stale_run_dirs(RUN_DIR_PREFIX):
        logger.info("removing stale slurm cluster path=%s", run_dir)
        _teardown(run_dir)


def _node_ready(env: dict[str, str], node: str) -> bool:
    proc = run(["sinfo", "-h", "-N", "-o", "%N %T %G"], env=env, check=False, timeout_s=10)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == node and parts[1] == "idle":
            return f"gpu:{GPU_TYPE}:{GPU_COUNT}" in parts[2]
    return False


def _wait_ready(cluster: SlurmCluster) -> None:
    """Wait (bounded) for the node to be idle with its GPUs; fail early if a daemon exits."""
    daemons = ("slurmctld", "slurmd")

    def settled() -> bool:
        dead = not all(_daemon_alive(cluster.run_dir, name) for name in daemons)
        return dead or _node_ready(cluster.env, cluster.node_name)

    wait_until(settled, timeout_s=READY_TIMEOUT_S)
    if _node_ready(cluster.env, cluster.node_name):
        return
    dead = [name for name in daemons if not _daemon_alive(cluster.run_dir, name)]
    problem = f"{' and '.join(dead)} exited" if dead else f"not ready after {READY_TIMEOUT_S:.0f}s"
    sinfo = run(["sinfo", "-N", "-l"], env=cluster.env, check=False, timeout_s=10)
    raise ServiceUnavailable(
        f"node {cluster.node_name} not idle with gpu:{GPU_TYPE}:{GPU_COUNT}: {problem}",
        log_tail=sinfo.stdout + sinfo.stderr + tails(sorted((cluster.run_dir / "log").iterdir())),
    )


def _cluster_env(conf_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env["SLURM_CONF"] = str(conf_path)
    return env


def start_slurm_cluster() -> SlurmCluster:
    """Bring up slurmctld + slurmd on loopback with fake GPUs; wait until the node is idle."""
    if missing := missing_commands(SLURM_COMMANDS):
        raise ServiceUnavailable(f"missing {', '.join(missing)}", install_hint=INSTALL_HINT)
    if os.geteuid() != 0:
        raise ServiceUnavailable("slurmd must run as root to launch jobs; run the tests as root")
    ensure_munge()
    cleanup_stale_clusters()
    started = time.monotonic()
    run_dir = make_run_dir(RUN_DIR_PREFIX)
    os.chmod(run_dir, 0o755)
    node = socket.gethostname().split(".")[0]
    cluster_name = f"cn{uuid.uuid4().hex[:10]}"
    hw = _probe_node()
    conf_path, memory_mb = _write_config(run_dir, node, hw, cluster_name)
    cluster = SlurmCluster(
        env=_cluster_env(conf_path),
        conf_path=conf_path,
        node_name=node,
        cpus=hw["CPUs"],
        memory_mb=memory_mb,
        cluster_name=cluster_name,
        run_dir=run_dir,
    )
    try:
        _create_fake_gpus()
        _spawn(run_dir, "slurmctld", [which("slurmctld"), "-D", "-f", str(conf_path)], cluster.env)
        _spawn(run_dir, "slurmd", [which("slurmd"), "-D", "-f", str(conf_path)], cluster.env)
        _wait_ready(cluster)
    except BaseException:
        cluster.stop()
        raise
    logger.info(
        "slurm cluster up cluster=%s node=%s startup_s=%.1f",
        cluster_name,
        node,
        time.monotonic() - started,
    )
    return cluster


@contextlib.contextmanager
def slurm_cluster_context() -> Iterator[SlurmCluster]:
    """`start_slurm_cluster` as a context manager that always tears the cluster down."""
    cluster = start_slurm_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A single-node Slurm for the session (skipped locally / failed in CI if unavailable)."""
    try:
        cluster = start_slurm_cluster()
    except ServiceUnavailable as exc:
        require_from("Slurm", exc)
    with cluster:
        yield cluster
