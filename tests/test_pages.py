"""The Flowlink pages inside the Airflow UI (plugins/api/pages.py) and the JSON endpoints they call.

Data is seeded with the store functions, publish and flowlink.deployments directly (no Airflow runs). Behaviour tests
override get_user; the login tests use the real one (anonymous -> redirect to Airflow's login, bad token -> 403).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from lxml import etree

import flowlink.store.bucket as bucket_module
from flowlink import airflow_adapter as runs
from flowlink import deployments, publish, settings, staging
from flowlink.recordxml import RecordWriter
from flowlink.states import DEPLOYMENT_STEPS, DeploymentAction
from flowlink.store import bucket, feeds, snapshots
from flowlink.store.bucket import Outcome
from tests.airflow_env import REPO

SPEC = REPO / "examples" / "erp_to_shop.yaml"
WF = "erp_to_shop"
OTHER = "crm_to_erp"
DEPLOY_STEPS = [s.value for s in DEPLOYMENT_STEPS[DeploymentAction.DEPLOY]]
PAGES = [
    "/ui/environments",
    "/ui/deployments",
    "/ui/bucket",
    "/ui/snapshots",
    "/ui/feeds",
    "/ui/try",
    f"/ui/snapshot?workflow={WF}&run_id=run-1",
    "/ui/bucket?workflow=erp_to_shop&status=failed&page=2",
]


# ------------------------------------------------------------------ a small HTML reader for the assertions


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def text(self) -> str:
        return " ".join("".join(c if isinstance(c, str) else c.text for c in self.children).split())

    def all(self, tag: str | None = None, **attrs) -> list[Node]:
        """Descendants with this tag and these attributes (value True: present with any value)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}  # class_ -> class, data_x -> data-x
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(
                    (k in child.attrs) if v is True else child.attrs.get(k) == v for k, v in wanted.items()
                ):
                    found.append(child)
                found += child.all(tag, **attrs)
        return found

    def one(self, tag: str | None = None, **attrs) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]


VOID = {"meta", "link", "input", "br", "img", "hr", "source", "col", "wbr"}


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: ("" if v is None else v) for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def html(response) -> Node:
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    reader = _Reader()
    reader.feed(response.text)
    return reader.root


def rows(doc: Node, table_id: str) -> list[Node]:
    return [tr for tr in doc.one("table", id=table_id).one("tbody").all("tr") if not tr.all("td", class_="empty")]


def button(doc: Node, action: str, workflow: str) -> Node:
    return doc.one("button", data_action=action, data_workflow=workflow)


def pager_text(doc: Node) -> str:
    return doc.all("nav", class_="pager")[0].one("span", class_="pager-info").text


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def client(app):
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def artifact(home):
    return publish.publish(SPEC).artifact


@pytest.fixture
def other(home, tmp_path):
    spec = tmp_path / f"{OTHER}.yaml"
    spec.write_text(SPEC.read_text().replace(f"name: {WF}", f"name: {OTHER}"))
    return publish.publish(spec).artifact


@pytest.fixture
def envs(store):
    deployments.add_environment(store, "prod", "cloud")
    deployments.add_environment(store, "test", "on-premise", pending_timeout=15)


@pytest.fixture
def live(artifact):
    publish.make_live(artifact)
    return artifact


@pytest.fixture
def fake_airflow(monkeypatch):
    """Starting a run: the DAG exists and trigger_dag queues it (what the api-server does)."""
    started = []
    monkeypatch.setattr(runs, "require_dag", lambda dag_id: None)

    def trigger(dag_id, conf):
        started.append((dag_id, conf))
        return f"manual__{uuid.uuid4().hex[:8]}"

    monkeypatch.setattr(runs, "trigger", trigger)
    return started


def finish(store, deployment_id, env="prod"):
    for step in DEPLOY_STEPS:
        deployments.report_step(store, env, deployment_id, step, "done")


# ------------------------------------------------------------------ registration in Airflow


def test_pages_are_not_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]


def test_plugin_registers_the_pages_as_external_views():
    from flowlink_airflow.plugin import FlowlinkPlugin as plugin

    (entry,) = plugin.fastapi_apps
    app_paths = {r.path for r in entry["app"].app.routes}
    assert {
        "/ui/environments",
        "/ui/deployments",
        "/ui/bucket",
        "/ui/snapshots",
        "/ui/snapshot",
        "/ui/feeds",
        "/ui/snapshot/file",
        "/api/v1/workflows/{workflow}/resync",
        "/api/v1/workflows/{workflow}/runs/{run_id}",
    } <= app_paths
    nav = [v for v in plugin.external_views if v["destination"] == "nav"]
    assert [v["href"] for v in nav] == [
        "/flowlink/ui/deployments",
        "/flowlink/ui/environments",
        "/flowlink/ui/bucket",
        "/flowlink/ui/snapshots",
        "/flowlink/ui/feeds",
        "/flowlink/ui/try",
    ]
    assert {v["category"] for v in nav} == {"Flowlink"}
    for v in nav:
        assert v["href"][len("/flowlink") :] in app_paths  # each menu entry is a page of the app
    (tab,) = [v for v in plugin.external_views if v["destination"] == "dag_run"]
    assert tab["name"] == "Snapshot" and tab["href"] == "/flowlink/ui/snapshot?workflow={DAG_ID}&run_id={RUN_ID}"
    routes = [v["url_route"] for v in plugin.external_views]
    assert all(routes) and len(set(routes)) == len(routes)


