"""The Try page (/flowlink/ui/try) in headless Chromium against a real `airflow standalone` (scheduler, LocalExecutor):
samples fetched by real flowlink_try runs from the demo ERP (SQLite), edits re-transformed in the page, publishing,
a viewer's read-only page, and bad input (problems at YAML paths, a missing source table).

Each test saves screenshots in its own output folder (pytest's tmp_path for the test)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from tests.airflow_helpers import REPO, demo_connections
from tests.browser import launch, log_in, require_chromium
from tests.live_server import AirflowServer, wait_for

WF = "erp_to_shop"
TRY = "/flowlink/ui/try"
FETCH_TIMEOUT = 180_000  # ms: a flowlink_try run queued, started by the LocalExecutor and ended


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Airflow with an admin and a viewer, the demo ERP and shop, erp_to_shop published (not deployed: its samples
    are fetched on the primary environment's queue, where deploying would put it)."""
    require_chromium()
    root = tmp_path_factory.mktemp("ui-try")
    shop = DemoShop()
    shop.start()
    erp = root / "erp.db"
    create_erp(erp, customers=12, orders=18)
    users = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer"}
    server = AirflowServer(root, {**demo_connections(erp, shop.url), **users})
    try:
        server.flowlink("env", "add", "cloud", "--kind", "cloud")
        server.flowlink("publish", str(REPO / "examples" / "erp_to_shop.yaml"))
        wait_for("the flowlink_try DAG", lambda: server.dag_known("flowlink_try"), timeout=120, every=1)
        yield {"server": server, "shop": shop, "erp": erp, "published": root / "flowlink" / "published" / WF}
    finally:
        server.stop()
        shop.stop()


@pytest.fixture(scope="module")
def browser(world):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def _page(browser, world, tmp_path, user: str | None = None):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    log_in(page, world["server"], user)
    return context, page


@pytest.fixture
def page(browser, world, tmp_path):
    context, page = _page(browser, world, tmp_path)
    yield page
    page.screenshot(path=str(tmp_path / "last.png"), full_page=True)
    context.close()


@pytest.fixture
def viewer_page(browser, world, tmp_path):
    context, page = _page(browser, world, tmp_path, "viewer")
    yield page
    page.screenshot(path=str(tmp_path / "last.png"), full_page=True)
    context.close()


def shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def newest(erp, table: str, n: int = 5) -> dict[str, dict]:
    """The newest n rows of a demo ERP table, by id (as the try reads them: newest by updated_at)."""
    db = sqlite3.connect(erp)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(f"SELECT * FROM {table} ORDER BY updated_at DESC LIMIT ?", (n,)).fetchall()
    finally:
        db.close()
    return {str(r["id"]): dict(r) for r in rows}


def fields(cell) -> dict[str, str]:
    """The first field list of a cell of the records table, as {name: value text}."""
    return cell.locator("dl.fields").first.evaluate(
        "dl => Object.fromEntries([...dl.querySelectorAll('dt')].map(dt => [dt.textContent, "
        "dt.nextElementSibling.textContent]))"
    )


def watch_progress(page) -> None:
    """Keep every text #try-progress shows (window.progressSeen), so a passing "queued" is not missed."""
    page.evaluate(
        """() => {
          window.progressSeen = [];
          const el = document.querySelector('#try-progress');
          new MutationObserver(() => window.progressSeen.push(el.textContent))
            .observe(el, {childList: true, subtree: true, characterData: true});
        }"""
    )


def count_tries(page) -> list[str]:
    """The POST /tries requests the page sends (a fetch of samples; /tries/check and /tries/transform are not)."""
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.url) if r.method == "POST" and r.url.split("?")[0].endswith("/api/v1/tries") else None,
    )
    return sent


def fetch(page, touchpoint: str) -> None:
    page.select_option("#try-touchpoint", touchpoint)
    page.locator("[data-action=try-fetch]").click()


