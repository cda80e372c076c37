"""Slurm accounting for test clusters: a throwaway MariaDB on loopback and a slurmdbd over it.

`sacct` reads only from slurmdbd in Debian's slurm-wlm 22.05 (no accounting_storage/filetxt,
no `sacct --completion`), and slurmdbd stores only in MySQL/MariaDB. MariaDB starts in well
under a second on an empty data folder with `--skip-grant-tables` (no system tables needed).
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.services import (
    ServiceUnavailable,
    free_port,
    missing_commands,
    pid_alive,
    read_pid,
    run,
    tails,
    terminate,
    wait_until,
    which,
)

INSTALL_HINT = "apt-get install slurmdbd mariadb-server"
COMMANDS = ("slurmdbd", "mariadbd", "sacct", "sacctmgr")
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Accounting:
    """Where the cluster's slurmdbd listens (slurm.conf's AccountingStorage* lines)."""

    dbd_port: int = field(default_factory=free_port)

    def slurm_conf_lines(self) -> list[str]:
        return [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={self.dbd_port}",
        ]


def accounting_problem() -> str | None:
    """Why accounting cannot run here (None if it can)."""
    missing = missing_commands(COMMANDS)
    return f"missing {', '.join(missing)} ({INSTALL_HINT})" if missing else None


def _spawn(run_dir: Path, name: str, cmd: list[str], env: dict[str, str]) -> int:
    with open(run_dir / "log" / f"{name}.stderr", "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    (run_dir / f"{name}.harness.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _mariadb_ready(port: int) -> bool:
    # any user is let in with --skip-grant-tables; the client's own TCP connect is the probe
    probe = ["mariadb", "-h127.0.0.1", f"-P{port}", "-uroot", "-e", "select 1"]
    return run(probe, check=False, timeout_s=10).returncode == 0


def _start_mariadb(run_dir: Path, env: dict[str, str]) -> int:
    data = run_dir / "mariadb"
    data.mkdir(mode=0o700)
    port = free_port()
    cmd = [
        which("mariadbd"),
        "--no-defaults",
        "--user=root",
        f"--datadir={data}",
        f"--socket={run_dir / 'mariadb.sock'}",
        f"--pid-file={run_dir / 'mariadb.pid'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--skip-grant-tables",
        "--skip-log-bin",
        # a test database: durability is not wanted, speed is
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-buffer-pool-size=32M",
        "--innodb-log-file-size=16M",
        f"--log-error={run_dir / 'log' / 'mariadb.log'}",
    ]
    pid = _spawn(run_dir, "mariadb", cmd, env)
    if not wait_until(
        lambda: not pid_alive(pid) or _mariadb_ready(port), timeout_s=READY_TIMEOUT_S
    ) or not _mariadb_ready(port):
        raise ServiceUnavailable(
            "mariadbd did not accept connections", log_tail=tails([run_dir / "log/mariadb.log"])
        )
    return port


def _write_dbd_conf(run_dir: Path, db_port: int, dbd_port: int) -> None:
    lines = [
        "AuthType=auth/munge",
        "DbdAddr=127.0.0.1",
        "DbdHost=localhost",
        f"DbdPort={dbd_port}",
        "SlurmUser=root",
        "DebugLevel=info",
        f"LogFile={run_dir / 'log' / 'slurmdbd.log'}",
        f"PidFile={run_dir / 'slurmdbd.pid'}",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={db_port}",
        "StorageUser=root",
        "StorageLoc=slurm_acct",
    ]
    path = run_dir / "slurmdbd.conf"
    path.write_text("\n".join(lines) + "\n")
    # slurmdbd refuses a config others can read (it may hold the database password)
    os.chmod(path, 0o600)
    os.chown(path, pwd.getpwnam("root").pw_uid, 0)


def _dbd_ready(env: dict[str, str]) -> bool:
    return run(["sacctmgr", "-n", "-P", "list", "cluster"], env=env, check=False).returncode == 0


def start_accounting(run_dir: Path, env: dict[str, str], accounting: Accounting) -> None:
    """Start MariaDB then slurmdbd, with pid files in `run_dir` (where slurm.conf must be)."""
    db_port = _start_mariadb(run_dir, env)
    _write_dbd_conf(run_dir, db_port, accounting.dbd_port)
    # slurmdbd reads slurmdbd.conf from the folder of SLURM_CONF
    _spawn(run_dir, "slurmdbd", [which("slurmdbd"), "-D"], env)


def wait_accounting(run_dir: Path, env: dict[str, str], cluster_name: str) -> None:
    """Wait for slurmdbd to answer, then register the cluster and let root's jobs be recorded."""
    pid = read_pid(run_dir / "slurmdbd.harness.pid")
    alive = pid is not None and pid_alive(pid)
    if not alive or not wait_until(
        lambda: not pid_alive(pid) or _dbd_ready(env), timeout_s=READY_TIMEOUT_S
    ):
        raise ServiceUnavailable(
            "slurmdbd did not answer", log_tail=tails(sorted((run_dir / "log").iterdir()))
        )
    if not _dbd_ready(env):
        raise ServiceUnavailable(
            "slurmdbd exited", log_tail=tails(sorted((run_dir / "log").iterdir()))
        )
    run(["sacctmgr", "-i", "add", "cluster", cluster_name], env=env, check=False)


def stop_accounting(run_dir: Path) -> None:
    """Stop slurmdbd then MariaDB (each only if its command line names this run folder)."""
    for name in ("slurmdbd", "mariadb"):
        pid = read_pid(run_dir / f"{name}.harness.pid")
        if pid is not None:
            marker = str(run_dir) if name == "mariadb" else which("slurmdbd")
            terminate(pid, marker=marker, grace_s=15)