def test_the_ui_substitutes_the_placeholders_and_groups_categories():
    """What the installed Airflow UI (3.3.2) does with external views, read from its bundle."""
    import airflow

    bundle = next((Path(airflow.__file__).parent / "ui" / "dist" / "assets").glob("index-*.js")).read_text()
    for placeholder in ("{DAG_ID}", "{RUN_ID}", "{TASK_ID}"):  # only for destinations other than "nav"
        assert f"replaceAll(`{placeholder}`,encodeURIComponent(" in bundle
    assert "[`user`,`docs`,`admin`,`browse`]" in bundle  # Airflow's own menus; other categories -> the Plugins menu
    assert re.search(r"(\w)\[e\.category\]=\[\.\.\.\1\[e\.category\]\?\?\[\],e\]", bundle)  # grouped by category


# ------------------------------------------------------------------ login


@pytest.mark.parametrize(
    "url",
    PAGES
    + [
        "/ui/",
        "/ui/static/flowlink.css",
        f"/ui/snapshot/file?workflow={WF}&run_id=r&touchpoint=customers&step=load&n=1",
    ],
)
def test_anonymous_is_redirected_to_the_login_and_back(client, url):
    r = client.get(url)
    assert r.status_code in (302, 307)
    target = urlsplit(r.headers["location"])
    assert target.path == "/api/v2/auth/login"
    assert parse_qs(target.query)["next"] == [url]


@pytest.mark.parametrize("url", PAGES)
def test_a_bad_token_is_a_403_page_without_data(client, auth_manager, store, envs, artifact, url):
    feeds.add(store, "secret", "top secret feed", WF)
    r = client.get(url, headers={"Authorization": "Bearer garbage.not.ajwt"})
    assert r.status_code == 403
    doc = html(r)
    assert "Invalid JWT token" in doc.one("p", class_="error-message").text
    assert "top secret" not in r.text and "prod" not in r.text
    client.cookies.set("_token", "garbage")  # the UI's cookie: the same
    r = client.get(url)
    assert r.status_code == 403 and "top secret" not in r.text


def test_mounted_by_airflows_api_server(home, airflow_db, auth_manager):
    """Under Airflow's own app: /flowlink/ui/... reaches the pages (the login comes back to the full path); the
    mount root without its slash does not (the UI's catch-all answers it)."""
    from airflow.api_fastapi.app import create_app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client = TestClient(airflow_app(apps="core"), follow_redirects=False)
    r = client.get("/flowlink/ui/bucket?status=failed")
    assert r.status_code == 302
    assert r.headers["location"] == "/api/v2/auth/login?next=" + quote("/flowlink/ui/bucket?status=failed", safe="")
    login = client.get(r.headers["location"])
    assert login.status_code == 307 and "next=" in login.headers["location"]  # Airflow accepts the next URL
    token = auth_manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    client.cookies.set("_token", token)
    r = client.get("/flowlink/ui/deployments")
    assert r.status_code == 200
    doc = html(r)
    assert doc.one("h1").text == "Deployments"
    assert doc.one("link", rel="stylesheet").attrs["href"] == "/flowlink/ui/static/flowlink.css"
    assert doc.one("body").attrs["data-api"] == "/flowlink/api/v1"
    assert client.get("/flowlink/ui/static/flowlink.js").status_code == 200
    root = client.get("/flowlink")
    assert "Flowlink" not in root.text  # the SPA's index, not ours


# ------------------------------------------------------------------ index, errors


def test_index_redirects_to_deployments(user):
    for url in ("/ui", "/ui/"):
        r = user.get(url)
        assert r.status_code == 302 and r.headers["location"] == "/ui/deployments"


def test_errors_are_pages_with_the_message(user, store, envs, monkeypatch):
    r = user.get("/ui/deployments?environment=nowhere")
    assert r.status_code == 404
    assert html(r).one("p", class_="error-message").text == "no environment 'nowhere' (flowlink env list)"

    r = user.get("/ui/bucket?workflow=erp_to_shop&since=yesterday")
    assert r.status_code == 400
    assert "since: 'yesterday' is not a date" in html(r).one("p", class_="error-message").text

    r = user.get("/ui/bucket?page=abc&status=lost")
    assert r.status_code == 422
    text = html(r).one("p", class_="error-message").text
    assert "page:" in text and "status:" in text

    monkeypatch.setattr(
        deployments,
        "environments_list",
        lambda store: (_ for _ in ()).throw(deployments.RuleError("refused <right now>")),
    )
    r = user.get("/ui/environments")
    assert r.status_code == 409
    assert html(r).one("p", class_="error-message").text == "refused <right now>"
    assert "refused &lt;right now&gt;" in r.text  # escaped

    monkeypatch.setattr(deployments, "environments_list", lambda store: 1 / 0)
    r = user.get("/ui/environments")
    assert r.status_code == 500
    assert "Traceback" not in r.text and "ZeroDivisionError" not in r.text
    assert "api-server log" in html(r).one("p", class_="error-message").text


def test_pages_forbid_inline_script(user, store):
    r = user.get("/ui/feeds")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text


