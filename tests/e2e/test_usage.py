"""Usage accounting, the queue and tenants end to end: a broker, real agents, the CLI.

Short jobs run on two sites (two tenants, two accelerator models); `computenet usage` must
then report what their recorded run windows cost at the topology's card rent plus energy, as
JSON and as CSV a spreadsheet opens, scoped to the caller's tenant. Jobs that cannot run wait
in `computenet queue` with a reason each.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from broker.accounting.pricing import cst_day
from computenet.client import AsyncClient, Client
from computenet.types import JobState, SiteStatus
from computenet.usage import UsageReport, WaitReason
from tests.e2e.conftest import BrokerFactory
from tests.sdk.test_cli import cli
from tests.support.pki import Pki
from tests.support.processes import BrokerProcess, start_agent
from tests.support.waiting import wait_for
from topology import default_topology
from topology.energy import run_energy

TOPO = default_topology()
H_MS = 3_600_000


def _job(name: str, model: str, cards: int, seconds: float) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": model, "count": cards, "cpu": 1, "memory_gb": 1},
        "duration_hours": 0.01,
        "command": ["sleep", str(seconds)],
    }


def _expected(client: Client, job_ids: list[str]) -> dict[str, dict[str, float]]:
    """Per tenant: card-hours and cost from each job's recorded events (run window x cards x
    card rent, plus the energy of its cards over that window)."""
    out: dict[str, dict[str, float]] = {}
    for job_id in job_ids:
        job = client.get(job_id)
        events = list(client.watch(job_id, after_sequence=0))
        started = next(e for e in events if e.state == JobState.RUNNING)
        ended = next(e for e in events if e.state.is_final)
        assert job.site is not None and job.state == JobState.SUCCEEDED
        cards, model = job.spec.resources.count, job.pool
        hours = (ended.time_unix_ms - started.time_unix_ms) / H_MS
        site = TOPO.site(job.site)
        start_hour = ((started.time_unix_ms + 8 * H_MS) % (24 * H_MS)) / H_MS
        watts = cards * next(p.watts for s in TOPO.sites for p in s.pools if p.model == model)
        energy = run_energy(TOPO, job.site, watts, start_hour, hours)
        mine = out.setdefault(job.tenant, {"card_hours": 0.0, "cost_cny": 0.0, "kwh": 0.0})
        mine["card_hours"] += cards * hours
        mine["kwh"] += energy.kwh
        mine["cost_cny"] += cards * hours * site.card_tariff_cny_per_hour(model) + energy.cny
    return out


def _as(monkeypatch: pytest.MonkeyPatch, broker: BrokerProcess, who: str) -> None:
    assert broker.pki is not None
    monkeypatch.setenv("COMPUTENET_CA", str(broker.pki.ca))
    monkeypatch.setenv("COMPUTENET_TOKEN", broker.pki.tokens[who])


def _usage_json(capsys: pytest.CaptureFixture[str], broker: BrokerProcess, *args: str) -> Any:
    code, out, err = cli(capsys, "usage", "--broker", broker.address, "--json", *args)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.e2e
def test_usage_totals_match_recorded_runs_and_are_scoped_by_tenant(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
    pki: Pki,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = broker_factory()
    address = broker.agent_address
    agents["horinger"] = start_agent(
        tmp_path, "horinger", address, pools=[{"model": "a800", "count": 8}], pki=pki
    )
    agents["zhongwei"] = start_agent(
        tmp_path, "zhongwei", address, pools=[{"model": "h20", "count": 8}], pki=pki
    )
    with broker.client() as ops, broker.client("alice") as alice, broker.client("bob") as bob:
        wait_for(
            lambda: (
                {s.site_id for s in ops.sites(status=SiteStatus.ACTIVE)} >= {"horinger", "zhongwei"}
            ),
            what="two active sites",
        )
        ids = [
            alice.submit(_job("a1", "a800", 2, 1.0), request_id="a1").job.job_id,
            alice.submit(_job("a2", "a800", 4, 1.5), request_id="a2").job.job_id,
            bob.submit(_job("b1", "h20", 4, 1.0), request_id="b1").job.job_id,
        ]
        wait_for(lambda: all(ops.get(i).state.is_final for i in ids), what="three jobs done")
        expected = _expected(ops, ids)

    _as(monkeypatch, broker, "operator")
    want_hours = math.fsum(t["card_hours"] for t in expected.values())
    report = wait_for(
        lambda: (
            (r := _usage_json(capsys, broker))["total"]["card_hours"] >= want_hours * (1 - 1e-3)
            and r
        ),
        what="usage of the ended attempts recorded",
    )
    assert report["by"] == "tenant" and report["tenant"] == ""
    by_tenant = {g["tenant"]: g for g in report["groups"]}
    assert set(by_tenant) == {"tenant-a", "tenant-b"}
    for tenant, want in expected.items():
        got = by_tenant[tenant]
        for name in ("card_hours", "kwh", "cost_cny"):
            assert got[name] == pytest.approx(want[name], rel=1e-3), (tenant, name)
        assert got["cost_cny"] == pytest.approx(got["card_cny"] + got["energy_cny"])
    assert report["total"]["cost_cny"] == pytest.approx(
        math.fsum(t["cost_cny"] for t in expected.values()), rel=1e-3
    )
    # zhongwei rents h20 below the default: bob's card rent uses the site's tariff
    assert by_tenant["tenant-b"]["card_cny"] == pytest.approx(
        expected["tenant-b"]["card_hours"] * 5.1, rel=1e-3
    )

    code, out, err = cli(capsys, "usage", "--broker", broker.address, "--csv", "--by", "site")
    assert (code, err) == (0, "")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["site"] for r in rows} == {"horinger", "zhongwei"}
    assert set(rows[0]) == {"site", "card_hours", "kwh", "carbon_kg", "card_cny", "energy_cny",
                            "cost_cny"}  # fmt: skip
    for name in ("card_hours", "cost_cny", "kwh"):
        assert math.fsum(float(r[name]) for r in rows) == pytest.approx(report["total"][name])

    today = cst_day(time.time_ns() // 1_000_000)
    by_model = _usage_json(capsys, broker, "--by", "model", "--since", "2000-01-01")
    assert [g["model"] for g in by_model["groups"]] == ["a800", "h20"]
    assert _usage_json(capsys, broker, "--until", "2000-01-01")["groups"] == []
    by_day = _usage_json(capsys, broker, "--by", "day")
    assert by_day["groups"][-1]["day"] == today  # the jobs ran minutes ago

    async def through_asyncio() -> UsageReport:
        async with AsyncClient(
            address=broker.address, credentials=pki.channel_credentials(), token=pki.tokens["bob"]
        ) as client:
            return await client.usage(by="model")

    bobs = asyncio.run(through_asyncio())
    assert [g.key for g in bobs.groups] == ["h20"] and bobs.tenant == "tenant-b"
    assert bobs.total.cost_cny == pytest.approx(by_tenant["tenant-b"]["cost_cny"])

    operator_b = _usage_json(capsys, broker, "--tenant", "tenant-b")
    assert [g["tenant"] for g in operator_b["groups"]] == ["tenant-b"]

    _as(monkeypatch, broker, "alice")
    own = _usage_json(capsys, broker)
    assert own["tenant"] == "tenant-a"
    assert [g["tenant"] for g in own["groups"]] == ["tenant-a"]
    assert own["total"]["cost_cny"] == pytest.approx(by_tenant["tenant-a"]["cost_cny"])
    code, out, err = cli(capsys, "usage", "--broker", broker.address, "--tenant", "tenant-b")
    assert code != 0 and out == ""
    assert "may not see tenant 'tenant-b'" in err


@pytest.mark.e2e
def test_queue_gives_every_pending_job_a_reason(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
    pki: Pki,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "broker.yaml"
    config.write_text(
        "tenants:\n"
        "  tenant-a: {weight: 1, quota: {a800: 8}, borrowing_limit: {a800: 8}}\n"
        "  tenant-b: {weight: 1, quota: {a800: 0}, borrowing_limit: {a800: 0}}\n"
    )
    broker = broker_factory("--config", str(config))
    agents["horinger"] = start_agent(
        tmp_path, "horinger", broker.agent_address, pools=[{"model": "a800", "count": 8}], pki=pki
    )
    with broker.client() as ops, broker.client("alice") as alice, broker.client("bob") as bob:
        wait_for(lambda: ops.site("horinger").status == SiteStatus.ACTIVE, what="active site")
        running = alice.submit(_job("long", "a800", 8, 60), request_id="long").job.job_id
        wait_for(lambda: ops.get(running).state == JobState.RUNNING, what="a800s all taken")
        waiting = {
            alice.submit(_job("more", "a800", 4, 1), request_id="more").job.job_id: "a-more",
            alice.submit(_job("h800", "h800", 2, 1), request_id="h800").job.job_id: "a-h800",
            bob.submit(_job("b", "a800", 2, 1), request_id="b").job.job_id: "b-a800",
        }
        wait_for(lambda: all(ops.get(j).state == JobState.PENDING for j in waiting), what="pending")
    _as(monkeypatch, broker, "operator")
    code, out, err = cli(capsys, "queue", "--broker", broker.address, "--json")
    assert (code, err) == (0, "")
    queue = json.loads(out)
    assert {q["job_id"] for q in queue} == set(waiting)
    assert [q["position"] for q in queue] == list(range(1, len(queue) + 1))
    reasons = {waiting[q["job_id"]]: (q["reason"], q["reason_text"]) for q in queue}
    assert all(text for _, text in reasons.values()), reasons
    assert reasons["b-a800"][0] == WaitReason.OVER_QUOTA.value
    assert reasons["a-more"][0] == WaitReason.NO_CAPACITY.value
    assert reasons["a-h800"][0] == WaitReason.NO_CAPACITY.value

    code, out, _ = cli(capsys, "tenants", "--broker", broker.address, "--json")
    tenants = {t["tenant"]: t for t in json.loads(out)}
    assert tenants["tenant-a"]["models"]["a800"]["held"] == 8
    assert tenants["tenant-a"]["models"]["a800"]["quota"] == 8
    assert tenants["tenant-b"]["models"]["a800"]["borrowing_limit"] == 0

    _as(monkeypatch, broker, "bob")
    code, out, _ = cli(capsys, "queue", "--broker", broker.address, "--json")
    assert [waiting[q["job_id"]] for q in json.loads(out)] == ["b-a800"]
    code, out, err = cli(capsys, "queue", "--broker", broker.address, "--tenant", "tenant-a")
    assert code != 0 and "may not see tenant 'tenant-a'" in err
    code, out, _ = cli(capsys, "tenants", "--broker", broker.address, "--json")
    assert [t["tenant"] for t in json.loads(out)] == ["tenant-b"]
