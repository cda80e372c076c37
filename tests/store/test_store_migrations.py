"""Schema migrations: they match the table classes, are idempotent, and survive racing opens."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine

from broker.store import open_rebalance_store, open_store, tables
from broker.store.engine import create_store_engine
from broker.store.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from computenet.types import JobId
from tests.store.factories import spec

REPO_ROOT = Path(__file__).resolve().parents[2]


def _count_ddl(engine: Engine) -> list[str]:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith(("CREATE", "ALTER", "DROP")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return statements


def test_migrated_schema_matches_the_table_classes(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade_to_head(engine)
        _assert_schema_matches(engine)
    finally:
        engine.dispose()


def test_upgrading_a_migrated_database_is_a_no_op(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        ddl = _count_ddl(engine)
        upgrade_to_head(engine)
        assert ddl, "the first upgrade creates the schema"
        ddl.clear()
        upgrade_to_head(engine)
        upgrade_to_head(engine)
        assert ddl == []
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        engine.dispose()


def _migrate_to(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def _assert_schema_matches(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, tables.metadata) == []


_JOB_0001 = text(
    "INSERT INTO jobs (job_id, created_seq, tenant, request_id, kind, state, site, spec_json,"
    " attempt, reason, exit_code, placement_json, last_sequence, created_unix_ms,"
    " updated_unix_ms) VALUES ('j1', 1, 't', 'r1', 'batch', 'pending', NULL, '{}', 0, '',"
    " NULL, NULL, 1, 5, 5)"
)
_EVENT_0001 = text(
    "INSERT INTO job_events (sequence, job_id, tenant, kind, state, cause, time_unix_ms, site,"
    " attempt, message, exit_code) VALUES (1, 'j1', 't', 'batch', 'pending', 'submitted', 5,"
    " NULL, 0, '', NULL)"
)


def _seed_0001(engine: Engine) -> None:
    """A database at revision 0001 holding one job, its event and a site."""
    _migrate_to(engine, "0001")
    with engine.begin() as connection:
        connection.execute(_JOB_0001)
        connection.execute(_EVENT_0001)
        connection.execute(text("UPDATE meta SET value = 1 WHERE key = 'event_sequence'"))
        connection.execute(
            text(
                "INSERT INTO sites (site_id, status, last_report_unix_ms, report_json, executor,"
                " agent_version, agent_epoch, drained) VALUES ('s1', 'active', 9, '{}', 'local',"
                " '0.1', 'e1', FALSE)"
            )
        )


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: int(connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
            for name in ("jobs", "job_events", "sites")
        }


def test_upgrading_a_0001_database_keeps_its_data(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        _seed_0001(engine)
        with engine.connect() as connection:
            assert current_revision(connection) == "0001"
        upgrade_to_head(engine)
        assert _counts(engine) == {"jobs": 1, "job_events": 1, "sites": 1}
        _assert_schema_matches(engine)
    finally:
        engine.dispose()
    with open_store(store_url) as store:
        assert store.last_sequence() == 1 and [s.site_id for s in store.sites()] == ["s1"]
    with open_rebalance_store(store_url) as rebalance:
        assert rebalance.runs.list_runs() == [] and rebalance.lease.try_acquire("a", 60.0) == 1


# The tables as brokers before revision 0002 created them with create_all at start.
_legacy = sa.MetaData()
_legacy_runs = sa.Table(
    "rebalance_runs",
    _legacy,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("trigger", sa.String(64), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("started_unix_ms", sa.BigInteger, nullable=False),
    sa.Column("ended_unix_ms", sa.BigInteger, nullable=False),
    sa.Column("expected_savings_cny", sa.Float, nullable=False),
    sa.Column("realised_savings_cny", sa.Float, nullable=False),
    sa.Column("moves_json", sa.Text, nullable=False),
    sa.Column("errors_json", sa.Text, nullable=False),
    sa.Index("ix_rebalance_runs_started", "started_unix_ms", "run_id"),
)
_legacy_fires = sa.Table(
    "rebalance_fires",
    _legacy,
    sa.Column("fire", sa.String(96), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("claimed_unix_ms", sa.BigInteger, nullable=False),
)
_legacy_leases = sa.Table(
    "rebalance_leases",
    _legacy,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("fencing_token", sa.BigInteger, nullable=False),
    sa.Column("expires_unix_ms", sa.BigInteger, nullable=False),
)
_LEGACY_MOVE = (
    '[{"job_id": "j1", "kind": "migrate", "from_site": "a", "to_site": "b", "savings_cny": 9.0,'
    ' "savings_carbon_kg": 1.0, "cost_cny": 2.0, "reason": "cheaper", "accelerator": "a800",'
    ' "applied": true, "error": ""}]'
)


def test_upgrading_adopts_the_rebalance_tables_a_0001_broker_created(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        _seed_0001(engine)
        _legacy.create_all(engine)
        with engine.begin() as connection:
            connection.execute(
                _legacy_runs.insert().values(
                    run_id="r1",
                    trigger="manual",
                    dry_run=False,
                    started_unix_ms=10,
                    ended_unix_ms=20,
                    expected_savings_cny=7.0,
                    realised_savings_cny=7.0,
                    moves_json=_LEGACY_MOVE,
                    errors_json="[]",
                )
            )
            connection.execute(
                _legacy_fires.insert().values(fire="interval@x", holder="a", claimed_unix_ms=1)
            )
            connection.execute(
                _legacy_leases.insert().values(
                    name="rebalance", holder="a", fencing_token=41, expires_unix_ms=0
                )
            )
        upgrade_to_head(engine)
        _assert_schema_matches(engine)
        assert _counts(engine) == {"jobs": 1, "job_events": 1, "sites": 1}
    finally:
        engine.dispose()
    with open_rebalance_store(store_url) as rebalance:
        [run] = rebalance.runs.list_runs()
        assert (run.run_id, run.moves[0].job_id, run.moves[0].applied) == ("r1", "j1", True)
        assert not rebalance.runs.claim_fire("interval@x", "b", 2)
        assert rebalance.lease.try_acquire("b", 60.0) == 42, "the token keeps growing"


def test_the_migrated_schema_has_the_replica_roster_and_lease_term_start(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade_to_head(engine)
        inspector = sa.inspect(engine)
        replicas = {c["name"]: c for c in inspector.get_columns("replicas")}
        assert set(replicas) == {
            "broker_id",
            "address",
            "agent_address",
            "role",
            "epoch",
            "started_unix_ms",
            "last_seen_unix_ms",
        }
        assert inspector.get_pk_constraint("replicas")["constrained_columns"] == ["broker_id"]
        assert isinstance(replicas["last_seen_unix_ms"]["type"], sa.BigInteger)
        leases = {c["name"]: c for c in inspector.get_columns("rebalance_leases")}
        assert isinstance(leases["acquired_unix_ms"]["type"], sa.BigInteger)
        assert not leases["acquired_unix_ms"]["nullable"]
    finally:
        engine.dispose()


def test_upgrading_from_0004_keeps_leases_with_an_unknown_term_start(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        _migrate_to(engine, "0004")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO rebalance_leases (name, holder, fencing_token, expires_unix_ms)"
                    " VALUES ('leader', 'b1', 5, 9000000000000)"
                )
            )
        upgrade_to_head(engine)
        _assert_schema_matches(engine)
    finally:
        engine.dispose()
    with open_rebalance_store(store_url, lease_name="leader") as store:
        state = store.lease.current()
        assert state is not None
        assert (state.holder, state.fencing_token, state.acquired_unix_ms) == ("b1", 5, 0)


def test_upgrading_from_0005_gives_jobs_no_checkpoint_to_restore(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        _migrate_to(engine, "0005")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO jobs (job_id, created_seq, tenant, request_id, kind, state,"
                    " spec_json, attempt, reason, cancel_requested, pool, start_failures_json,"
                    " not_before_unix_ms, last_sequence, created_unix_ms, updated_unix_ms)"
                    " VALUES ('j1', 1, 't', 'r', 'training', 'migrating', :spec, 2, '', false, '',"
                    " '[]', 0, 1, 1, 1)"
                ),
                {"spec": spec("j1").model_dump_json()},
            )
        upgrade_to_head(engine)
        _assert_schema_matches(engine)
    finally:
        engine.dispose()
    with open_store(store_url) as store:
        job = store.get_job(JobId("j1"))
        assert job is not None and job.attempt == 2
        assert (job.restore_ref, job.migration_checkpoint) == ("", False)


def test_upgrading_from_0006_accounts_running_attempts_from_their_start(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        _migrate_to(engine, "0006")
        with engine.begin() as connection:
            for job_id, state in (("j1", "running"), ("j2", "succeeded")):
                connection.execute(
                    text(
                        "INSERT INTO jobs (job_id, created_seq, tenant, request_id, kind, state,"
                        " site, spec_json, attempt, reason, cancel_requested, pool,"
                        " start_failures_json, not_before_unix_ms, last_sequence,"
                        " created_unix_ms, updated_unix_ms, migration_checkpoint, restore_ref)"
                        " VALUES (:id, :seq, 't', :id, 'training', :state, 'gansu-1', :spec, 2,"
                        " '', false, 'a800', '[]', 0, 1, 1, 1, false, '')"
                    ),
                    {"id": job_id, "seq": int(job_id[1:]), "state": state, "spec": "{}"},
                )
            connection.execute(
                text(
                    "INSERT INTO job_events (sequence, job_id, tenant, kind, state, cause,"
                    " time_unix_ms, site, attempt, message) VALUES"
                    " (1, 'j1', 't', 'training', 'running', 'x', 5000, 'gansu-1', 1, ''),"
                    " (2, 'j1', 't', 'training', 'running', 'x', 7000, 'gansu-1', 2, '')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO holds (job_id, attempt, site, accelerator, count, cpu_cores,"
                    " memory_gb, expected_end_unix_ms) VALUES"
                    " ('j1', 2, 'gansu-1', 'a800', 8, 16.0, 128.0, 0),"
                    " ('j1', 2, 'gansu-1', 'h20', 2, 4.0, 32.0, 0)"
                )
            )
        upgrade_to_head(engine)
        _assert_schema_matches(engine)
    finally:
        engine.dispose()
    with open_store(store_url) as store:
        [run] = store.open_runs()
        assert (run.job_id, run.attempt, run.tenant, run.site) == ("j1", 2, "t", "gansu-1")
        assert run.pools == (("a800", 8), ("h20", 2)) and run.cpu_cores == 20.0
        assert run.started_unix_ms == run.accounted_until_unix_ms == 7000
        assert store.usage_records() == []


def test_in_memory_sqlite_works() -> None:
    with open_store("sqlite://") as store:
        assert store.last_sequence() == 0 and store.dialect == "sqlite"


def test_sqlite_connections_are_durable(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragmas["journal_mode"] == "wal"
        assert pragmas["synchronous"] == 2  # FULL
        assert pragmas["foreign_keys"] == 1 and (pragmas["busy_timeout"] or 0) > 0
    finally:
        engine.dispose()


def test_unsupported_url_is_rejected() -> None:
    with pytest.raises(ValueError):
        open_store("mysql://localhost/x")


_RACER = textwrap.dedent(
    """
    import sys
    from broker.store import open_store
    from tests.store.factories import new_job
    url, name = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()  # every racer is loaded; open the new database at once
    with open_store(url) as store:
        [outcome] = store.submit_jobs([new_job(name)])
        assert outcome.job is not None
    """
)


@pytest.mark.timeout(120)
def test_processes_opening_a_new_database_at_once_migrate_it_once(store_url: str) -> None:
    racers = 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, store_url, f"racer-{i}"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(racers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate(timeout=30)[1]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    errors = [proc.communicate(timeout=90)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * racers, errors
    engine = create_store_engine(store_url)
    try:
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
            count = connection.execute(select(func.count()).select_from(tables.jobs)).scalar()
        assert count == racers
    finally:
        engine.dispose()
    with open_store(store_url) as store:
        assert [e.sequence for e in store.events_after(0)] == [1, 2, 3, 4]