def test_everything_is_escaped(user, store):
    feeds.add(store, "publish", '<script>alert("x")</script> & <b>bold</b>', WF)
    r = user.get("/ui/feeds")
    assert "<script>alert" not in r.text and "<b>bold" not in r.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in r.text


def test_static_files(user):
    assert user.get("/ui/static/flowlink.css").headers["content-type"].startswith("text/css")
    assert user.get("/ui/static/flowlink.js").headers["content-type"].startswith("text/javascript")
    assert user.get("/ui/static/..%2Fpages.py").status_code == 404
    assert user.get("/ui/static/other.js").status_code == 404


# ------------------------------------------------------------------ environments


def test_environments_page(user, store, envs):
    deployments.heartbeat(store, "test")
    deployments.set_environment(store, "test", enabled=False)
    doc = html(user.get("/ui/environments"))
    by_name = {tr.attrs["data-environment"]: tr for tr in rows(doc, "environments") if "data-environment" in tr.attrs}
    assert set(by_name) == {"prod", "test"}
    prod, test = by_name["prod"], by_name["test"]
    assert "primary" in prod.one("span", class_="primary-mark").text
    assert not prod.all("button", data_action="env-primary") and test.one("button", data_action="env-primary")
    assert "checked" in prod.one("input", data_action="env-enabled").attrs
    assert "checked" not in test.one("input", data_action="env-enabled").attrs
    assert "disconnected" in prod.text and "never" in prod.text
    assert "connected" in test.text and "disconnected" not in test.text
    timeout = test.one("input", name="pending_timeout")
    assert (timeout.attrs["value"], timeout.attrs["min"], timeout.attrs["max"]) == ("15", "5", "60")
    assert [td.text for td in prod.all("td")][:2] == ["prod", "cloud"]


def test_environments_page_without_environments(user, store):
    assert "No environments yet" in user.get("/ui/environments").text


# ------------------------------------------------------------------ deployments


def test_deployments_buttons_follow_the_rules(user, store, envs, artifact, other):
    pending = deployments.deploy(store, WF)

    doc = html(user.get("/ui/deployments"))
    assert doc.one("nav", class_="tabs").one("a", aria_current="page").text == "prod ★"
    (row,) = rows(doc, "deployments")
    cells = [td.text for td in row.all("td")]
    assert cells[:4] == [WF, "v1", "pending", "1"] and cells[5] == "5 min"
    assert pending["wait_till"].strftime("%Y-%m-%d %H:%M:%S") == cells[6]
    for action in ("deploy", "undeploy"):
        b = button(doc, action, WF)
        assert "disabled" in b.attrs
        assert b.attrs["title"].startswith(f"{action} refused: a deployment of {WF} (v1 to prod) is pending")
    assert row.one("a", data_action="show-log").attrs["data-workflow"] == WF
    # the other workflow was published, never deployed: it can be deployed
    (never,) = rows(doc, "never-deployed")
    assert never.attrs["data-workflow"] == OTHER
    assert "disabled" not in button(doc, "deploy", OTHER).attrs

    finish(store, pending["id"])
    doc = html(user.get("/ui/deployments?environment=prod"))
    (row,) = rows(doc, "deployments")
    assert [td.text for td in row.all("td")][2:4] == ["successful", "0"]
    deploy_button, undeploy_button = button(doc, "deploy", WF), button(doc, "undeploy", WF)
    assert deploy_button.text == "Deploy" and "disabled" not in deploy_button.attrs
    assert "disabled" not in undeploy_button.attrs and undeploy_button.attrs["title"] == f"remove {WF} from prod"

    second = deployments.deploy(store, WF)
    deployments.report_step(store, "prod", second["id"], DEPLOY_STEPS[0], "failed", "disk full")
    doc = html(user.get("/ui/deployments"))
    (row,) = rows(doc, "deployments")
    assert "unsuccessful" in row.text and "disk full" in row.text
    redeploy = button(doc, "deploy", WF)
    assert redeploy.text == "Redeploy" and "disabled" not in redeploy.attrs
    assert "disabled" not in button(doc, "undeploy", WF).attrs

    undeploying = deployments.undeploy(store, WF)
    doc = html(user.get("/ui/deployments"))
    assert "disabled" in button(doc, "undeploy", WF).attrs and "disabled" in button(doc, "deploy", WF).attrs
    assert button(doc, "deploy", WF).attrs["title"].startswith("deploy refused: a deployment of erp_to_shop")
    for step in DEPLOYMENT_STEPS[DeploymentAction.UNDEPLOY]:
        deployments.report_step(store, "prod", undeploying["id"], step, "done")
    doc = html(user.get("/ui/deployments"))
    assert "undeploy successful" in rows(doc, "deployments")[0].text
    assert button(doc, "undeploy", WF).attrs["title"] == f"undeploy refused: {WF} is not deployed"
    assert "disabled" not in button(doc, "deploy", WF).attrs


def test_deployments_reasons_come_from_the_environment_rules(user, store, envs, artifact):
    deployments.set_environment(store, "prod", enabled=False)
    doc = html(user.get("/ui/deployments"))
    b = button(doc, "deploy", WF)
    assert "disabled" in b.attrs
    assert (
        b.attrs["title"] == "deploy refused: the primary environment prod is disabled (flowlink env set prod --enable)"
    )


