"""Throwaway PostgreSQL servers on loopback for tests and benchmarks, plus their pytest fixtures."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness.services import (
    ServiceUnavailable,
    free_port,
    make_run_dir,
    read_pid,
    remove_run_dir,
    require_from,
    run,
    stale_run_dirs,
    tail,
    terminate,
    which,
)

logger = logging.getLogger(__name__)

RUN_DIR_PREFIX = "computenet-pg-"
SUPERUSER = "postgres"
OS_USER = "postgres"
INSTALL_HINT = "apt-get install postgresql"
PG_BIN_ENV = "COMPUTENET_PG_BIN"
"""Optional override: directory holding initdb and pg_ctl."""

_START_ATTEMPTS = 5
_START_TIMEOUT_S = 60


def find_pg_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl."""
    override = os.environ.get(PG_BIN_ENV)
    candidates = [override] if override else glob.glob("/usr/lib/postgresql/*/bin")

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"/postgresql/([\d.]+)/", path)
        return tuple(int(p) for p in match.group(1).split(".")) if match else (0,)

    for candidate in sorted(candidates, key=version, reverse=True):
        bin_dir = Path(candidate)
        if (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file():
            return bin_dir
    raise ServiceUnavailable(
        "initdb/pg_ctl not found under /usr/lib/postgresql/*/bin", install_hint=INSTALL_HINT
    )


def _as_server_user(cmd: list[str]) -> list[str]:
    """Prefix `cmd` to run as the postgres OS user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return cmd
    return [which("runuser"), "-u", OS_USER, "--", *cmd]


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)


@dataclass
class PostgresServer:
    """A running PostgreSQL cluster owned by this process; `stop()` is idempotent."""

    bin_dir: Path
    run_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.run_dir / "sock"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for `dbname` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq connection string for `dbname`, usable with psycopg.connect."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def create_database(self, name: str) -> None:
        self._admin(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement.encode())

    def stop(self) -> None:
        """Stop the server (fast shutdown, then kill) and remove its directory."""
        if self._stopped:
            return
        self._stopped = True
        _stop_cluster(self.bin_dir, self.run_dir)
        remove_run_dir(self.run_dir)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _stop_cluster(bin_dir: Path, run_dir: Path) -> None:
    data_dir = run_dir / "data"
    pid = read_pid(data_dir / "postmaster.pid")
    if pid is None:
        return
    with contextlib.suppress(ServiceUnavailable):
        run(
            _as_server_user([str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast"]),
            timeout_s=30,
            check=False,
        )
    terminate(pid, marker="postgres")


def cleanup_stale_servers() -> None:
    """Stop servers left behind by harness sessions that died without tearing down."""
    for run_dir in stale_run_dirs(RUN_DIR_PREFIX):
        logger.info("removing stale postgres path=%s", run_dir)
        with contextlib.suppress(ServiceUnavailable):
            _stop_cluster(find_pg_bin_dir(), run_dir)
        remove_run_dir(run_dir)


def _init_cluster(bin_dir: Path, run_dir: Path) -> None:
    data_dir, socket_dir = run_dir / "data", run_dir / "sock"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(OS_USER)
        except KeyError as exc:
            raise ServiceUnavailable(
                f"running as root but there is no '{OS_USER}' OS user to run the server",
                install_hint=INSTALL_HINT,
            ) from exc
        _chown_tree(run_dir, account.pw_uid, account.pw_gid)
    initdb = [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER]
    initdb += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"]
    run(_as_server_user(initdb), timeout_s=120)
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{socket_dir}'",
        "fsync": "on",
        "synchronous_commit": "on",
        "max_connections": "200",
        "logging_collector": "off",
    }
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write("\n# computenet test harness\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())


def _start_on_free_port(bin_dir: Path, run_dir: Path) -> int:
    data_dir, log_path = run_dir / "data", run_dir / "postgres.log"
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        start = [str(bin_dir / "pg_ctl"), "start", "-D", str(data_dir), "-l", str(log_path)]
        start += ["-w", "-t", str(_START_TIMEOUT_S), "-o", f"-p {port}"]
        proc = run(_as_server_user(start), timeout_s=_START_TIMEOUT_S + 15, check=False)
        if proc.returncode == 0:
            return port
        if "could not bind" not in tail(log_path, 20):
            break
        logger.info("postgres port clash, retrying port=%d", port)
    raise ServiceUnavailable("pg_ctl start failed", log_tail=tail(log_path))


def start_postgres(run_dir: Path | None = None) -> PostgresServer:
    """Initialise and start a server in `run_dir` (default: a fresh temp dir) on a free port.

    As root the server runs as the postgres OS user, so `run_dir` and its parents must be
    traversable by that user; the default location always is.
    """
    bin_dir = find_pg_bin_dir()
    if run_dir is None:
        run_dir = make_run_dir(RUN_DIR_PREFIX)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        _init_cluster(bin_dir, run_dir)
        port = _start_on_free_port(bin_dir, run_dir)
    except ServiceUnavailable:
        _stop_cluster(bin_dir, run_dir)
        raise
    server = PostgresServer(bin_dir=bin_dir, run_dir=run_dir, port=port)
    logger.info("postgres started port=%d data_dir=%s", port, server.data_dir)
    return server


@contextlib.contextmanager
def postgres_server_context(run_dir: Path | None = None) -> Iterator[PostgresServer]:
    """`start_postgres` as a context manager that always stops the server."""
    server = start_postgres(run_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (skipped locally / failed in CI if unavailable)."""
    cleanup_stale_servers()
    try:
        server = start_postgres()
    except ServiceUnavailable as exc:
        require_from("PostgreSQL", exc)
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session server's `postgres` database."""
    return postgres_server.url()


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database created for this test and dropped after it."""
    name = f"test_{uuid.uuid4().hex}"
    postgres_server.create_database(name)
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
