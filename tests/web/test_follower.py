"""The console of a follower replica: jobs and usage from the shared database, site views and
the queue sent to the leader with a page saying where it is."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from computenet import Client
from tests.web.conftest import start_console
from tests.web.forms import error_of

pytestmark = pytest.mark.postgres


def test_a_followers_console_reads_jobs_and_names_the_leader(
    tmp_path: Path, postgres_db_url: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    leader = start_console(tmp_path / "a", db_url=postgres_db_url)
    follower = None
    try:
        follower = start_console(tmp_path / "b", db_url=postgres_db_url)
        with Client(address=leader.broker.address) as client:
            job = client.submit(
                {
                    "name": "seen-everywhere",
                    "kind": "batch",
                    "duration_hours": 0.1,
                    "command": ["true"],
                },
                request_id="follower-1",
            ).job
        with httpx.Client(base_url=follower.url, timeout=20) as http:
            assert job.job_id in http.get("/jobs").text
            assert http.get(f"/jobs/{job.job_id}").status_code == 200
            sites = http.get("/sites")
            assert sites.status_code == 503
            assert "the leader is" in error_of(sites.text)
            assert leader.broker.address in error_of(sites.text)
            assert "the leader is" in http.get("/").text  # the map still draws, and says so
            queue = http.get("/queue")  # the admission order lives in the leader's rounds
            assert queue.status_code == 503
            assert "the leader is" in error_of(queue.text)
            assert http.get("/usage").status_code == 200  # usage is read from the database
        with httpx.Client(base_url=leader.url, timeout=20) as http:
            assert http.get("/sites").status_code == 200
    finally:
        if follower is not None:
            follower.stop()
        leader.stop()