def test_deployments_without_environments(user, store, artifact):
    doc = html(user.get("/ui/deployments"))
    assert "No environments yet" in doc.text
    b = button(doc, "deploy", WF)
    assert "disabled" in b.attrs and b.attrs["title"].startswith("there is no primary environment")


def test_deployments_tabs_per_environment(user, store, envs, artifact):
    d = deployments.deploy(store, WF)
    finish(store, d["id"])
    deployments.set_environment(store, "test", primary=True)
    doc = html(user.get("/ui/deployments"))  # the primary's tab first: nothing deployed there
    assert doc.one("nav", class_="tabs").one("a", aria_current="page").text == "test ★"
    assert rows(doc, "deployments") == []
    doc = html(user.get("/ui/deployments?environment=prod"))
    assert [r.attrs["data-workflow"] for r in rows(doc, "deployments")] == [WF]


def test_deployment_log_endpoint_for_the_window(user, store, envs, artifact):
    d = deployments.deploy(store, WF)
    deployments.report_step(store, "prod", d["id"], DEPLOY_STEPS[0], "done", "fetched")
    body = user.get(f"/api/v1/workflows/{WF}/deployment-log").json()
    assert body["deployment"]["status"] == "pending"
    assert [s["step"] for s in body["steps"]] == ["deploy started", DEPLOY_STEPS[0]]


# ------------------------------------------------------------------ resync bucket


def seed_bucket(store, workflow=WF):
    """100,000 records through the store functions: 60,000 customers, 40,000 orders; of the first 3,000
    customers 1,000 failed and 2,000 succeeded."""
    bucket.mark_unprocessed(store, workflow, "customers", "run-1", [f"c{i:05d}" for i in range(60_000)], resync=False)
    bucket.mark_unprocessed(store, workflow, "orders", "run-1", [f"o{i:05d}" for i in range(40_000)], resync=False)
    bucket.record(
        store,
        workflow,
        "customers",
        "run-1",
        "load",
        [
            Outcome(f"c{i:05d}", "failed", message="422: email <invalid>")
            if i % 3 == 0
            else Outcome(f"c{i:05d}", "success", destination_id=f"shop-{i}")
            for i in range(3_000)
        ],
    )


def test_bucket_pages_through_100000_records(user, store, artifact):
    seed_bucket(store)
    assert bucket.count(store, WF) == 100_000

    doc = html(user.get(f"/ui/bucket?workflow={WF}"))
    page = rows(doc, "bucket")
    assert len(page) == 100
    assert pager_text(doc).startswith("1–100 of 100,000") and "page 1 of 1000" in pager_text(doc)
    assert [r.attrs["data-source-id"] for r in page] == [f"c{i:05d}" for i in range(100)]
    assert doc.all("a", rel="next")[0].attrs["href"] == f"/ui/bucket?workflow={WF}&page=2"
    assert not doc.all("a", rel="prev")

    doc = html(user.get(f"/ui/bucket?workflow={WF}&page=1000"))
    page = rows(doc, "bucket")
    assert [r.attrs["data-source-id"] for r in page] == [f"o{i:05d}" for i in range(39_900, 40_000)]
    assert pager_text(doc).startswith("99,901–100,000 of 100,000")
    assert (
        not doc.all("a", rel="next")
        and doc.all("a", rel="prev")[0].attrs["href"] == f"/ui/bucket?workflow={WF}&page=999"
    )

    doc = html(user.get(f"/ui/bucket?workflow={WF}&touchpoint=customers&status=failed&page=2"))
    page = rows(doc, "bucket")
    assert len(page) == 100 and pager_text(doc).startswith("101–200 of 1,000")
    assert all("failed" in r.text and "customers" in r.text and "email <invalid>" in r.text for r in page)
    assert page[0].attrs["data-source-id"] == f"c{300:05d}"
    assert (
        doc.all("a", rel="next")[0].attrs["href"]
        == f"/ui/bucket?workflow={WF}&touchpoint=customers&status=failed&page=3"
    )

    doc = html(user.get(f"/ui/bucket?workflow={WF}&touchpoint=orders&status=unprocessed&page=400"))
    assert len(rows(doc, "bucket")) == 100 and pager_text(doc).startswith("39,901–40,000 of 40,000")

    doc = html(user.get(f"/ui/bucket?workflow={WF}&status=success&page=99"))
    assert rows(doc, "bucket") == [] and "No records match" in doc.text  # past the end: empty, not an error
    assert "of 2,000" in pager_text(doc)


def test_bucket_filters_by_updated_at(user, store, artifact, monkeypatch):
    for day, ids in ((1, ["a", "b"]), (2, ["c"]), (3, ["d", "e", "f"])):
        monkeypatch.setattr(bucket_module, "utcnow", lambda day=day: dt.datetime(2030, 5, day, 12, tzinfo=dt.UTC))
        bucket.mark_unprocessed(store, WF, "customers", f"run-{day}", ids, resync=False)

    def shown(query):
        return [r.attrs["data-source-id"] for r in rows(html(user.get(f"/ui/bucket?workflow={WF}&{query}")), "bucket")]

    assert shown("since=2030-05-02") == ["c", "d", "e", "f"]
    assert shown("until=2030-05-02") == ["a", "b", "c"]  # the whole last day
    assert shown("since=2030-05-02&until=2030-05-02") == ["c"]
    assert shown("since=2030-05-03T13:00") == []
    assert shown("since=2030-05-03T11:00&until=2030-05-03") == ["d", "e", "f"]
    assert bucket.count(store, WF, since=dt.datetime(2030, 5, 2, tzinfo=dt.UTC)) == 4


