"""Proof that the PostgreSQL and Slurm harnesses bring up real, working services."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.harness.services import require_service
from tests.harness.slurm import SlurmCluster


def _connect(url: str) -> psycopg.Connection:
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database
    )


@pytest.mark.postgres
def test_postgres_url_points_at_a_loopback_server_with_fsync_on(postgres_url: str) -> None:
    parsed = make_url(postgres_url)
    assert parsed.drivername == "postgresql+psycopg"
    assert parsed.host == "127.0.0.1"
    with _connect(postgres_url) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


@pytest.mark.postgres
def test_postgres_db_url_round_trips_rows(postgres_db_url: str) -> None:
    with _connect(postgres_db_url) as conn:
        conn.execute("CREATE TABLE jobs (id text PRIMARY KEY, gpus integer NOT NULL)")
        conn.execute("INSERT INTO jobs VALUES (%s, %s), (%s, %s)", ("a", 1, "b", 4))
        conn.commit()
    with _connect(postgres_db_url) as conn:
        rows = conn.execute("SELECT id, gpus FROM jobs ORDER BY id").fetchall()
    assert rows == [("a", 1), ("b", 4)]


@pytest.mark.postgres
def test_postgres_db_url_is_a_fresh_database_per_test(postgres_db_url: str) -> None:
    with _connect(postgres_db_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


@pytest.mark.postgres
def test_postgres_db_url_works_through_sqlalchemy(postgres_db_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 41 + 1")).scalar_one() == 42
    finally:
        engine.dispose()


@pytest.mark.slurm
def test_sinfo_reports_the_node_with_four_a800s(slurm_cluster: SlurmCluster) -> None:
    out = slurm_cluster.run("sinfo", "-h", "-N", "-o", "%N %T %G %P")
    node, state, gres, partition = out.split()
    assert node == slurm_cluster.node_name
    assert state == "idle"
    assert "gpu:a800:4" in gres
    assert partition == f"{slurm_cluster.partition}*"
    assert (slurm_cluster.gpu_type, slurm_cluster.gpu_count) == ("a800", 4)


@pytest.mark.slurm
def test_scontrol_shows_the_node_resources(slurm_cluster: SlurmCluster) -> None:
    out = slurm_cluster.run("scontrol", "show", "node", slurm_cluster.node_name)
    assert f"NodeName={slurm_cluster.node_name}" in out
    assert "Gres=gpu:a800:4" in out
    assert f"CPUTot={slurm_cluster.cpus}" in out
    assert f"RealMemory={slurm_cluster.memory_mb}" in out


@pytest.mark.slurm
def test_gpu_job_completes_with_exit_code_zero(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    out_file = tmp_path / "gpu.out"
    job_id = slurm_cluster.sbatch(
        "--gres=gpu:a800:1", "-o", str(out_file), "--wrap", "echo hi", cwd=tmp_path
    )
    fields = slurm_cluster.wait_job_done(job_id, timeout_s=60)
    assert fields["JobState"] == "COMPLETED"
    assert fields["ExitCode"] == "0:0"
    assert "gpu:a800:1" in fields.get("TresPerNode", "")
    assert out_file.read_text().strip() == "hi"


@pytest.mark.slurm
def test_failing_job_ends_failed_with_its_exit_code(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    job_id = slurm_cluster.sbatch("-o", "/dev/null", "--wrap", "exit 3", cwd=tmp_path)
    fields = slurm_cluster.wait_job_done(job_id, timeout_s=60)
    assert fields["JobState"] == "FAILED"
    assert fields["ExitCode"] == "3:0"


@pytest.mark.slurm
def test_scancel_ends_a_running_job_cancelled(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job_id = slurm_cluster.sbatch("-o", "/dev/null", "--wrap", "sleep 300", cwd=tmp_path)
    assert slurm_cluster.wait_job_state(job_id, {"RUNNING"}, timeout_s=60)
    slurm_cluster.run("scancel", str(job_id))
    fields = slurm_cluster.wait_job_done(job_id, timeout_s=60)
    assert fields["JobState"] == "CANCELLED"


def test_require_service_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"slurmd not found.*apt-get install"):
        require_service("Slurm", "slurmd not found", install_hint="apt-get install slurm-wlm")


def test_require_service_fails_in_ci_with_the_log_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)pg_ctl start failed.*could not bind"):
        require_service("PostgreSQL", "pg_ctl start failed", log_tail="FATAL: could not bind")
