"""An acknowledged job is never lost and never duplicated, even across a SIGKILL of the broker."""

from __future__ import annotations

import threading
import time
from collections import Counter

from computenet.client import RetryPolicy
from computenet.errors import ComputeNetError
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import BrokerProcess
from tests.support.waiting import wait_for

CLIENTS = 20
JOBS_PER_CLIENT = 50

SPEC = {
    "name": "crash",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.01,
    "command": ["true"],
}


def _submitter(
    broker: BrokerProcess, client_no: int, acked: list[str], stop_after_errors: int = 50
) -> None:
    retry = RetryPolicy(max_attempts=3, initial_backoff_s=0.05, max_backoff_s=0.2)
    with broker.client(timeout_s=5, retry=retry) as client:
        errors = 0
        for k in range(JOBS_PER_CLIENT):
            request_id = f"c{client_no}-{k}"
            try:
                client.submit({**SPEC, "name": request_id}, request_id=request_id)
            except ComputeNetError:
                errors += 1
                if errors > stop_after_errors:
                    return
                time.sleep(0.05)
                continue
            acked.append(request_id)


def _all_jobs(broker: BrokerProcess) -> list[tuple[str, str]]:
    with broker.client(timeout_s=30) as client:
        return [(j.request_id, j.job_id) for j in client.list(page_size=500)]


def test_sigkill_mid_run_loses_no_acknowledged_job_and_duplicates_none(
    broker_factory: BrokerFactory, db_url: str
) -> None:
    broker = broker_factory("--submit-rate", "0", db_url=db_url)
    proc = broker.proc
    acked: list[str] = []
    threads = [
        threading.Thread(target=_submitter, args=(broker, i, acked), daemon=True)
        for i in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 100, timeout_s=60, interval_s=0.01, what="100 acked jobs")
    proc.kill()
    proc.wait(timeout=10)
    acked_before_kill = len(acked)
    assert acked_before_kill >= 100, "submissions did not get going before the kill"
    assert acked_before_kill < CLIENTS * JOBS_PER_CLIENT, "the kill came after the run"
    broker = broker_factory(
        "--submit-rate",
        "0",
        db_url=db_url,
        listen=broker.address,
        agent_listen=broker.agent_address,
    )
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    jobs = _all_jobs(broker)
    per_request = Counter(request_id for request_id, _ in jobs)
    assert all(n == 1 for n in per_request.values()), "a request id was stored twice"
    missing = set(acked) - set(per_request)
    assert not missing, f"{len(missing)} acknowledged submissions were lost"

    # Retrying every submission with the same ids creates nothing new.
    with broker.client(timeout_s=30) as client:
        for i in range(CLIENTS):
            for k in range(JOBS_PER_CLIENT):
                rid = f"c{i}-{k}"
                result = client.submit({**SPEC, "name": rid}, request_id=rid)
                assert result.duplicate == (rid in per_request)
    after = Counter(request_id for request_id, _ in _all_jobs(broker))
    assert set(after) == {f"c{i}-{k}" for i in range(CLIENTS) for k in range(JOBS_PER_CLIENT)}
    assert all(n == 1 for n in after.values())
