"""Live inputs through a real broker: a site's reported price and carbon change placement's energy
and carbon terms and explain says so; inference demand reported through the SDK is stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from computenet.errors import InvalidArgumentError, JobNotFoundError
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
            assert live is not None and live.energy_inputs is not None
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


SERVICE = {
    "name": "chat",
    "kind": "inference",
    "resources": {"accelerator": "h20", "count": 1},
    "duration_hours": 100.0,
    "command": ["serve"],
    "inference": {
        "user_regions": [{"region": "beijing", "weight": 1.0}],
        "latency_slo_ms": 50,
        "replicas": 1,
    },
}


def test_demand_reports_are_stored_checked_and_scoped(broker_factory: BrokerFactory) -> None:
    broker = broker_factory()
    with broker.client("alice") as alice, broker.client("bob") as bob:
        service = alice.submit(SERVICE, request_id="svc").job
        training = alice.submit(TRAINING, request_id="train").job
        before_ms = time.time() * 1000
        stored = alice.report_demand(service.job_id, {"shanghai": 120.0, "beijing": 40.0})
        assert stored.job_id == service.job_id
        assert stored.weights == {"shanghai": 120.0, "beijing": 40.0}
        assert stored.reported_unix_ms >= before_ms - 1000
        newer = alice.report_demand(service.job_id, [("guangzhou", 3.0), ("beijing", 0.0)])
        assert newer.weights == {"guangzhou": 3.0, "beijing": 0.0}

        with pytest.raises(InvalidArgumentError) as bad:
            alice.report_demand(
                service.job_id,
                [("atlantis", 1.0), ("beijing", -2.0), ("beijing", 1.0)],
            )
        assert [(v.field, v.description) for v in bad.value.violations] == [
            ("weights[0].region", "unknown user region 'atlantis'"),
            ("weights[1].weight", "must be a number >= 0 (got -2)"),
            ("weights[2].region", "region 'beijing' given twice"),
        ]
        with pytest.raises(InvalidArgumentError) as not_serving:
            alice.report_demand(training.job_id, {"beijing": 1.0})
        assert [v.field for v in not_serving.value.violations] == ["job_id"]
        with pytest.raises(InvalidArgumentError) as nothing:
            alice.report_demand(service.job_id, {"beijing": 0.0})
        assert [v.field for v in nothing.value.violations] == ["weights"]
        with pytest.raises(JobNotFoundError):  # another tenant's job is absent to bob
            bob.report_demand(service.job_id, {"beijing": 1.0})
    with broker.client("operator") as operator:
        assert operator.report_demand(service.job_id, {"wuhan": 1.0}).weights == {"wuhan": 1.0}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CLI, "demand", "report", *args, "--broker", broker.address],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(broker, "alice"),
            check=False,
        )

    done = cli(service.job_id, "beijing=2.5", "xian=1")
    assert done.returncode == 0, done.stderr
    assert f"demand of {service.job_id} at " in done.stdout
    assert done.stdout.rstrip().endswith("beijing=2.5 xian=1")
    refused = cli(service.job_id, "atlantis=1")
    assert refused.returncode == 1
    assert "weights[0].region: unknown user region 'atlantis'" in refused.stderr
    malformed = cli(service.job_id, "beijing")
    assert malformed.returncode == 2
    assert "expected REGION=WEIGHT" in malformed.stderr
