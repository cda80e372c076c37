"""Live inputs through a real broker: a site's reported price and carbon change placement's energy
and carbon terms and explain says so; inference demand reported through the SDK is stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from computenet.types import EnergyInputs, JobState
from computenet.v1 import types_pb2
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import BrokerProcess
from tests.support.scripted_agent import ScriptedAgent
from tests.support.waiting import wait_for
from topology import default_topology

pytestmark = pytest.mark.timeout(180)

SITE = "horinger"
TRAINING = {
    "name": "t",
    "kind": "training",
    "resources": {"accelerator": "910b", "count": 8},
    "duration_hours": 48.0,
    "command": ["train"],
}
CLI = "from computenet.cli.main import main; main()"


def cli_env(broker: BrokerProcess, who: str = "operator") -> dict[str, str]:
    assert broker.pki is not None
    return {
        **os.environ,
        "COMPUTENET_CA": str(broker.pki.ca),
        "COMPUTENET_TOKEN": broker.pki.tokens[who],
    }


def test_a_reported_price_prices_energy_and_explain_says_reported(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    assert broker.pki is not None
    agent = ScriptedAgent(broker.agent_address, SITE, credentials=broker.pki.site_credentials(SITE))
    try:
        agent.next("welcome")
        agent.report_capacity("910b", 8)
        with broker.client() as client:
            wait_for(lambda: client.site(SITE).pools, what="capacity")
            plain = client.plan(TRAINING)
            (before,) = [c for c in plain.candidates if c.site == SITE and c.feasible]
            assert before.energy_inputs is None

            sent_ms = time.time() * 1000
            agent.report_capacity("910b", 8, price=0.05, carbon=0.9)
            live = wait_for(
                lambda: next(
                    (
                        c
                        for c in client.plan(TRAINING).candidates
                        if c.site == SITE and c.energy_inputs is not None
                    ),
                    None,
                ),
                what="the plan to use the reported price",
            )
            assert live.energy_inputs is not None
            assert (live.energy_inputs.price_cny_per_kwh, live.energy_inputs.carbon_kg_per_kwh) == (
                0.05,
                0.9,
            )
            assert live.energy_inputs.reported_unix_ms >= sent_ms - 1000
            site = default_topology().site(SITE)
            hour = time.gmtime(live.energy_inputs.reported_unix_ms / 1000 + 8 * 3600).tm_hour
            scale = 0.05 / site.hourly_price_cny_per_kwh[hour]
            assert live.terms_cny["energy"] == pytest.approx(
                before.terms_cny["energy"] * scale, rel=0.02, abs=0.011
            )
            factor = 0.9 / site.carbon_kg_per_kwh
            assert live.terms_cny["carbon"] == pytest.approx(
                before.terms_cny["carbon"] * factor,
                rel=0.02,
                abs=0.011,  # terms shown in fen
            )

            job = client.submit(TRAINING, request_id="live-1").job
            dispatch = agent.next("dispatch").dispatch
            agent.ack(dispatch.delivery_id)
            agent.job_event(job.job_id, dispatch.attempt, types_pb2.JOB_STATE_RUNNING)
            wait_for(lambda: client.get(job.job_id).state == JobState.RUNNING, what="running")
            explained = client.explain(job.job_id)
            chosen = next(c for c in explained.candidates if c.site == explained.chosen)
            assert chosen.site == SITE
            assert isinstance(chosen.energy_inputs, EnergyInputs)
            assert chosen.energy_inputs.price_source == "reported"
        shown = subprocess.run(
            [sys.executable, "-c", CLI, "explain", job.job_id, "--broker", broker.address],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(broker),
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        text = " ".join(shown.stdout.split())  # the console wraps long lines
        assert f"{SITE}: price: reported 0.05 CNY/kWh at " in text
        assert "CST; carbon: reported 0.9 kgCO2/kWh" in text
    finally:
        agent.close()