def test_fetch_edit_a_rule_see_the_output_change_and_publish(page, world, tmp_path):
    from playwright.sync_api import expect

    server, erp = world["server"], world["erp"]
    tries = count_tries(page)
    response = page.goto(f"{server.url}{TRY}?workflow={WF}")
    assert response.status == 200
    expect(page.locator("#try-valid")).to_have_text("valid")  # the published spec, checked as the page opens
    assert page.locator("#try-version").input_value() == "1"
    editor = page.locator("#try-editor")
    assert editor.input_value().startswith(f"name: {WF}\n") and "target: email" in editor.input_value()
    assert page.locator("#try-xslt").inner_text().lstrip().startswith("<")  # the published stylesheet of customers
    watch_progress(page)

    fetch(page, "customers")
    rows = page.locator("#try-records tr.try-record")
    rows.nth(4).wait_for(timeout=FETCH_TIMEOUT)
    shot(page, tmp_path, "fetched")
    seen = " | ".join(page.evaluate("window.progressSeen"))
    assert "queued on cloud's queue (run manual__" in seen, seen  # where it ran, and the Airflow run
    assert (
        page.locator("#try-progress a[data-airflow-link]").get_attribute("href").startswith("/dags/flowlink_try/runs/")
    )
    expected = newest(erp, "customers")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.key)")) == sorted(expected)
    for key, row in expected.items():
        record = page.locator(f'#try-records tr.try-record[data-key="{key}"]')
        source = fields(record.locator("td.try-source"))
        assert source["first_name"] == row["first_name"] and source["email"] == row["email"], source
        assert source["updated_at"] == row["updated_at"]
        output = fields(record.locator("td.try-output"))
        assert output == {
            "customer_id": key,
            "name": f"{row['first_name']} {row['last_name']}",
            "email": row["email"].lower(),
            "country": {"DE": "Germany", "FR": "France", "US": "United States"}.get(row["country_code"], "Other"),
            "channel": "erp",
        }, output
        assert record.locator("td.try-status").inner_text().startswith("ready")
        assert f"PUT /customers/{key}" in record.locator("td.try-request").inner_text()
    assert "xsl:stylesheet" in page.locator("#try-xslt").inner_text()
    assert len(tries) == 1

    # Edit two rules: a target field renamed, a transform changed. Only the transform runs again, on the samples kept.
    started = time.monotonic()
    editor.fill(
        editor.input_value().replace("target: email", "target: mail", 1).replace("case: lower", "case: upper", 1)
    )
    key = next(k for k, r in expected.items() if r["email"] != r["email"].upper())
    record = page.locator(f'#try-records tr.try-record[data-key="{key}"]')
    expect(record.locator("td.try-output")).to_contain_text(expected[key]["email"].upper(), timeout=10_000)
    took = time.monotonic() - started
    output = fields(record.locator("td.try-output"))
    assert output["mail"] == expected[key]["email"].upper() and "email" not in output, output
    assert record.locator("td.try-output .changed").count() >= 2  # what the edit changed is marked
    assert fields(record.locator("td.try-source"))["email"] == expected[key]["email"]  # the same sample
    xslt = page.locator("#try-xslt").inner_text()  # the draft's stylesheet
    assert "<mail>" in xslt and "$flowlink-upper-from" in xslt and "<email>" not in xslt
    assert page.locator("#try-problems li").count() == 0
    assert len(tries) == 1, tries  # no new fetch: the output came from /tries/transform
    assert took < 5, f"the edited output took {took:.1f} s"
    shot(page, tmp_path, "edited")

    page.locator("[data-action=try-publish]").click()
    expect(page.locator("#message")).to_contain_text(f"published {WF} v2", timeout=30_000)
    published = world["published"] / f"{WF}-v0002.json"
    assert published.is_file()
    mapping = json.loads(published.read_text())["content"]["spec"]["touchpoints"][0]["mapping"]
    assert {"target": "mail", "case": "upper"}.items() <= next(m for m in mapping if m["source"] == "email").items()
    assert page.locator("#try-version").input_value() == "2"
    shot(page, tmp_path, "published")
    page.locator("[data-action=try-publish]").click()  # the same text again: nothing new
    expect(page.locator("#message")).to_contain_text("unchanged: same as v2", timeout=30_000)
    assert sorted(p.name for p in world["published"].iterdir()) == [f"{WF}-v0001.json", f"{WF}-v0002.json"]
    assert world["shop"].records("customers") == {}  # nothing reached the target
    assert len(tries) == 1