def test_bucket_resync_buttons(user, store, envs, artifact):
    bucket.mark_unprocessed(store, WF, "customers", "run-1", ["1", "2"], resync=False)
    bucket.record(store, WF, "customers", "run-1", "load", [Outcome("1", "failed", message="boom")])

    doc = html(user.get(f"/ui/bucket?workflow={WF}"))
    for action in ("resync-selected", "resync-failed"):
        b = doc.one("button", data_action=action)
        assert "disabled" in b.attrs and b.attrs["title"].startswith("choose a touchpoint first")

    doc = html(user.get(f"/ui/bucket?workflow={WF}&touchpoint=customers"))  # not live yet
    assert doc.one("button", data_action="resync-failed").attrs["title"].startswith(f"workflow {WF!r} is not live")

    publish.make_live(artifact)
    doc = html(user.get(f"/ui/bucket?workflow={WF}&touchpoint=customers"))
    section = doc.one("section", class_="resync")
    assert (section.attrs["data-workflow"], section.attrs["data-touchpoint"]) == (WF, "customers")
    failed_button = doc.one("button", data_action="resync-failed")
    assert "disabled" not in failed_button.attrs and "(1)" in failed_button.text
    assert "disabled" not in doc.one("button", data_action="resync-selected").attrs
    assert [i.attrs["value"] for i in doc.one("table", id="bucket").all("input", name="id")] == ["1", "2"]

    doc = html(user.get(f"/ui/bucket?workflow={WF}&touchpoint=orders"))
    assert doc.one("button", data_action="resync-failed").attrs["title"] == (
        f"no failed records in the bucket of {WF}.orders: nothing to resync"
    )

    pending = deployments.deploy(store, WF)
    doc = html(user.get(f"/ui/bucket?workflow={WF}&touchpoint=customers"))
    for action in ("resync-selected", "resync-failed"):
        assert doc.one("button", data_action=action).attrs["title"].startswith(f"resync refused: a deployment of {WF}")
    assert pending["status"] == "pending"


