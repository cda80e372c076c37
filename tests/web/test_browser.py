"""The console in a real browser (Debian's chromium, headless) against a real broker over TLS
with a real agent: login, the map, live jobs, tenant scoping, draining, screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from computenet.types import JobState, SiteStatus
from computenet.usage import UsageGrouping, usage_csv
from tests.support.pki import Pki
from tests.support.waiting import wait_for
from tests.web.browser_support import open_page, screenshot, sign_in, wait_live
from tests.web.conftest import ConsoleBroker, screenshot_dir, start_console, tenants_config
from topology import default_topology

pytestmark = pytest.mark.browser

SITE = "horinger"
OTHER_SITES = {
    "yangtze-demo": [{"model": "a800", "count": 8}, {"model": "h20", "count": 16}],
    "guian": [{"model": "910b", "count": 16}],
}
"""More live sites, so the map and the sites page show a federation at work."""


def job(name: str, seconds: int = 300) -> dict[str, Any]:
    """A one-card job pinned to the live site, its data in Shanghai (a flow on the map)."""
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 1},
        "duration_hours": 0.5,
        "dataset": {"origin": "shanghai", "size_gb": 20},
        "constraints": {"allowed_sites": [SITE]},
        "command": ["sleep", str(seconds)],
    }


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ConsoleBroker]:
    """A TLS broker serving the console, with tenants in its config file and live agents at
    SITE and OTHER_SITES."""
    workdir = tmp_path_factory.mktemp("console-tls")
    # running attempts priced every 2 s, so usage shows the long jobs of the showcase too
    config = tenants_config(workdir, "accounting: {every_s: 2}\n")
    running = start_console(workdir, "--config", str(config), pki=pki)
    try:
        running.start_agent(SITE)
        for site, pools in OTHER_SITES.items():
            running.start_agent(site, pools)
        with running.broker.client() as client:
            for site in (SITE, *OTHER_SITES):
                wait_for(
                    lambda site=site: (
                        client.site(site).status == SiteStatus.ACTIVE and client.site(site).pools
                    ),
                    what=f"{site} active with its pools",
                )
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory)


def test_login_and_the_map_shows_every_site_of_the_topology(
    browser: Any, console: ConsoleBroker, shots: Path
) -> None:
    page = open_page(browser, console)
    page.goto(f"{console.url}/jobs")
    page.wait_for_url("**/login?**")
    screenshot(page, shots, "login")
    sign_in(page, console, "operator", then="/")
    drawn = page.eval_on_selector_all("#sites g.site", "gs => gs.map(g => g.dataset.site)")
    assert sorted(drawn) == sorted(default_topology().site_ids)
    regions = page.eval_on_selector_all("#regions g.region", "gs => gs.length")
    assert regions == len(default_topology().regions)
    assert page.get_attribute(f"#map-site-{SITE}", "data-status") == "active"
    assert page.get_attribute("#map-site-wuhu", "data-status") == "offline"
    page.context.close()


SHOWCASE = [
    {
        "name": "chat-serving",
        "kind": "inference",
        "resources": {"accelerator": "h20", "count": 2},
        "duration_hours": 4,
        "inference": {
            "user_regions": [
                {"region": "shanghai", "weight": 3},
                {"region": "hangzhou"},
                {"region": "nanjing"},
            ],
            "latency_slo_ms": 60,
        },
        "constraints": {"allowed_sites": ["yangtze-demo"]},
        "command": ["sleep", "300"],
    },
    {
        "name": "llm-pretrain",
        "kind": "training",
        "resources": {"accelerator": "910b", "count": 8},
        "duration_hours": 24,
        "dataset": {"origin": "beijing", "size_gb": 200},
        "constraints": {"allowed_sites": ["guian"]},
        "command": ["sleep", "300"],
    },
]
"""Jobs of other shapes at the other live sites: flows from users and from data."""


def test_a_job_submitted_through_the_sdk_appears_without_a_reload(
    browser: Any, console: ConsoleBroker, shots: Path
) -> None:
    jobs_page = open_page(browser, console)
    sign_in(jobs_page, console, "operator", then="/jobs")
    map_page = jobs_page.context.new_page()
    map_page.goto(f"{console.url}/")
    for page in (jobs_page, map_page):
        wait_live(page)
        page.evaluate("window.__notReloaded = true")
    with console.broker.client() as client:
        others = [
            client.submit(spec, request_id=f"browser-showcase-{i}").job.job_id
            for i, spec in enumerate(SHOWCASE)
        ]
        submitted = client.submit(job("live-train"), request_id="browser-live").job
        job_id = submitted.job_id
        jobs_page.wait_for_selector(f'#jobs-table tr[data-job="{job_id}"]')
        map_page.wait_for_selector(f'#flows g[data-job="{job_id}"]')
        wait_for(lambda: client.get(job_id).state == JobState.RUNNING, what="the job running")
        for other in others:
            wait_for(
                lambda o=other: client.get(o).state == JobState.RUNNING, what=f"{other} running"
            )
            map_page.wait_for_selector(f'#flows g.flow-running[data-job="{other}"]')
        inference = f'#flows g[data-job="{others[0]}"] path'
        assert map_page.eval_on_selector_all(inference, "p => p.length") == 3  # one per region
    jobs_page.wait_for_selector(f'#jobs-table tr[data-job="{job_id}"] .state-running')
    map_page.wait_for_selector(f'#flows g.flow-running[data-job="{job_id}"]')
    assert map_page.get_attribute(f'#flows g[data-job="{job_id}"]', "data-site") == SITE
    assert map_page.eval_on_selector_all(f'#flows g[data-job="{job_id}"] path', "p => p.length")
    for page in (jobs_page, map_page):
        assert page.evaluate("window.__notReloaded") is True
    screenshot(map_page, shots, "map")
    screenshot(jobs_page, shots, "jobs")
    jobs_page.click(f'#jobs-table tr[data-job="{job_id}"] a')
    jobs_page.wait_for_selector("#explanation")
    assert jobs_page.locator("#explanation tr.chosen td").first.inner_text() == SITE
    infeasible = jobs_page.locator("#explanation tr.infeasible").count()
    assert infeasible == len(default_topology().sites) - 1  # pinned: every other site refused
    assert jobs_page.locator("#timeline li").count() >= 3
    screenshot(jobs_page, shots, "job")
    jobs_page.context.close()


def _tenant_cell(page: Any, tenant: str, column: str) -> str:
    row = f'#tenants-table tr[data-tenant="{tenant}"][data-model="a800"]'
    return str(page.inner_text(f"{row} .c-{column}")).strip()


HELD_IS = """([tenant, cards]) => {
    const cell = document.querySelector(
        `#tenants-table tr[data-tenant="${tenant}"][data-model="a800"] .c-held`);
    return cell !== null && cell.textContent.trim() === cards;
}"""


def test_the_queue_shows_reasons_and_the_tenants_table_follows_live(
    browser: Any, console: ConsoleBroker, shots: Path
) -> None:
    too_big = {**job("waits"), "resources": {"accelerator": "a800", "count": 64}}
    over_quota = {**job("over-quota"), "resources": {"accelerator": "a800", "count": 4}}
    page = open_page(browser, console)
    sign_in(page, console, "operator", then="/queue")
    wait_live(page)
    page.evaluate("window.__notReloaded = true")
    assert _tenant_cell(page, "tenant-a", "quota") == "4"  # from the broker's config file
    assert _tenant_cell(page, "tenant-b", "limit") == "0"
    assert _tenant_cell(page, "tenant-a", "held") == "0"
    with (
        console.broker.client() as client,
        console.broker.client("alice") as alice,
        console.broker.client("bob") as bob,
    ):
        waiting = client.submit(too_big, request_id="browser-queue").job.job_id
        capped = bob.submit(over_quota, request_id="browser-over-quota").job.job_id
        for job_id in (waiting, capped):
            page.wait_for_selector(f'#queue-body tr[data-job="{job_id}"]')  # joined live
        running = alice.submit(job("alices", seconds=300), request_id="browser-alice").job.job_id
        wait_for(lambda: client.get(running).state == JobState.RUNNING, what="alice's job runs")
        page.wait_for_function(HELD_IS, arg=["tenant-a", "1"])  # re-rendered on its events
        for j in (waiting, capped):
            wait_for(lambda j=j: client.get(j).reason, what="a reason for the job")
        assert client.get(capped).reason.startswith("over quota:")
        alice.cancel(running, "done looking")
        page.wait_for_function(HELD_IS, arg=["tenant-a", "0"])
        assert page.evaluate("window.__notReloaded") is True

        def reasons_as_the_sdk_reads_them() -> bool:
            # a round after the cancel may reword a reason (free cards changed): compare the
            # page with the SDK's reading of the same moment
            page.reload()
            shown = {
                j: page.inner_text(f'#queue-body tr[data-job="{j}"] .c-reason').strip()
                for j in (waiting, capped)
            }
            return shown == {j: client.get(j).reason for j in (waiting, capped)}

        wait_for(reasons_as_the_sdk_reads_them, what="the page's reasons equal the SDK's")
    assert page.get_attribute(f'#queue-body tr[data-job="{capped}"]', "data-reason") == (
        "over_quota"
    )
    screenshot(page, shots, "queue")
    page.context.close()


def test_a_users_usage_page_shows_only_their_tenant(
    browser: Any, console: ConsoleBroker, shots: Path
) -> None:
    with console.broker.client("alice") as alice:
        done = alice.submit(job("alice-short", seconds=1), request_id="browser-usage").job.job_id
        wait_for(lambda: alice.get(done).state == JobState.SUCCEEDED, what="alice's job done")
        wait_for(
            lambda: [g.key for g in alice.usage().groups] == ["tenant-a"],
            what="alice's usage recorded",
        )
        by_site = alice.usage(by=UsageGrouping.SITE)
    page = open_page(browser, console)
    sign_in(page, console, "alice", then="/usage")
    keys = page.eval_on_selector_all(
        "#usage-table tbody tr[data-key]", "r => r.map(x => x.dataset.key)"
    )
    assert keys == ["tenant-a"]
    page.select_option("select[name=by]", "site")
    page.click("#usage-filters button[type=submit]")
    page.wait_for_url("**/usage?by=site**")
    keys = page.eval_on_selector_all(
        "#usage-table tbody tr[data-key]", "r => r.map(x => x.dataset.key)"
    )
    assert keys == [g.key for g in by_site.groups] and SITE in keys
    csv_link = console.url + page.get_attribute("#usage-csv", "href")

    def same_as_the_clis() -> bool:  # the accountant may still be settling the last stretch
        download = page.request.get(csv_link)
        assert download.ok
        return bool(download.text() == usage_csv(alice.usage(by=UsageGrouping.SITE)))

    with console.broker.client("alice") as alice:
        wait_for(same_as_the_clis, what="the CSV download equal to `computenet usage --csv`")
    refused = page.goto(f"{console.url}/usage?tenant=tenant-b")
    assert refused.status == 403
    assert "may not see tenant" in page.inner_text("#error-message")
    page.context.close()
    ops = open_page(browser, console)
    sign_in(ops, console, "operator", then="/usage")
    keys = ops.eval_on_selector_all(
        "#usage-table tbody tr[data-key]", "r => r.map(x => x.dataset.key)"
    )
    with console.broker.client() as client:
        assert set(keys) >= {"tenant-a"} and set(keys) <= {g.key for g in client.usage().groups}
    screenshot(ops, shots, "usage")
    ops.context.close()


def test_a_user_cannot_see_another_tenants_job_nor_drain_a_site(
    browser: Any, console: ConsoleBroker, shots: Path
) -> None:
    with console.broker.client("bob") as bob:
        bobs = bob.submit(job("bobs", seconds=1), request_id="browser-bob").job.job_id
    page = open_page(browser, console)
    sign_in(page, console, "alice", then="/jobs")
    assert page.locator(f'tr[data-job="{bobs}"]').count() == 0
    response = page.goto(f"{console.url}/jobs/{bobs}")
    assert response.status == 404
    assert "not found" in page.inner_text("#error-message")
    page.goto(f"{console.url}/sites")
    assert page.locator("button.drain").count() == 0  # no drain buttons for a user
    # a forged drain form, posted with the user's own session: refused, and the page says why
    page.evaluate(
        """([site, csrf]) => {
            const f = document.createElement('form');
            f.method = 'post'; f.action = '/sites/' + site + '/drain';
            for (const [k, v] of [['csrf', csrf], ['action', 'drain']]) {
                const i = document.createElement('input');
                i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
            }
            document.body.appendChild(f); f.submit();
        }""",
        [SITE, page.get_attribute("form[action='/logout'] input[name=csrf]", "value")],
    )
    page.wait_for_selector("#error-message")
    assert "needs an operator token" in page.inner_text("#error-message")
    screenshot(page, shots, "forbidden")
    with console.broker.client() as client:
        assert client.site(SITE).status == SiteStatus.ACTIVE
    page.context.close()


def test_an_operator_drains_a_site_and_its_status_changes(
    browser: Any, console: ConsoleBroker, shots: Path
) -> None:
    movable = {
        **job("movable"),
        "kind": "training",
        "resources": {"accelerator": "a800", "count": 4},
        "checkpoint": {"interval_hours": 1, "size_gb": 10},
        "constraints": {"allowed_sites": [SITE, "yangtze-demo"]},
    }
    with console.broker.client() as client:
        moving = client.submit(movable, request_id="browser-movable").job.job_id
        wait_for(lambda: client.get(moving).state == JobState.RUNNING, what="movable running")
        target = client.get(moving).site  # the cheaper of the two for it now
        assert target in (SITE, "yangtze-demo")
    page = open_page(browser, console)
    sign_in(page, console, "operator", then="/sites")
    watcher = page.context.new_page()
    watcher.goto(f"{console.url}/sites")
    wait_live(watcher)
    status = f"#site-{target} .status"
    assert page.inner_text(status) == "active"
    page.click(f"#site-{target} button.drain")
    page.wait_for_selector(f'{status}[data-status="draining"]')
    watcher.wait_for_selector(f'{status}[data-status="draining"]')  # live, not reloaded
    with console.broker.client() as client:
        assert client.site(target).status == SiteStatus.DRAINING
    screenshot(page, shots, "sites")
    # the drained site's movable job is what a rebalancing run would evacuate (a dry run)
    page.goto(f"{console.url}/rebalance")
    page.click("#plan")
    page.wait_for_selector("#planned")
    assert "dry run" in page.inner_text("#planned")
    run = page.locator("section.run").first
    assert run.locator(f'a[href="/jobs/{moving}"]').count() == 1
    assert "evacuate" in run.inner_text()
    screenshot(page, shots, "rebalance")
    page.goto(f"{console.url}/sites")
    page.click(f"#site-{target} button.resume")
    page.wait_for_selector(f'{status}[data-status="active"]')
    watcher.wait_for_selector(f'{status}[data-status="active"]')
    with console.broker.client() as client:
        assert client.get(moving).site == target  # planned only: nothing moved
    page.context.close()
