"""The queue, tenants and usage pages over plain HTTP against a real broker with tenants in its
config file: the same order, reasons, quotas and CSV as AccountingService, scoped alike."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from computenet import Client
from computenet.usage import UsageGrouping, usage_csv
from tests.support.waiting import wait_for
from tests.web.conftest import ConsoleBroker
from tests.web.forms import error_of, login

WAITING = {
    "name": "waits",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.1,
    "command": ["true"],
}
"""No agent serves this broker's sites: every job waits."""
_ROW = re.compile(r'<tr data-job="([^"]+)" data-reason="([^"]+)"><td class="n">(\d+)</td>')
_REASON = re.compile(r'data-job="([^"]+)".*?<td class="c-reason">([^<]*)</td>', re.S)


def _client(console: ConsoleBroker, who: str) -> Client:
    return Client(address=console.broker.address, token=console.tokens[who])


@contextmanager
def signed_in(console: ConsoleBroker, who: str) -> Iterator[httpx.Client]:
    with console.http() as http:
        answer = login(http, console.tokens[who])
        assert answer.status_code == 303, answer.text[:500]
        yield http


@pytest.fixture(scope="module")
def waiting(plain_console: ConsoleBroker) -> dict[str, list[str]]:
    """Pending jobs of both tenants, each seen by the placement loop once (a reason each)."""
    out: dict[str, list[str]] = {"alice": [], "bob": []}
    for who, n in (("alice", 3), ("bob", 2)):
        with _client(plain_console, who) as client:
            for i in range(n):
                spec = {**WAITING, "name": f"{who}-{i}", "priority": 10 * i}
                out[who].append(client.submit(spec, request_id=f"q-{who}-{i}").job.job_id)
    with _client(plain_console, "operator") as ops:
        wait_for(
            lambda: {q.job_id for q in ops.queue()} >= {*out["alice"], *out["bob"]},
            what="the jobs in the queue",
        )
    return out


def _tenant_rows(html: str) -> dict[str, dict[str, str]]:
    """Quota, limit and held per tenant of the a800 rows of a tenants table."""
    rows = {}
    for tenant, body in re.findall(
        r'data-tenant="([^"]+)" data-model="a800">(.*?)</tr>', html, re.S
    ):
        cells = dict(re.findall(r'<td class="n c-(\w+)">([^<]*)</td>', body))
        rows[tenant] = cells
    return rows


def test_the_queue_page_is_listqueues_admission_order_with_its_reasons(
    plain_console: ConsoleBroker, waiting: dict[str, list[str]]
) -> None:
    with _client(plain_console, "operator") as ops, signed_in(plain_console, "operator") as http:
        page = http.get("/queue?page_size=200").text
        sdk = ops.queue()
    rows = _ROW.findall(page)
    assert [r[0] for r in rows] == [q.job_id for q in sdk]
    alices = [r[0] for r in rows if r[0] in waiting["alice"]]
    assert alices == waiting["alice"][::-1]  # highest priority first, not submission order
    assert [int(r[2]) for r in rows] == [q.position for q in sdk]
    assert [r[1] for r in rows] == [q.reason.value for q in sdk]
    reasons = dict(_REASON.findall(page.split('id="queue-body"')[1]))
    assert reasons == {q.job_id: q.reason_text for q in sdk}
    assert all(reasons.values())


def test_the_queue_pages_through_the_admission_order(
    plain_console: ConsoleBroker, waiting: dict[str, list[str]]
) -> None:
    with signed_in(plain_console, "operator") as http:
        every = [r[0] for r in _ROW.findall(http.get("/queue?page_size=200").text)]
        first = http.get("/queue?page_size=2").text
        assert [r[0] for r in _ROW.findall(first)] == every[:2]
        token = re.search(r"page_token=(\d+)", first)
        assert token is not None
        second = http.get(f"/queue?page_size=2&page_token={token.group(1)}").text
        assert [r[0] for r in _ROW.findall(second)] == every[2:4]


def test_the_tenants_table_shows_configured_quotas_scoped_like_listtenants(
    plain_console: ConsoleBroker, waiting: dict[str, list[str]]
) -> None:
    with signed_in(plain_console, "operator") as http:
        rows = _tenant_rows(http.get("/queue").text)
        fragment = http.get("/queue/tenants")
    assert rows["tenant-a"] == {"quota": "4", "limit": "4", "held": "0", "borrowed": "0"}
    assert rows["tenant-b"] == {"quota": "2", "limit": "0", "held": "0", "borrowed": "0"}
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert _tenant_rows(fragment.text) == rows
    with _client(plain_console, "operator") as ops:
        assert set(rows) == {t.tenant for t in ops.tenants() if t.models}
    with signed_in(plain_console, "alice") as http:
        page = http.get("/queue?page_size=200").text
        assert set(_tenant_rows(page)) == {"tenant-a"}
        assert set(_tenant_rows(http.get("/queue/tenants").text)) == {"tenant-a"}
        assert {r[0] for r in _ROW.findall(page)} == set(waiting["alice"])


def test_usage_csv_is_the_clis_csv_and_a_user_sees_only_their_tenant(
    plain_console: ConsoleBroker, waiting: dict[str, list[str]]
) -> None:
    with _client(plain_console, "operator") as ops, signed_in(plain_console, "operator") as http:
        for by in UsageGrouping:
            answer = http.get(f"/usage.csv?by={by.value}&since=2026-01-01")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/csv")
            assert f'filename="usage-by-{by.value}.csv"' in answer.headers["content-disposition"]
            assert answer.text == usage_csv(ops.usage(by=by, since="2026-01-01"))
            assert answer.text.splitlines()[0].startswith(f"{by.value},card_hours,")
        page = http.get("/usage?by=site&tenant=tenant-b").text
        assert 'href="/usage.csv?by=site&amp;tenant=tenant-b"' in page
        assert "tenant-b" in page.split("<h1>")[1].split("</h1>")[0]
    with _client(plain_console, "alice") as alice, signed_in(plain_console, "alice") as http:
        page = http.get("/usage").text
        assert "tenant-a" in page.split("<h1>")[1].split("</h1>")[0]
        assert 'name="tenant"' not in page  # a user has no tenant field to fill
        assert http.get("/usage.csv").text == usage_csv(alice.usage())
        for path in ("/usage?tenant=tenant-b", "/usage.csv?tenant=tenant-b"):
            refused = http.get(path)
            assert refused.status_code == 403
            assert "may not see tenant" in error_of(refused.text)
        assert http.get("/usage?tenant=tenant-a").status_code == 200