def test_a_viewer_fetches_samples_but_cannot_edit_or_publish(viewer_page, world, tmp_path):
    from playwright.sync_api import expect

    page, server = viewer_page, world["server"]
    page.goto(f"{server.url}{TRY}?workflow={WF}&version=1")
    editor = page.locator("#try-editor")
    publish = page.locator("[data-action=try-publish]")
    assert editor.get_attribute("readonly") is not None
    assert "edit permission on the Airflow DAG erp_to_shop" in editor.get_attribute("title")
    assert publish.is_disabled()
    assert "you may not try a draft of or publish erp_to_shop: that needs edit permission" in publish.get_attribute(
        "title"
    )
    assert page.locator("[data-action=try-fetch]").is_enabled()
    shot(page, tmp_path, "viewer")

    fetch(page, "orders")
    rows = page.locator("#try-records tr.try-record")
    rows.nth(4).wait_for(timeout=FETCH_TIMEOUT)
    expected = newest(world["erp"], "orders")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.key)")) == sorted(expected)
    for key, row in expected.items():
        record = page.locator(f'#try-records tr.try-record[data-key="{key}"]')
        assert fields(record.locator("td.try-source"))["amount"] == json.dumps(row["amount"])
        output = fields(record.locator("td.try-output"))
        assert output["order_id"] == key and output["total"] == f"{row['amount']:.2f}", output
        assert output["status"] == {"N": "new", "S": "shipped", "C": "cancelled"}[row["status"]]
    expect(page.locator("#try-progress")).to_contain_text("5 records of orders fetched on cloud's queue")
    assert page.locator("#try-problems li").count() == 0
    shot(page, tmp_path, "viewer-samples")
    # The editor cannot be changed: typing does nothing, and no draft is ever checked or tried.
    editor.press("End")
    editor.press_sequentially("x")
    assert not editor.input_value().endswith("x")
    page.emulate_media(color_scheme="dark")
    shot(page, tmp_path, "viewer-samples-dark")
    # Inside the Airflow UI: the plugin's menu entry shows the page in an iframe, behind the same login.
    page.goto(f"{server.url}/plugin/flowlink-try")
    page.frame_locator("iframe").get_by_role("heading", name="Try a mapping", level=1).wait_for(timeout=30_000)
    shot(page, tmp_path, "inside-airflow")