def test_bucket_resyncs_the_unprocessed_records_of_ended_runs(user, store, envs, live, fake_airflow, airflow_db):
    """Unprocessed records whose last run has ended (failed in Airflow, or unknown to it) can be resynced; those of a
    run still running cannot: it may load them yet."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    ended, running, gone = (f"manual__{name}_{uuid.uuid4().hex[:8]}" for name in ("ended", "running", "gone"))
    with create_session() as session:
        session.add(DagRun(dag_id=WF, run_id=ended, run_type=DagRunType.MANUAL, state=DagRunState.FAILED))
        session.add(DagRun(dag_id=WF, run_id=running, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING))
    try:
        _resync_unprocessed(user, store, fake_airflow, ended, running, gone)
    finally:  # the session's Airflow database is shared: other tests list the runs of WF
        with create_session() as session:
            session.query(DagRun).filter(DagRun.dag_id == WF, DagRun.run_id.in_([ended, running])).delete()


def _resync_unprocessed(user, store, fake_airflow, ended, running, gone):
    from flowlink.store import state

    bucket.mark_unprocessed(store, WF, "customers", ended, ["1", "2"], resync=False)
    bucket.mark_unprocessed(store, WF, "customers", gone, ["3"], resync=False)  # Airflow no longer knows it
    bucket.mark_unprocessed(store, WF, "customers", running, ["4"], resync=False)
    bucket.mark_unprocessed(store, WF, "orders", running, ["o1"], resync=False)

    doc = html(user.get(f"/ui/bucket?workflow={WF}&touchpoint=customers"))
    b = doc.one("button", data_action="resync-unprocessed")
    assert "disabled" not in b.attrs and "(3)" in b.text and "runs which have ended" in b.attrs["title"]
    r = user.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "customers", "unprocessed": True})
    assert r.status_code == 201 and r.json()["records"] == 3, r.text
    assert state.resync(store, r.json()["resync_id"])["source_ids"] == ["1", "2", "3"]
    assert fake_airflow == [(WF, {"resync_id": r.json()["resync_id"]})]

    nothing = (
        f"no unprocessed records of ended runs in the bucket of {WF}.orders (1 wait for runs not ended yet, "
        f"which may still load them: {running}): nothing to resync"
    )
    doc = html(user.get(f"/ui/bucket?workflow={WF}&touchpoint=orders"))
    b = doc.one("button", data_action="resync-unprocessed")
    assert "disabled" in b.attrs and b.attrs["title"] == nothing and "(0)" in b.text
    r = user.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "orders", "unprocessed": True})
    assert r.status_code == 400 and r.json()["detail"] == nothing
    r = user.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "orders", "unprocessed": True, "failed": True})
    assert r.status_code == 400 and r.json()["detail"].startswith("choose the records: one of")
    assert len(fake_airflow) == 1


def test_bucket_without_anything_published(user, store):
    assert "Nothing has been published yet" in user.get("/ui/bucket").text


# ------------------------------------------------------------------ resync and run progress endpoints


def test_resync_endpoint_starts_a_run_limited_to_the_records(user, store, envs, live, fake_airflow):
    bucket.mark_unprocessed(store, WF, "customers", "run-1", ["1", "2", "3"], resync=False)
    bucket.record(
        store,
        WF,
        "customers",
        "run-1",
        "load",
        [Outcome("1", "failed", message="x"), Outcome("2", "failed", message="y"), Outcome("3", "success")],
    )
    r = user.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "customers", "failed": True})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["records"] == 2 and body["touchpoint"] == "customers"
    assert fake_airflow == [(WF, {"resync_id": body["resync_id"]})]
    r = user.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "customers", "ids": ["3"]})
    assert r.status_code == 201 and r.json()["records"] == 1
    assert any(e["tag"] == "resync" for e in feeds.entries(store))


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"touchpoint": "customers", "ids": ["404"]}, 400, "not in the bucket of erp_to_shop.customers: 404"),
        ({"touchpoint": "customers"}, 400, "choose the records: one of --failed, --unprocessed or --id ID..."),
        ({"touchpoint": "nowhere", "failed": True}, 400, "workflow 'erp_to_shop' has no touchpoint 'nowhere'"),
        ({"touchpoint": "orders", "failed": True}, 400, "no failed records in the bucket of erp_to_shop.orders"),
        ({"touchpoint": "customers", "failed": "yes"}, 422, None),
        ({"touchpoint": "customers", "ids": []}, 422, None),
        ({"touchpoint": "customers", "ids": ["1"], "extra": 1}, 422, None),
    ],
)
def test_resync_endpoint_refusals(user, store, envs, live, fake_airflow, body, status, detail):
    bucket.mark_unprocessed(store, WF, "customers", "run-1", ["1"], resync=False)
    r = user.post(f"/api/v1/workflows/{WF}/resync", json=body)
    assert r.status_code == status, r.text
    if detail:
        assert r.json()["detail"].startswith(detail)
    assert fake_airflow == []


def test_resync_endpoint_while_pending_and_not_live(user, store, envs, artifact, fake_airflow):
    bucket.mark_unprocessed(store, WF, "customers", "run-1", ["1"], resync=False)
    r = user.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "customers", "ids": ["1"]})
    assert r.status_code == 400 and "is not live" in r.json()["detail"]
    deployments.deploy(store, WF)
    r = user.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "customers", "ids": ["1"]})
    assert r.status_code == 409 and r.json()["detail"].startswith("resync refused: a deployment of")
    r = user.post(
        f"/api/v1/workflows/{WF}/resync",
        content=b'{"touchpoint": "customers", "ids": ["1"]}',
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 415


def test_new_endpoints_need_a_login(client, store):
    assert (
        client.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "customers", "failed": True}).status_code
        == 401
    )
    assert client.get(f"/api/v1/workflows/{WF}/runs/manual__1").status_code == 401


def test_run_progress_reads_airflow_and_the_bucket(user, store, envs, live, fake_airflow, airflow_db):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    bucket.mark_unprocessed(store, WF, "customers", "run-1", ["1", "2", "3"], resync=False)
    bucket.record(
        store,
        WF,
        "customers",
        "run-1",
        "load",
        [Outcome("1", "failed"), Outcome("2", "failed"), Outcome("3", "success")],
    )
    started = user.post(f"/api/v1/workflows/{WF}/resync", json={"touchpoint": "customers", "failed": True}).json()
    run_id = started["run_id"]
    r = user.get(f"/api/v1/workflows/{WF}/runs/{quote(run_id, safe='')}")
    assert r.status_code == 404 and r.json()["detail"] == f"no run {run_id!r} of {WF} in Airflow"

    with create_session() as session:
        session.add(DagRun(dag_id=WF, run_id=run_id, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING))
    body = user.get(f"/api/v1/workflows/{WF}/runs/{quote(run_id, safe='')}").json()
    assert (body["state"], body["finished"], body["records"], body["touchpoint"]) == ("running", False, 2, "customers")
    assert body["counts"] == {"failed": 2} and body["resync_id"] == started["resync_id"]

    bucket.record(
        store, WF, "customers", run_id, "load", [Outcome("1", "success"), Outcome("2", "failed", message="again")]
    )
    with create_session() as session:
        session.query(DagRun).filter(DagRun.run_id == run_id).one().set_state(DagRunState.FAILED)
    body = user.get(f"/api/v1/workflows/{WF}/runs/{quote(run_id, safe='')}").json()
    assert (body["state"], body["finished"]) == ("failed", True)
    assert body["counts"] == {"success": 1, "failed": 1}


# ------------------------------------------------------------------ snapshots


def seed_run(store, run_id, records=250, failed=5):
    """One run of the customers touchpoint: extract and transform batch files, `failed` records failing in
    transform, the rest loaded; its load step ends failed as a real run with failed records does."""
    folder = staging.run_folder(WF, run_id) / "customers"
    ids = [str(i) for i in range(records)]
    snapshots.start_step(store, WF, run_id, 1, "customers", "extract")
    extracted = folder / "extract" / "batch-00001.xml"
    staging.write_batch(extracted, RecordWriter("id").write([{"id": i, "name": f"<n{i}>"} for i in ids]).document)
    bucket.mark_unprocessed(store, WF, "customers", run_id, ids, resync=False)
    snapshots.finish_step(
        store,
        WF,
        run_id,
        "customers",
        "extract",
        status="success",
        count_in=records,
        count_out=records,
        files=[str(extracted)],
    )
    snapshots.start_step(store, WF, run_id, 1, "customers", "transform")
    transformed = [folder / "transform" / "batch-00001.xml", folder / "transform" / "batch-00002.xml"]
    output = RecordWriter("customer_id")  # the transform's output: record XML too, keyed by the source id
    staging.write_batch(transformed[0], output.write([{"customer_id": i} for i in ids[failed:100]]).document)
    staging.write_batch(transformed[1], output.write([{"customer_id": i} for i in ids[100:]]).document)
    bucket.record(
        store,
        WF,
        "customers",
        run_id,
        "transform",
        [Outcome(i, "failed", message="transform: bad <email>") for i in ids[:failed]],
    )
    snapshots.finish_step(
        store,
        WF,
        run_id,
        "customers",
        "transform",
        status="success",
        count_in=records,
        count_out=records - failed,
        count_failed=failed,
        files=[str(p) for p in transformed],
    )
    snapshots.start_step(store, WF, run_id, 1, "customers", "load")
    bucket.record(
        store,
        WF,
        "customers",
        run_id,
        "load",
        [Outcome(i, "success", destination_id=f"shop-{i}") for i in ids[failed:]],
    )
    snapshots.finish_step(
        store,
        WF,
        run_id,
        "customers",
        "load",
        status="failed" if failed else "success",
        count_in=records - failed,
        count_out=records - failed,
        files=[str(p) for p in transformed],
        message=f"{failed} records failed before the load" if failed else None,
    )
    return SimpleNamespace(extracted=extracted, transformed=transformed)


def test_snapshots_list(user, store, artifact):
    seed_run(store, "manual__1")
    seed_run(store, "manual__2", failed=0)
    snapshots.start_step(store, WF, "manual__3", 1, "customers", "extract")
    doc = html(user.get(f"/ui/snapshots?workflow={WF}"))
    runs_shown = rows(doc, "runs")
    assert [r.attrs["data-run-id"] for r in runs_shown] == ["manual__3", "manual__2", "manual__1"]  # newest first
    assert [r.all("td")[3].text for r in runs_shown] == ["running", "success", "failed"]
    first = runs_shown[2]
    assert first.one("a", href=f"/ui/snapshot?workflow={WF}&run_id=manual__1").text == "manual__1"
    assert first.one("a", data_airflow_link=True).attrs["href"] == f"/dags/{WF}/runs/manual__1"
    assert [td.text for td in first.all("td")][5:8] == ["3", "5", "customers.load: 5 records failed before the load"]
    assert [r.all("td")[7].text for r in runs_shown[:2]] == ["", ""]  # no reason: running, success
    assert re.fullmatch(r"\d+ s", first.all("td")[2].text)  # time taken


def test_snapshots_list_shows_airflows_state_of_a_run(user, store, artifact, airflow_db):
    """A run whose recorded steps all succeeded, while Airflow has later steps still to run, reads running (as in
    `flowlink runs`), and its time taken stays empty; a run Airflow says failed reads failed."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    going, ended = (f"manual__{name}_{uuid.uuid4().hex[:8]}" for name in ("going", "ended"))
    seed_run(store, going, failed=0)
    seed_run(store, ended, failed=0)
    with create_session() as session:
        session.add(DagRun(dag_id=WF, run_id=going, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING))
        session.add(DagRun(dag_id=WF, run_id=ended, run_type=DagRunType.MANUAL, state=DagRunState.FAILED))
    try:
        shown = {
            r.attrs["data-run-id"]: r.all("td") for r in rows(html(user.get(f"/ui/snapshots?workflow={WF}")), "runs")
        }
    finally:  # the session's Airflow database is shared: other tests list the runs of WF
        with create_session() as session:
            session.query(DagRun).filter(DagRun.dag_id == WF, DagRun.run_id.in_([going, ended])).delete()
    assert [shown[going][3].text, shown[going][2].text] == ["running", ""]
    assert shown[ended][3].text == "failed"


