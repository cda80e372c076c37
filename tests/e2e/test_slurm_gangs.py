"""Gangs over whole nodes, end to end: the broker, a real agent and the two-node Slurm cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from computenet.types import JobState, SiteStatus
from site_agent.executors.base import attempt_dir
from tests.e2e.conftest import BrokerFactory
from tests.harness.slurm_nodes import SlurmNodesCluster
from tests.support.processes import start_agent
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

SITE = "zhangjiakou"
# The batch script runs on the first node; srun starts one task on every node of the job.
BOTH_NODES = "srun sh -c 'echo \"$SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES\"'"


def gang(name: str, cards: int, script: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "training",
        "resources": {"accelerator": "a800", "count": cards, "cpu": 1, "memory_gb": 0.1},
        "duration_hours": 0.1,
        "command": ["sh", "-c", script],
    }


def test_a_gang_runs_once_across_both_nodes_and_a_larger_one_is_never_sent(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
    slurm_nodes_cluster: SlurmNodesCluster,
) -> None:
    broker = broker_factory()
    agents[SITE] = start_agent(
        tmp_path,
        SITE,
        broker.agent_address,
        pki=broker.pki,
        executor="slurm",
        capacity={"source": "slurm", "gres_models": {"nvidia_a800": "a800"}},
        env=slurm_nodes_cluster.env,
    )
    state_dir = tmp_path / f"agent-{SITE}" / "state"
    with broker.client() as client:
        wait_for(lambda: client.site(SITE).status == SiteStatus.ACTIVE, what="the Slurm site")
        pool = wait_for(
            lambda: next((p for p in client.site(SITE).pools if p.model == "a800"), None),
            what="the site's a800 pool reported",
        )
        assert (pool.nodes, pool.cards_per_node) == (2, 2)

        too_big = client.submit(gang("three-nodes", 6, "true"), request_id="too-big").job
        fits = client.submit(gang("two-nodes", 4, BOTH_NODES), request_id="fits").job
        done = wait_for(
            lambda: (j := client.get(fits.job_id)).state.is_final and j,
            timeout_s=120,
            what="the two-node gang to finish",
        )
        assert (done.state, done.site, done.attempt) == (JobState.SUCCEEDED, SITE, 1)
        lines = (attempt_dir(state_dir, fits.job_id, 1) / "stdout.log").read_text().splitlines()
        assert sorted(lines) == [f"{node} gpus=0,1" for node in slurm_nodes_cluster.nodes]

        # the three-node gang was never sent to the two-node site, and explain says why
        waiting = client.get(too_big.job_id)
        assert (waiting.state, waiting.attempt, waiting.site) == (JobState.PENDING, 0, None)
        placement = client.explain(too_big.job_id)
        verdict = next(c for c in placement.candidates if c.site == SITE)
        assert placement.chosen is None and not verdict.feasible
        assert "gang of 6 a800 needs 3 nodes of 2 cards, the pool has 2 nodes" in verdict.reason
