"""The console over plain HTTP against a real broker: login, CSRF, scoping, and bad input
answered 4xx with a message on every page and form."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from computenet import Client
from tests.support.scripted_agent import ScriptedAgent
from tests.support.waiting import wait_for
from tests.web.conftest import ConsoleBroker
from tests.web.forms import csrf_of, error_of, login
from topology import default_topology

BATCH = {
    "name": "http-batch",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.1,
    "command": ["true"],
}


def _client(console: ConsoleBroker, who: str) -> Client:
    return Client(address=console.broker.address, token=console.tokens[who])


@pytest.fixture(scope="module")
def jobs(plain_console: ConsoleBroker) -> dict[str, str]:
    """One job of alice's tenant and one of bob's, submitted through the SDK."""
    with _client(plain_console, "alice") as alice, _client(plain_console, "bob") as bob:
        return {
            "alice": alice.submit(BATCH, request_id="http-a").job.job_id,
            "bob": bob.submit(BATCH, request_id="http-b").job.job_id,
        }


@contextmanager
def signed_in(console: ConsoleBroker, who: str) -> Iterator[httpx.Client]:
    with console.http() as http:
        answer = login(http, console.tokens[who])
        assert answer.status_code == 303, answer.text[:500]
        yield http


def test_pages_need_a_login_and_a_good_token_gets_one(plain_console: ConsoleBroker) -> None:
    with plain_console.http() as http:
        answer = http.get("/jobs")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=%2Fjobs")
        assert http.get("/events").status_code == 401
        bad = login(http, "cnt_not-a-token")
        assert bad.status_code == 401
        assert "not accepted" in bad.text
        good = login(http, plain_console.tokens["operator"])
        assert good.status_code == 303 and good.headers["location"] == "/jobs"
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert plain_console.tokens["operator"] not in good.headers["set-cookie"]
        assert http.get("/jobs").status_code == 200


def test_a_login_form_without_its_csrf_field_is_refused(plain_console: ConsoleBroker) -> None:
    with plain_console.http() as http:
        http.get("/login")
        for data in ({}, {"csrf": "forged"}):
            answer = http.post("/login", data={**data, "token": plain_console.tokens["operator"]})
            assert answer.status_code == 403
            assert "security check" in error_of(answer.text)


def test_a_user_sees_only_their_tenants_jobs(
    plain_console: ConsoleBroker, jobs: dict[str, str]
) -> None:
    with signed_in(plain_console, "alice") as http:
        page = http.get("/jobs").text
        assert jobs["alice"] in page and jobs["bob"] not in page
        assert jobs["bob"] not in http.get("/jobs?tenant=tenant-b").text
        assert jobs["bob"] not in http.get("/queue").text
        answer = http.get(f"/jobs/{jobs['bob']}")
        assert answer.status_code == 404
        assert "not found" in error_of(answer.text)
        assert http.get(f"/jobs/{jobs['alice']}").status_code == 200
    with signed_in(plain_console, "operator") as http:
        page = http.get("/jobs").text
        assert jobs["alice"] in page and jobs["bob"] in page
        only_b = http.get("/jobs?tenant=tenant-b").text
        assert jobs["bob"] in only_b and jobs["alice"] not in only_b


def test_a_user_cannot_drain_or_rebalance_and_is_told_why(plain_console: ConsoleBroker) -> None:
    with signed_in(plain_console, "alice") as http:
        csrf = csrf_of(http.get("/sites").text)
        answer = http.post("/sites/guian/drain", data={"csrf": csrf, "action": "drain"})
        assert answer.status_code == 403
        assert "needs an operator token" in error_of(answer.text)
        for path in ("/rebalance/plan", "/rebalance/apply"):
            answer = http.post(path, data={"csrf": csrf})
            assert answer.status_code == 403
            assert "operator" in error_of(answer.text)
        assert http.get("/rebalance").status_code == 403
    with signed_in(plain_console, "operator") as http:
        sites = http.get("/sites").text
        assert 'data-status="draining"' not in sites.split('id="site-guian"')[1].split("</tr>")[0]


def test_forms_without_the_session_csrf_are_refused(plain_console: ConsoleBroker) -> None:
    with signed_in(plain_console, "operator") as http:
        for path, data in (
            ("/sites/guian/drain", {"action": "drain"}),
            ("/rebalance/plan", {}),
            ("/logout", {}),
        ):
            for csrf in ({}, {"csrf": "x" * 32}):
                answer = http.post(path, data={**data, **csrf})
                assert answer.status_code == 403, path
                assert "security check" in error_of(answer.text)
        with plain_console.http() as other:
            login(other, plain_console.tokens["operator"])
            stolen = csrf_of(other.get("/sites").text)
        answer = http.post("/sites/guian/drain", data={"csrf": stolen, "action": "drain"})
        assert answer.status_code == 403  # another session's secret does not pass


BAD_GETS = [
    ("/", "x=1", "unknown parameter"),
    ("/sites", "status=active", "unknown parameter"),
    ("/jobs", "state=bogus", "unknown value"),
    ("/jobs", "kind=quantum", "unknown value"),
    ("/jobs", "site=%20bad%20id", "not an id"),
    ("/jobs", "tenant=..%2F..", "not an id"),
    ("/jobs", "page_size=0", "between 1 and"),
    ("/jobs", "page_size=100000", "between 1 and"),
    ("/jobs", "page_size=ten", "not a whole number"),
    ("/jobs", "page_token=%00%01", "malformed page token"),
    ("/jobs", "page_token=not-a-token", "malformed page token"),
    ("/jobs", "pagesize=10", "unknown parameter"),
    ("/jobs/job-missing", "", "not found"),
    ("/jobs/%3Cscript%3E", "", "not an id"),
    ("/jobs/job-x", "verbose=1", "unknown parameter"),
    ("/queue", "page_size=-1", "between 1 and"),
    ("/queue", "page_token=zz", "malformed page token"),
    ("/queue", "page_token=12x", "malformed page token"),
    ("/queue/tenants", "x=1", "unknown parameter"),
    ("/usage", "by=week", "unknown value"),
    ("/usage", "since=2026-13-01", "not a day"),
    ("/usage", "since=2026-1-5", "not a day"),
    ("/usage", "until=yesterday", "not a day"),
    ("/usage", "since=2026-12-05&until=2026-12-01", "is before since"),
    ("/usage", "tenant=..%2F..", "not an id"),
    ("/usage", "group=site", "unknown parameter"),
    ("/usage.csv", "by=quarter", "unknown value"),
    ("/usage.csv", "until=2026-02-30", "not a day"),
    ("/rebalance", "page_token=%FF", "malformed page token"),
    ("/events", "after=-5", "between 0 and"),
    ("/events", "after=soon", "not a whole number"),
    ("/events", "since=1", "unknown parameter"),
    ("/login", "nxt=/", "unknown parameter"),
    ("/no-such-page", "", "Not Found"),
]


@pytest.mark.parametrize(("path", "query", "says"), BAD_GETS)
def test_bad_query_parameters_get_a_4xx_with_a_message(
    plain_console: ConsoleBroker, path: str, query: str, says: str
) -> None:
    with signed_in(plain_console, "operator") as http:
        answer = http.get(f"{path}?{query}" if query else path)
        assert 400 <= answer.status_code < 500, answer.text[:300]
        assert says in error_of(answer.text)


BAD_POSTS = [
    ("/sites/guian/drain", {"action": "explode"}, "must be drain or resume"),
    ("/sites/guian/drain", {}, "must be drain or resume"),
    ("/sites/nowhere/drain", {"action": "drain"}, "not in the topology"),
    ("/sites/guian/drain", {"action": "drain", "extra": "1"}, "unknown parameter"),
    ("/rebalance/plan", {"move_budget": "-1"}, "between 0 and"),
    ("/rebalance/plan", {"move_budget": "lots"}, "not a whole number"),
    ("/rebalance/apply", {"move_budget": "99999999"}, "between 0 and"),
    ("/jobs/job-missing/cancel", {}, "not found"),
    ("/jobs/job-missing/cancel", {"reason": "r" * 600}, "at most"),
    ("/login", {"token": ""}, "paste your token"),
    ("/login", {"token": "t" * 600}, "at most"),
]


@pytest.mark.parametrize(("path", "data", "says"), BAD_POSTS)
def test_bad_forms_get_a_4xx_with_a_message(
    plain_console: ConsoleBroker, path: str, data: dict[str, str], says: str
) -> None:
    with signed_in(plain_console, "operator") as http:
        csrf = csrf_of(http.get("/sites").text)
        if path == "/login":
            csrf = csrf_of(http.get("/login").text)
        answer = http.post(path, data={"csrf": csrf, **data})
        assert 400 <= answer.status_code < 500, answer.text[:300]
        assert says in error_of(answer.text)


def test_malformed_bodies_get_a_4xx(plain_console: ConsoleBroker) -> None:
    with signed_in(plain_console, "operator") as http:
        huge = http.post("/rebalance/plan", content=b"a" * 200_000)
        assert huge.status_code == 413
        garbled = http.post(
            "/rebalance/plan",
            content=b"--x\r\nnot multipart",
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
        assert 400 <= garbled.status_code < 500
        files = http.post("/rebalance/plan", files={"csrf": ("a.txt", b"x")})
        assert 400 <= files.status_code < 500


def test_every_page_answers_with_security_headers(
    plain_console: ConsoleBroker, jobs: dict[str, str]
) -> None:
    with signed_in(plain_console, "operator") as http:
        for path in (
            "/",
            "/sites",
            "/jobs",
            f"/jobs/{jobs['alice']}",
            "/queue",
            "/queue/tenants",
            "/usage",
            "/usage.csv",
            "/rebalance",
        ):
            answer = http.get(path)
            assert answer.status_code == 200, path
            assert "script-src 'self'" in answer.headers["content-security-policy"]
            assert answer.headers["x-frame-options"] == "DENY"


def test_a_removed_token_ends_its_console_session(plain_console: ConsoleBroker) -> None:
    from broker.security.principal import Role
    from broker.security.tokens import add_token, remove_token

    path = plain_console.workdir / "tokens.yaml"
    token = add_token(path, "carol", tenant="tenant-c", role=Role.USER)
    with plain_console.http() as http:
        wait_for(lambda: login(http, token).status_code == 303, what="the token file re-read")
        assert http.get("/jobs").status_code == 200
        with http.stream("GET", "/events", timeout=30) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: hello"
            assert remove_token(path, "carol")
            rest = list(lines)  # the open stream ends by itself once the removal is seen
        assert "event: bye" in rest
        answer = wait_for(
            lambda: (r := http.get("/jobs")).status_code == 303 and r, what="the removal seen"
        )
        assert "no+longer+valid" in answer.headers["location"]


def test_a_user_cancels_their_own_job_but_not_another_tenants(
    plain_console: ConsoleBroker,
) -> None:
    with _client(plain_console, "alice") as alice, _client(plain_console, "bob") as bob:
        mine = alice.submit({**BATCH, "name": "to-cancel"}, request_id="http-c1").job.job_id
        theirs = bob.submit({**BATCH, "name": "not-yours"}, request_id="http-c2").job.job_id
        with signed_in(plain_console, "alice") as http:
            csrf = csrf_of(http.get(f"/jobs/{mine}").text)
            refused = http.post(f"/jobs/{theirs}/cancel", data={"csrf": csrf})
            assert refused.status_code == 404
            done = http.post(f"/jobs/{mine}/cancel", data={"csrf": csrf, "reason": "changed mind"})
            assert done.status_code == 303 and done.headers["location"] == f"/jobs/{mine}"
            assert "state-cancelled" in http.get(f"/jobs/{mine}").text
        assert alice.get(mine).state.value == "cancelled"
        assert bob.get(theirs).state.value == "pending"


def test_an_operator_applies_a_rebalancing_run(plain_console: ConsoleBroker) -> None:
    with signed_in(plain_console, "operator") as http:
        page = http.get("/rebalance").text
        before = page.count('class="run"')
        applied = http.post("/rebalance/apply", data={"csrf": csrf_of(page), "move_budget": "0"})
        assert applied.status_code == 303 and applied.headers["location"] == "/rebalance"
        after = http.get("/rebalance").text
        assert after.count('class="run"') == before + 1
        newest = after.split('class="run"')[1]
        assert "manual" in newest and "dry run" not in newest.split("</h2>")[0]


def _stream_job_ids(http: httpx.Client, after: int, until: str) -> list[str]:
    """Job ids of the `job` events on /events after `after`, read until `until` shows."""
    seen: list[str] = []
    with http.stream("GET", f"/events?after={after}", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: {") and '"job_id"' in line:
                seen.append(json.loads(line[6:])["job_id"])
                if seen[-1] == until:
                    return seen
    raise AssertionError("the stream ended early")


def test_a_users_live_stream_carries_only_their_tenants_events(
    plain_console: ConsoleBroker,
) -> None:
    with signed_in(plain_console, "operator") as http:
        found = re.search(r'data-after="(\d+)"', http.get("/jobs").text)
        assert found is not None
        start = int(found.group(1))
    with _client(plain_console, "bob") as bob, _client(plain_console, "alice") as alice:
        theirs = bob.submit({**BATCH, "name": "b-live"}, request_id="http-s1").job.job_id
        mine = alice.submit({**BATCH, "name": "a-live"}, request_id="http-s2").job.job_id
    with signed_in(plain_console, "alice") as http:
        seen = _stream_job_ids(http, start, until=mine)
    assert theirs not in seen  # bob's event came first in sequence, and was left out
    with signed_in(plain_console, "operator") as http:
        seen = _stream_job_ids(http, start, until=mine)
    assert seen.index(theirs) < seen.index(mine)


def test_the_sites_page_shows_a_sites_pools_and_its_live_price_and_carbon(
    plain_console: ConsoleBroker,
) -> None:
    agent = ScriptedAgent(plain_console.broker.address, "wuhu")
    try:
        agent.next("welcome")
        agent.report_capacity("910b", 16, price=0.4213, carbon=0.5871)
        with signed_in(plain_console, "operator") as http:

            def wuhu_row() -> str:
                page = http.get("/sites").text
                return page.split('id="site-wuhu"')[1].split('<tr id="site-')[0]

            row = wait_for(lambda: "0.421" in wuhu_row() and wuhu_row(), what="the report")
        assert "0.587" in row
        assert "910b" in row
        cells = re.findall(r'<td class="n">(\d+)</td>', row)
        assert cells[:4] == ["16", "0", "0", "16"]  # allocatable, held, in use, free
    finally:
        agent.close()


def test_a_pending_jobs_page_shows_where_it_would_go_now_at_every_site(
    plain_console: ConsoleBroker,
) -> None:
    too_big = {**BATCH, "name": "too-big", "resources": {"accelerator": "a800", "count": 512}}
    with _client(plain_console, "alice") as alice:
        job_id = alice.submit(too_big, request_id="http-too-big").job.job_id
        assert alice.get(job_id).state.value == "pending"
    with signed_in(plain_console, "alice") as http:
        page = http.get(f"/jobs/{job_id}").text
    assert 'id="live-plan"' in page
    table = page[page.index('id="explanation"') :]
    rows = re.findall(r"<tr class=\"[^\"]*\"><td>([^<]+)</td><td>(yes|no)</td>", table)
    assert sorted(site for site, _ in rows) == sorted(default_topology().site_ids)
    assert {feasible for _, feasible in rows} == {"no"}  # no site has 512 a800 free