def test_snapshot_page(user, store, artifact):
    run_id = "manual__2030-01-01T00:00:00+00:00"
    seed_run(store, run_id)
    r = user.get(f"/ui/snapshot?workflow={WF}&run_id={quote(run_id, safe='')}")
    assert r.status_code == 200
    doc = html(r)
    enc = quote(run_id, safe="")
    assert doc.all("a", data_airflow_link=True)[0].attrs["href"] == f"/dags/{WF}/runs/{enc}"
    steps = rows(doc, "steps")
    assert [s.attrs["data-step"] for s in steps] == ["customers.extract", "customers.transform", "customers.load"]
    assert [td.text for td in steps[1].all("td")][1:5] == ["success", "250", "245", "5"]
    assert steps[2].one("a", data_airflow_link=True).attrs["href"] == f"/dags/{WF}/runs/{enc}/tasks/customers.load"
    assert len(steps[1].all("a", download=True)) == 2
    activity = doc.one("ol", id="activity").all("li")
    assert len(activity) == 3 and "5 records failed before the load" in activity[2].text

    assert pager_text(doc).startswith("1–100 of 250")
    log_rows = rows(doc, "data-log-table")
    assert len(log_rows) == 100
    assert [td.text for td in log_rows[0].all("td")][:6] == [
        "customers.transform",
        "0",
        "",
        "failed",
        "transform: bad <email>",
        "1",
    ]
    doc = html(user.get(f"/ui/snapshot?workflow={WF}&run_id={enc}&step=customers.load&page=3"))
    assert pager_text(doc).startswith("201–245 of 245")
    assert [td.text for td in rows(doc, "data-log-table")[-1].all("td")][:4] == [
        "customers.load",
        "249",
        "shop-249",
        "success",
    ]
    doc = html(user.get(f"/ui/snapshot?workflow={WF}&run_id={enc}&status=failed"))
    assert pager_text(doc).startswith("1–5 of 5")