def test_bad_input_problems_at_yaml_paths_and_a_missing_table(page, world, tmp_path):
    from playwright.sync_api import expect

    server = world["server"]
    page.goto(f"{server.url}{TRY}?workflow={WF}&version=1")
    editor = page.locator("#try-editor")
    original = editor.input_value()
    editor.fill(original.replace("case: lower", "case: sideways", 1).replace("method: upsert", "method: teleport", 1))
    problems = page.locator("#try-problems li")
    expect(problems).to_have_count(2)
    assert sorted(problems.all_inner_texts()) == [
        "touchpoints[0].load.method: Input should be 'upsert', 'insert' or 'create_or_update'",
        "touchpoints[0].mapping[2].case: Input should be 'lower' or 'upper'",
    ]
    expect(page.locator("#try-valid")).to_have_text("2 problems")
    shot(page, tmp_path, "problems")
    page.locator("[data-action=try-fetch]").click()  # an invalid draft is refused with its problems, no run starts
    expect(page.locator("#message")).to_contain_text("touchpoints[0].load.method")
    expect(problems).to_have_count(2)

    # A valid draft whose source table does not exist: the run's error in place of the output.
    editor.fill(original.replace("table: customers", "table: no_such_table", 1))
    expect(page.locator("#try-valid")).to_have_text("valid")
    expect(problems).to_have_count(0)
    fetch(page, "customers")
    error = page.locator("#try-error")
    error.wait_for(timeout=FETCH_TIMEOUT)
    assert "no such table 'no_such_table'" in error.inner_text()
    assert page.locator("#try-records").is_hidden()
    expect(page.locator("#try-progress")).to_contain_text("failed")
    shot(page, tmp_path, "missing-table")

    # Records that break the mapping: each fails with the run's message in place of its output.
    name_rule = "    xpath: concat(first_name, ' ', last_name)\n    type: string"
    assert name_rule in original
    editor.fill(original.replace(name_rule, name_rule.replace("string", "integer"), 1))
    expect(page.locator("#try-valid")).to_have_text("valid")
    page.locator("[data-action=try-fetch]").click()
    rows = page.locator("#try-records tr.try-record")
    rows.nth(4).wait_for(timeout=FETCH_TIMEOUT)
    assert page.locator("#try-error").is_hidden()
    for key, row in newest(world["erp"], "customers").items():
        record = page.locator(f'#try-records tr.try-record[data-key="{key}"]')
        assert record.locator("td.try-status").inner_text().split() == ["failed", "at", "transform"]
        name = f"{row['first_name']} {row['last_name']}"
        assert record.locator("td.try-message").inner_text() == f"transform: field 'name': {name!r} is not an integer"
        assert record.locator("td.try-output dl").count() == 0 and record.locator("td.try-request").inner_text() == ""
        assert fields(record.locator("td.try-source"))["last_name"] == row["last_name"]
    assert "(the draft" not in page.locator("#try-xslt-of").inner_text()  # the draft's own stylesheet now
    shot(page, tmp_path, "records-failing")


def test_the_page_offers_a_draft_when_nothing_is_published_and_names_bad_choices(app, home, auth_manager, airflow_db):
    """Server side, without a browser: the empty editor for a draft, a published version's spec as YAML that reads
    back as the same spec, and error pages naming a touchpoint, version or workflow that does not exist."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient
    from lxml import html

    from flowlink import publish
    from flowlink.spec import parse_text

    client = TestClient(app, follow_redirects=False)
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="admin", role="admin")
    r = client.get("/ui/try")
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    doc = html.fromstring(r.text)
    (editor,) = doc.xpath("//textarea[@id='try-editor']")
    assert editor.text_content() == "" and editor.get("readonly") is None
    assert doc.xpath("//button[@data-action='try-publish']")[0].get("disabled") is None
    assert [o.text_content() for o in doc.xpath("//select[@id='try-workflow']/option")] == ["a new draft"]
    assert "Nothing is published yet" in doc.xpath("//p[contains(@class, 'try-where')]")[0].text_content()

    art = publish.publish(REPO / "examples" / "erp_to_shop.yaml").artifact
    doc = html.fromstring(client.get(f"/ui/try?workflow={WF}&touchpoint=orders").text)
    text = doc.xpath("//textarea[@id='try-editor']")[0].text_content()
    assert "query: null" not in text and parse_text(text).model_dump(mode="json") == art.spec
    assert doc.xpath("//select[@id='try-touchpoint']/option[@selected]")[0].get("value") == "orders"
    assert doc.xpath("//pre[@id='try-xslt']")[0].text_content() == art.stylesheets["orders"]
    assert [o.text_content() for o in doc.xpath("//select[@id='try-version']/option")] == ["v1 (latest)"]
    for url, status, message in (
        (f"/ui/try?workflow={WF}&touchpoint=nope", 404, "erp_to_shop v1 has no touchpoint 'nope' (it has: customers"),
        (f"/ui/try?workflow={WF}&version=9", 404, "workflow 'erp_to_shop' has no published version 9 (it has v1 to"),
        ("/ui/try?workflow=never_published", 404, "workflow 'never_published' has not been published"),
        (f"/ui/try?workflow={WF}&version=0", 422, "version: Input should be greater than or equal to 1"),
    ):
        r = client.get(url)
        assert r.status_code == status, (url, r.status_code)
        assert message in html.fromstring(r.text).xpath("//p[@class='error-message']")[0].text_content(), url
    app.dependency_overrides.clear()
