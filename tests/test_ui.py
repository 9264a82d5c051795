"""Flowlink's pages inside the Airflow UI, driven in headless Chromium against a real api-server on loopback.

Each test saves screenshots in its own output folder (pytest's tmp_path for the test)."""

from __future__ import annotations

import pytest

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from tests.airflow_helpers import REPO, demo_connections
from tests.browser import launch, log_in, require_chromium
from tests.live_server import AgentProcess, AirflowServer, wait_for

WF = "erp_to_shop"
UI = "/flowlink/ui"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    require_chromium()
    root = tmp_path_factory.mktemp("ui")
    shop = DemoShop()
    shop.start()
    create_erp(root / "erp.db", customers=12, orders=18)
    server = AirflowServer(root, demo_connections(root / "erp.db", shop.url))
    agents = []
    try:
        server.flowlink("env", "add", "cloud", "--kind", "cloud")
        token = server.flowlink("env", "token", "cloud").stdout.strip()
        server.flowlink("publish", str(REPO / "examples" / "erp_to_shop.yaml"))
        wait_for("the deployment tracker DAG", lambda: server.dag_known("flowlink_deployments"), timeout=90, every=1)

        def start_agent():
            agents.append(AgentProcess(server, "cloud", token, root / "agent.log"))

        yield {"server": server, "shop": shop, "start_agent": start_agent}
    finally:
        for a in agents:
            a.stop()
        server.stop()
        shop.stop()


@pytest.fixture(scope="module")
def browser(world):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, world, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    log_in(page, world["server"])
    yield page
    page.screenshot(path=str(tmp_path / "last.png"), full_page=True)
    context.close()


def shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_anonymous_visitors_are_sent_to_the_login(browser, world):
    page = browser.new_page()
    response = page.goto(f"{world['server'].url}{UI}/bucket")
    assert "/auth/login" in page.url and response.ok
    assert "Resync bucket" not in page.content()
    page.close()


def test_log_in_and_open_each_page(page, world, tmp_path):
    server = world["server"]
    page.goto(f"{server.url}/")
    page.wait_for_load_state("networkidle")
    shot(page, tmp_path, "airflow-home")
    for name, heading in (
        ("environments", "Environments"),
        ("deployments", "Deployments"),
        ("bucket", "Resync bucket"),
        ("snapshots", "Process snapshots"),
        ("feeds", "Feeds"),
    ):
        response = page.goto(f"{server.url}{UI}/{name}")
        assert response.status == 200, name
        assert page.get_by_role("heading", level=1).first.inner_text().startswith(heading), name
        assert "Traceback" not in page.content()
        shot(page, tmp_path, name)
    page.goto(f"{server.url}{UI}/environments")
    assert page.locator("text=cloud").first.is_visible()
    # Inside the Airflow UI: its menu entry shows the page in an iframe, behind the same login.
    page.goto(f"{server.url}/plugin/flowlink-deployments")
    frame = page.frame_locator("iframe")
    frame.get_by_role("heading", name="Deployments", level=1).wait_for(timeout=30_000)
    shot(page, tmp_path, "inside-airflow")


def test_deploy_from_the_page_goes_pending_then_successful(page, world, tmp_path):
    server = world["server"]
    page.goto(f"{server.url}{UI}/deployments?environment=cloud")
    page.locator(f'#never-deployed button[data-action="deploy"][data-workflow="{WF}"]').click()
    dialog = page.locator("#log-dialog")  # the tracker window opens by itself, like the product's
    dialog.locator(".log-summary", has_text="pending").wait_for(timeout=30_000)
    shot(page, tmp_path, "tracker-pending")
    dialog.locator('button[data-action="close-dialog"]').click()
    row = page.locator(f'#deployments tr[data-workflow="{WF}"][data-status="pending"]')
    row.wait_for(timeout=30_000)
    undeploy = row.locator('button[data-action="undeploy"]')
    assert undeploy.is_disabled() and "pending" in undeploy.get_attribute("title")
    deploy = row.locator('button[data-action="deploy"], button[data-action="redeploy"]')
    assert all(deploy.nth(i).is_disabled() for i in range(deploy.count()))
    shot(page, tmp_path, "pending")

    world["start_agent"]()
    row.locator('a[data-action="show-log"]').click()
    dialog.locator(".log-steps", has_text="deployed").wait_for(timeout=60_000)
    dialog.locator(".log-summary", has_text="successful").wait_for(timeout=30_000)
    shot(page, tmp_path, "tracker-successful")
    dialog.locator('button[data-action="close-dialog"]').click()
    done = page.locator(f'#deployments tr[data-workflow="{WF}"][data-status="successful"]')
    done.wait_for(timeout=30_000)
    assert done.locator('button[data-action="undeploy"]').is_enabled()
    shot(page, tmp_path, "successful")


def test_bucket_filter_failed_resync_and_see_them_succeed(page, world, tmp_path):
    server, shop = world["server"], world["shop"]
    wait_for("the workflow DAG", lambda: server.dag_known(WF), timeout=90, every=1)
    shop.reject("customers", ["3", "5"], status=422, message="email: blocked by the shop")
    run_id = server.flowlink("run", WF).stdout.split("run ")[-1].strip()
    wait_for(
        "the run to end",
        lambda: server.api("GET", f"/api/v2/dags/{WF}/dagRuns/{run_id}").json()["state"] in ("success", "failed"),
        timeout=120,
        every=1,
    )
    page.goto(f"{server.url}{UI}/bucket?workflow={WF}&touchpoint=customers&status=failed")
    rows = page.locator("#bucket tbody tr[data-source-id]")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.sourceId)")) == ["3", "5"]
    assert "blocked by the shop" in page.locator("#bucket").inner_text()
    shot(page, tmp_path, "failed-records")

    shop.reject("customers", [])
    page.locator('button[data-action="resync-failed"]').click()
    page.locator(".progress-text", has_text="resync #").wait_for(timeout=30_000)
    shot(page, tmp_path, "resync-progress")
    page.get_by_text("Resync run").wait_for(timeout=120_000)  # the page reloads with the run's outcome
    assert "success" in page.get_by_text("Resync run").inner_text()
    shot(page, tmp_path, "resync-done")
    page.goto(f"{server.url}{UI}/bucket?workflow={WF}&touchpoint=customers&status=failed")
    assert page.locator("#bucket tbody tr[data-source-id]").count() == 0
    assert len(shop.records("customers")) == 12


def test_snapshot_shows_the_steps_and_the_data_log(page, world, tmp_path):
    server = world["server"]
    page.goto(f"{server.url}{UI}/snapshots?workflow={WF}")
    shot(page, tmp_path, "runs")
    # a run that has ended: the demo's schedule starts one every minute, and the newest may have no load step yet
    page.locator('tr[data-run-id]:not(:has(.state-running)) a[href*="/snapshot?"]').first.click()
    page.wait_for_load_state()
    body = page.locator("body").inner_text()
    assert "customers" in body and "load" in body
    assert page.locator('a[href*="/dags/erp_to_shop/runs/"]').count() >= 1  # links to the Airflow run
    shot(page, tmp_path, "snapshot")