def test_snapshot_of_an_unknown_run_or_another_dag_is_a_message(user, store):
    r = user.get(f"/ui/snapshot?workflow={WF}&run_id=nothing")
    assert r.status_code == 404 and "no snapshot of run 'nothing'" in html(r).one("p", class_="error-message").text
    r = user.get("/ui/snapshot?workflow=Other-DAG&run_id=manual__1")  # the Snapshot tab shows on every DAG's runs
    assert r.status_code == 404 and "not a Flowlink workflow" in r.text
    assert user.get(f"/ui/snapshot?workflow={WF}").status_code == 422


def _file_url(run_id, touchpoint="customers", step="transform", n=1):
    return f"/ui/snapshot/file?workflow={WF}&run_id={quote(run_id, safe='')}&touchpoint={touchpoint}&step={step}&n={n}"


def test_download_serves_only_listed_batch_files(user, store, home, tmp_path_factory):
    files = seed_run(store, "manual__1")
    doc = html(user.get(f"/ui/snapshot?workflow={WF}&run_id=manual__1"))
    link = doc.one("tr", data_step="customers.transform").all("a", download=True)[1].attrs["href"]
    assert link == _file_url("manual__1", n=2)

    r = user.get(link)
    assert r.status_code == 200
    assert r.content == files.transformed[1].read_bytes()
    assert r.headers["content-type"].startswith("application/xml")
    assert "attachment" in r.headers["content-disposition"] and "batch-00002.xml" in r.headers["content-disposition"]
    assert (
        etree.fromstring(r.content)[0].attrib == {"key": "100"}
        and etree.fromstring(r.content)[0].findtext("customer_id") == "100"
    )

    assert user.get(_file_url("manual__1", n=3)).status_code == 404  # not listed for the step
    assert user.get(_file_url("manual__1", step="load", n=3)).status_code == 404
    assert user.get(_file_url("manual__2")).status_code == 404  # no such run
    assert user.get(_file_url("manual__1", step="other")).status_code == 422
    assert (
        user.get(_file_url("manual__1") + "&file=/etc/passwd").content == files.transformed[0].read_bytes()
    )  # ignored

    # a snapshot listing a file outside the staging folder (or a link out of it) is refused
    outside = tmp_path_factory.mktemp("outside") / "secret.jsonl"
    outside.write_text('{"secret": 1}\n')
    link_out = settings.staging_dir() / WF / "evil.jsonl"
    link_out.symlink_to(outside)
    snapshots.start_step(store, WF, "manual__9", 1, "orders", "extract")
    snapshots.finish_step(
        store,
        WF,
        "manual__9",
        "orders",
        "extract",
        status="success",
        files=[
            str(outside),
            str(link_out),
            str(settings.staging_dir() / WF / ".." / ".." / "flowlink.db"),
            str(settings.staging_dir() / WF / "gone.jsonl"),
        ],
    )
    for n in (1, 2, 3):
        r = user.get(_file_url("manual__9", "orders", "extract", n))
        assert r.status_code == 403 and "secret" not in r.text and "not in the staging folder" in r.text
    r = user.get(_file_url("manual__9", "orders", "extract", 4))
    assert r.status_code == 404 and "is gone" in r.text


# ------------------------------------------------------------------ feeds


def test_feeds_newest_first_filtered_and_paged(user, store, monkeypatch):
    import flowlink.store.feeds as feeds_module

    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    for i in range(150):
        monkeypatch.setattr(feeds_module, "utcnow", lambda i=i: start + dt.timedelta(minutes=i))
        feeds.add(store, "publish" if i % 2 else "schedule", f"event {i}", WF if i % 3 else OTHER)

    doc = html(user.get("/ui/feeds"))
    shown = rows(doc, "feeds")
    assert len(shown) == 100 and pager_text(doc).startswith("1–100 of 150")
    assert [td.text for td in shown[0].all("td")] == ["2030-01-01 02:29:00", "publish", WF, "event 149"]
    doc = html(user.get("/ui/feeds?page=2"))
    assert rows(doc, "feeds")[-1].all("td")[3].text == "event 0"

    doc = html(user.get(f"/ui/feeds?tag=schedule&workflow={OTHER}"))
    shown = [tr.all("td")[3].text for tr in rows(doc, "feeds")]
    assert shown == [f"event {i}" for i in range(149, -1, -1) if i % 2 == 0 and i % 3 == 0]
    assert {o.attrs["value"] for o in doc.one("select", name="tag").all("option")} == {"", "publish", "schedule"}
    assert "No feeds match" in user.get("/ui/feeds?tag=nothing").text
