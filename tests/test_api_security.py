"""Security of every route of the Flowlink app (plugins/api): login, permissions, agent environments, token revocation.

One table (ROUTES) names, for each route of the app, the request the tests send and what it needs (plugins/api/access.py).
`test_the_table_covers_every_route` enumerates app.routes, so a new route without a row fails. Users log in with real
Airflow JWTs (SimpleAuthManager roles viewer, user, op, admin); "outsider" is a user-role login that the auth manager
installed here refuses on the DAG of WF only, as a per-DAG permission of a real auth manager (FAB, Keycloak) would.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from flowlink import cli, deployments, publish, staging
from flowlink.recordxml import RecordWriter
from flowlink.states import DEPLOYMENT_STEPS, DeploymentAction
from flowlink.store import bucket, feeds, snapshots
from flowlink.store.bucket import Outcome
from flowlink.store.tables import agent_tokens
from flowlink_airflow.api.access import ADMIN, ADMIN_READ, DEPLOY, EDIT, READ, READ_RUNS, RUN
from tests.airflow_env import REPO

SPEC = REPO / "examples" / "erp_to_shop.yaml"
WF, OTHER = "erp_to_shop", "crm_to_erp"
RUN_ID = "manual__1"
LOGIN, AGENT, PUBLIC = "login", "agent", "public"


@dataclass(frozen=True)
class Case:
    url: str
    needs: str  # LOGIN (any login), AGENT (an agent token), PUBLIC, or a permission of access.py
    body: object = None
    workflow: str | None = None  # the workflow the permission is about

    @property
    def page(self) -> bool:
        return self.url.startswith("/ui")

    @property
    def changes(self) -> bool:
        return self.needs in (RUN, DEPLOY, EDIT, ADMIN)


FILE = f"/ui/snapshot/file?workflow={WF}&run_id={RUN_ID}&touchpoint=customers&step=extract&n=1"
ROUTES: dict[tuple[str, str], Case] = {
    # the API's documentation, public as Airflow's own /docs and /openapi.json
    ("GET", "/openapi.json"): Case("/openapi.json", PUBLIC),
    ("GET", "/docs"): Case("/docs", PUBLIC),
    ("GET", "/docs/oauth2-redirect"): Case("/docs/oauth2-redirect", PUBLIC),
    ("GET", "/redoc"): Case("/redoc", PUBLIC),
    # agent
    ("POST", "/agent/v1/heartbeat"): Case("/agent/v1/heartbeat", AGENT),
    ("GET", "/agent/v1/deployments"): Case("/agent/v1/deployments", AGENT),
    ("GET", "/agent/v1/deployments/{deployment_id}/file"): Case("/agent/v1/deployments/{deployment}/file", AGENT),
    ("POST", "/agent/v1/deployments/{deployment_id}/steps"): Case(
        "/agent/v1/deployments/{deployment}/steps",
        AGENT,
        {"step": DEPLOYMENT_STEPS[DeploymentAction.DEPLOY][0], "status": "done"},
    ),
    # user API
    ("GET", "/api/v1/environments"): Case("/api/v1/environments", LOGIN),
    ("PATCH", "/api/v1/environments/{name}"): Case("/api/v1/environments/prod", ADMIN, {"pending_timeout": 10}),
    ("GET", "/api/v1/environments/{name}/tokens"): Case("/api/v1/environments/prod/tokens", ADMIN_READ),
    ("POST", "/api/v1/environments/{name}/tokens/{token_id}/revoke"): Case(
        "/api/v1/environments/prod/tokens/{spare}/revoke", ADMIN, {}
    ),
    ("GET", "/api/v1/deployments"): Case("/api/v1/deployments", LOGIN),  # filtered: test_lists_hide_workflows...
    ("POST", "/api/v1/deployments"): Case("/api/v1/deployments", DEPLOY, {"workflow": WF}, WF),
    ("POST", "/api/v1/workflows/{workflow}/undeploy"): Case(f"/api/v1/workflows/{WF}/undeploy", DEPLOY, {}, WF),
    ("GET", "/api/v1/workflows/{workflow}/deployment-log"): Case(
        f"/api/v1/workflows/{WF}/deployment-log", READ, None, WF
    ),
    ("POST", "/api/v1/workflows/{workflow}/run"): Case(f"/api/v1/workflows/{WF}/run", RUN, {}, WF),
    ("POST", "/api/v1/workflows/{workflow}/resync"): Case(
        f"/api/v1/workflows/{WF}/resync", RUN, {"touchpoint": "customers", "failed": True}, WF
    ),
    ("GET", "/api/v1/workflows/{workflow}/runs/{run_id}"): Case(
        f"/api/v1/workflows/{WF}/runs/{RUN_ID}", READ_RUNS, None, WF
    ),
    # the Try page's API: samples of a published version need READ (a draft EDIT: tests/test_try_api.py)
    ("POST", "/api/v1/tries"): Case("/api/v1/tries", READ, {"workflow": WF, "touchpoint": "customers"}, WF),
    ("GET", "/api/v1/tries/{try_id}"): Case("/api/v1/tries/1", LOGIN),  # only its own user's: 404 for the others
    ("POST", "/api/v1/tries/transform"): Case(
        "/api/v1/tries/transform", READ, {"workflow": WF, "touchpoint": "customers", "records": [{"id": 1}]}, WF
    ),
    ("POST", "/api/v1/tries/check"): Case("/api/v1/tries/check", LOGIN, {"draft": f"name: {WF}"}),
    ("POST", "/api/v1/workflows/{workflow}/publish"): Case(
        f"/api/v1/workflows/{WF}/publish", EDIT, {"spec": SPEC.read_text()}, WF
    ),
    # pages
    ("GET", "/ui"): Case("/ui", LOGIN),
    ("GET", "/ui/"): Case("/ui/", LOGIN),
    ("GET", "/ui/environments"): Case("/ui/environments", LOGIN),
    ("GET", "/ui/deployments"): Case("/ui/deployments", LOGIN),
    ("GET", "/ui/bucket"): Case(f"/ui/bucket?workflow={WF}", READ, None, WF),
    ("GET", "/ui/snapshots"): Case(f"/ui/snapshots?workflow={WF}", READ_RUNS, None, WF),
    ("GET", "/ui/snapshot"): Case(f"/ui/snapshot?workflow={WF}&run_id={RUN_ID}", READ_RUNS, None, WF),
    ("GET", "/ui/snapshot/file"): Case(FILE, READ_RUNS, None, WF),
    ("GET", "/ui/feeds"): Case(f"/ui/feeds?workflow={WF}", READ, None, WF),
    ("GET", "/ui/try"): Case(f"/ui/try?workflow={WF}", READ, None, WF),
    ("GET", "/ui/static/{name}"): Case("/ui/static/flowlink.css", LOGIN),
}

# What each SimpleAuthManager role may do (its rules: viewer reads, user also changes DAGs, op also connections).
ROLE_MAY = {
    "viewer": {LOGIN, READ, READ_RUNS},
    "user": {LOGIN, READ, READ_RUNS, RUN, DEPLOY, EDIT},
    "op": {LOGIN, READ, READ_RUNS, RUN, DEPLOY, EDIT, ADMIN_READ, ADMIN},
    "admin": {LOGIN, READ, READ_RUNS, RUN, DEPLOY, EDIT, ADMIN_READ, ADMIN},
}


def app_routes(app) -> set[tuple[str, str]]:
    return {(m, r.path) for r in app.routes for m in (getattr(r, "methods", None) or ()) if m != "HEAD"}


# ------------------------------------------------------------------ set-up


def _outsider_manager():
    """SimpleAuthManager, except that the user "outsider" may do nothing with the DAG of WF."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    class PerDagManager(SimpleAuthManager):
        def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
            if user.get_id() == "outsider" and (details is None or details.id in (None, WF)):
                return False
            return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    return PerDagManager()


@pytest.fixture
def world(home, store, app, auth_manager, airflow_db, monkeypatch):
    """Two environments with agent tokens, WF and OTHER published, WF live with a pending deployment to prod, a bucket,
    a snapshot with a batch file and feeds of both workflows; a client and a JWT per role."""
    from airflow.api_fastapi.app import _AuthManagerState
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = _outsider_manager()
    monkeypatch.setattr(_AuthManagerState, "instance", manager)
    deployments.add_environment(store, "prod", "cloud")
    deployments.add_environment(store, "test", "on-premise")
    tokens = SimpleNamespace(
        prod=deployments.issue_token(store, "prod"),
        test=deployments.issue_token(store, "test"),
        spare=deployments.issue_token(store, "prod"),
    )
    art = publish.publish(SPEC).artifact
    other_spec = home / f"{OTHER}.yaml"
    other_spec.write_text(SPEC.read_text().replace(f"name: {WF}", f"name: {OTHER}"))
    publish.publish(other_spec)
    publish.make_live(art)
    pending = deployments.deploy(store, WF)
    bucket.mark_unprocessed(store, WF, "customers", RUN_ID, ["1", "2"], resync=False)
    bucket.record(store, WF, "customers", RUN_ID, "load", [Outcome("1", "failed", message="secret-wf-reason")])
    batch = staging.run_folder(WF, RUN_ID) / "customers" / "extract" / "batch-00001.xml"
    staging.write_batch(batch, RecordWriter("id").write([{"id": "1", "name": "secret-wf-record"}]).document)
    snapshots.start_step(store, WF, RUN_ID, 1, "customers", "extract")
    snapshots.finish_step(
        store, WF, RUN_ID, "customers", "extract", status="success", count_in=1, count_out=1, files=[str(batch)]
    )
    feeds.add(store, "publish", "secret-wf-feed", WF)
    feeds.add(store, "publish", "visible-other-feed", OTHER)
    spare_id = deployments.tokens(store, "prod")[-1]["id"]
    jwt = {role: manager.generate_jwt(SimpleAuthManagerUser(username=role, role=role)) for role in ROLE_MAY}
    jwt["outsider"] = manager.generate_jwt(SimpleAuthManagerUser(username="outsider", role="user"))
    return SimpleNamespace(
        store=store,
        app=app,
        client=TestClient(app, follow_redirects=False),
        tokens=tokens,
        pending=pending,
        spare_id=spare_id,
        jwt=jwt,
        artifact=art,
    )


def url_of(case: Case, world) -> str:
    return case.url.format(deployment=world.pending["id"], spare=world.spare_id)


def send(world, case: Case, headers: dict | None = None):
    method = next(m for (m, _), c in ROUTES.items() if c is case)
    return world.client.request(method, url_of(case, world), json=case.body, headers=headers or {})


def as_role(world, role: str) -> dict:
    return {"Authorization": f"Bearer {world.jwt[role]}"}


def untouched(world) -> None:
    """Nothing changed: prod as created, every token active, the one deployment pending, no step reported."""
    env = deployments.environment(world.store, "prod")
    assert env["pending_timeout"] == 5 and env["enabled"] and env["is_primary"]
    assert all(t["active"] for e in ("prod", "test") for t in deployments.tokens(world.store, e))
    assert [d["status"] for d in deployments.listing(world.store)] == ["pending"]
    assert deployments.progress(world.store, world.pending["id"])["done"] == []


# ------------------------------------------------------------------ the table


def test_the_table_covers_every_route(app):
    """Every route of the app (app.routes) has its row in the table, and no row names a route that does not exist."""
    assert app_routes(app) == set(ROUTES)


# ------------------------------------------------------------------ anonymous


@pytest.mark.reliability("Security", "Anonymous requests")
def test_anonymous_requests_are_refused_on_every_route(world, observe):
    """Every route of the app is called without credentials, then with an agent token on the user routes and an
    Airflow login on the agent routes (neither counts for the other): agent routes answer 401, user API routes 401,
    pages redirect to Airflow's login coming back to the page; nothing changes and no data is in the answer."""
    statuses = {}
    for (_method, path), case in ROUTES.items():
        if case.needs == PUBLIC:
            assert send(world, case).status_code == 200
            continue
        for headers in ({}, as_role(world, "admin") if case.needs == AGENT else {"X-Agent-Token": world.tokens.prod}):
            r = send(world, case, headers)
            statuses.setdefault(r.status_code, set()).add(path)
            if case.page:
                assert r.status_code == 302, (path, r.status_code)
                target = urlsplit(r.headers["location"])
                assert target.path == "/api/v2/auth/login" and "next=" in target.query
            else:
                assert r.status_code == 401, (path, r.status_code, r.text)
                detail = r.json()["detail"]
                assert detail == ("missing X-Agent-Token header" if case.needs == AGENT else "Not authenticated")
            assert "secret-wf" not in r.text and world.artifact.sha256 not in r.text
    untouched(world)
    pages = sum(c.page for c in ROUTES.values())
    api = sum(c.needs not in (PUBLIC,) and not c.page for c in ROUTES.values())
    public = sum(c.needs == PUBLIC for c in ROUTES.values())
    observe(
        f"{len(ROUTES)} routes (all of app.routes): {api} API routes x (no credentials, the other kind) all 401, "
        f"{pages} pages all 302 to Airflow's login; {public} documentation routes public; nothing changed"
    )


# ------------------------------------------------------------------ wrong user


@pytest.mark.reliability("Security", "Wrong user")
def test_each_role_gets_exactly_its_permissions_on_every_route(world, observe):
    """Every user route and page is called as each SimpleAuthManager role (viewer, user, op, admin) with a real Airflow
    JWT, and as "outsider" (role user, refused by the auth manager on the DAG of WF): a route is 403 exactly when the
    role lacks the permission the table names (a viewer on every state-changing route, a user on environments and
    tokens, the outsider on everything about WF), with a detail naming the permission, and nothing changes; otherwise
    it passes authorization (whatever the deployment rules then say)."""
    refused = allowed = 0
    for role in ["viewer", "user", "outsider", "op", "admin"]:
        may = ROLE_MAY["user" if role == "outsider" else role]
        for (_method, path), case in ROUTES.items():
            if case.needs in (PUBLIC, AGENT):
                continue
            r = send(world, case, as_role(world, role))
            forbidden = case.needs not in may or (role == "outsider" and case.workflow == WF)
            if forbidden:
                refused += 1
                assert r.status_code == 403, (role, path, r.status_code, r.text)
                assert "secret-wf" not in r.text
                if case.page:
                    assert r.headers["content-type"].startswith("text/html") and "Not allowed" in r.text
                else:
                    assert r.json()["detail"].startswith("you may not ") and "needs " in r.json()["detail"]
                untouched(world)
            else:
                allowed += 1
                assert r.status_code not in (401, 403), (role, path, r.status_code, r.text)
    viewer_changes = sum(c.changes for c in ROUTES.values())
    observe(
        f"5 logins x {sum(c.needs not in (PUBLIC, AGENT) for c in ROUTES.values())} user routes and pages: "
        f"{refused} refused with 403 (viewer on all {viewer_changes} state-changing routes, user on environments "
        f"and tokens, outsider on every route about {WF}), {allowed} allowed; nothing changed by a refused call"
    )


@pytest.mark.reliability("Security", "Wrong user: lists and pages hide workflows")
def test_lists_hide_workflows_the_user_may_not_read(world, observe):
    """The outsider (no access to the DAG of WF) reads the deployments list, the Deployments, Resync bucket,
    Snapshots and Feeds pages without naming a workflow: WF and its data appear nowhere, OTHER does; a viewer sees both
    but every deploy, resync and environment button is disabled with the permission as the reason."""
    outsider = as_role(world, "outsider")
    listed = world.client.get("/api/v1/deployments", headers=outsider)
    assert listed.status_code == 200 and listed.json() == []  # WF is the only deployed workflow
    admin_list = world.client.get("/api/v1/deployments", headers=as_role(world, "admin")).json()
    assert [d["workflow"] for d in admin_list] == [WF]
    pages = ["/ui/deployments", "/ui/bucket", "/ui/snapshots", "/ui/feeds"]
    for url in pages:
        r = world.client.get(url, headers=outsider)
        assert r.status_code == 200, (url, r.text)
        assert WF not in r.text and "secret-wf" not in r.text, url
        assert OTHER in r.text, url
    feeds_page = world.client.get("/ui/feeds", headers=outsider).text
    assert "visible-other-feed" in feeds_page and "environment prod" in feeds_page  # entries of no workflow stay

    viewer = as_role(world, "viewer")
    deployments_page = world.client.get("/ui/deployments", headers=viewer).text
    assert WF in deployments_page and OTHER in deployments_page
    assert deployments_page.count("you may not deploy or undeploy") >= 3  # WF's deploy + undeploy, OTHER's deploy
    bucket_page = world.client.get(f"/ui/bucket?workflow={WF}&touchpoint=customers", headers=viewer).text
    assert f"you may not run or resync {WF}" in bucket_page
    environments_page = world.client.get("/ui/environments", headers=viewer).text
    assert "you may not change environments" in environments_page
    observe(
        f"outsider: GET /api/v1/deployments -> [] (admin sees [{WF}]); {len(pages)} pages show {OTHER} and not "
        f"{WF}; viewer: deploy, resync and environment controls disabled with the permission as the reason"
    )


# ------------------------------------------------------------------ wrong environment


@pytest.mark.reliability("Security", "Wrong environment")
def test_a_token_of_another_environment_gets_nothing_of_this_one(world, observe):
    """The agent token of environment test calls every agent route about prod's pending deployment: the file and the
    step report are 404 without prod's data, its pending list is empty, its heartbeat marks only test; an admin
    revoking a prod token through test's path is 404. Then prod's own token gets the deployment."""
    other = {"X-Agent-Token": world.tokens.test}
    deployment = world.pending["id"]
    calls = 0
    for (_method, path), case in ROUTES.items():
        if case.needs != AGENT:
            continue
        r = send(world, case, other)
        calls += 1
        assert r.status_code in (200, 404), (path, r.status_code)
        assert world.artifact.sha256 not in r.text and WF not in r.text, path
        if "{deployment_id}" in path:
            assert r.status_code == 404 and r.json() == {"detail": f"no deployment {deployment} for environment test"}
    assert world.client.get("/agent/v1/deployments", headers=other).json() == {"deployments": []}
    assert deployments.environment(world.store, "prod")["last_heartbeat"] is None
    assert deployments.environment(world.store, "test")["last_heartbeat"] is not None
    untouched(world)
    prod_token_id = deployments.tokens(world.store, "prod")[0]["id"]
    r = world.client.post(
        f"/api/v1/environments/test/tokens/{prod_token_id}/revoke", json={}, headers=as_role(world, "admin")
    )
    assert r.status_code == 404
    untouched(world)
    own = world.client.get(f"/agent/v1/deployments/{deployment}/file", headers={"X-Agent-Token": world.tokens.prod})
    assert own.status_code == 200 and own.headers["x-flowlink-sha256"] == world.artifact.sha256
    observe(
        f"{calls} agent routes with test's token on prod's deployment {deployment}: file and steps 404, "
        f"pending list empty, no byte of prod's data; revoking a prod token via /environments/test: 404"
    )


# ------------------------------------------------------------------ revocation


@pytest.mark.reliability("Security", "Revoked token")
def test_a_revoked_token_is_refused_at_once(world, observe, capsys):
    """Three agent tokens of prod are revoked while one app serves them: one through the admin API
    (POST .../tokens/{id}/revoke), one with `flowlink env token prod --revoke FINGERPRINT`, one directly in the store;
    each was accepted just before and is refused (403) on every agent route by the very next request, while
    the other environment's token keeps working. A viewer cannot revoke (403); listing the tokens never shows one."""
    heartbeat = "/agent/v1/heartbeat"
    admin = as_role(world, "admin")
    third = deployments.issue_token(world.store, "prod")
    refused_calls = 0

    def refused_everywhere(token: str) -> None:
        nonlocal refused_calls
        for (_method, path), case in ROUTES.items():
            if case.needs == AGENT:
                r = send(world, case, {"X-Agent-Token": token})
                assert r.status_code == 403 and r.json() == {"detail": "unknown or revoked agent token"}, path
                refused_calls += 1

    # 1. the API
    assert world.client.post(heartbeat, headers={"X-Agent-Token": world.tokens.prod}).status_code == 200
    first_id = deployments.tokens(world.store, "prod")[0]["id"]
    r = world.client.post(
        f"/api/v1/environments/prod/tokens/{first_id}/revoke", json={}, headers=as_role(world, "viewer")
    )
    assert r.status_code == 403
    assert world.client.post(heartbeat, headers={"X-Agent-Token": world.tokens.prod}).status_code == 200
    r = world.client.post(f"/api/v1/environments/prod/tokens/{first_id}/revoke", json={}, headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["revoked_at"]
    refused_everywhere(world.tokens.prod)
    again = world.client.post(f"/api/v1/environments/prod/tokens/{first_id}/revoke", json={}, headers=admin)
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]  # harmless

    # 2. the CLI, by fingerprint
    assert world.client.post(heartbeat, headers={"X-Agent-Token": world.tokens.spare}).status_code == 200
    fingerprint = hashlib.sha256(world.tokens.spare.encode()).hexdigest()[:10]
    assert cli.main(["env", "token", "prod", "--revoke", fingerprint]) == 0
    assert "revoked" in capsys.readouterr().out
    refused_everywhere(world.tokens.spare)

    # 3. the store itself
    assert world.client.post(heartbeat, headers={"X-Agent-Token": third}).status_code == 200
    with world.store.engine.begin() as conn:
        conn.execute(
            agent_tokens.update()
            .where(agent_tokens.c.token_hash == hashlib.sha256(third.encode()).hexdigest())
            .values(revoked_at=deployments.utcnow())
        )
    refused_everywhere(third)

    assert world.client.post(heartbeat, headers={"X-Agent-Token": world.tokens.test}).status_code == 200
    listed = world.client.get("/api/v1/environments/prod/tokens", headers=admin)
    assert listed.status_code == 200 and [t["active"] for t in listed.json()] == [False, False, False]
    assert not any(tok in listed.text for tok in (world.tokens.prod, world.tokens.spare, third))
    observe(
        f"3 tokens revoked (API, CLI by fingerprint, store): each accepted just before, then {refused_calls} agent "
        f"calls all 403 on the next request; the other environment's token still 200; a viewer's revoke 403"
    )


# ------------------------------------------------------------------ hashed


@pytest.mark.reliability("Security", "Tokens stored hashed")
def test_tokens_are_stored_only_as_hashes(world, observe, capsys):
    """Agent tokens are issued (store function and CLI) and listed (API and CLI): the store keeps only their sha256
    (no token in any column, nor anywhere in the SQLite file), each token carries 256 random bits, and no listing or
    feed shows a token or its full hash."""
    assert cli.main(["env", "token", "test"]) == 0
    issued = capsys.readouterr().out.strip()
    tokens = [world.tokens.prod, world.tokens.test, world.tokens.spare, issued]
    assert len(set(tokens)) == 4 and all(t.startswith("flk_") and len(t) == 4 + 43 for t in tokens)  # 32 random bytes
    with world.store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(agent_tokens))]
    hashes = {r["token_hash"] for r in rows}
    assert hashes == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    stored = json.dumps(rows, default=str)
    assert not any(t in stored or t[4:] in stored for t in tokens)
    db_bytes = (world.store.engine.url.database and open(world.store.engine.url.database, "rb").read()) or b""
    assert db_bytes and not any(t.encode() in db_bytes for t in tokens)
    listed = world.client.get("/api/v1/environments/prod/tokens", headers=as_role(world, "admin")).text
    assert cli.main(["env", "token", "test", "--list", "--json"]) == 0
    cli_listed = capsys.readouterr().out
    feed_text = json.dumps(feeds.entries(world.store, limit=1000), default=str)
    for text in (listed, cli_listed, feed_text):
        assert not any(t in text for t in tokens) and not any(h in text for h in hashes)
    assert json.loads(cli_listed)[0]["fingerprint"] in {h[:12] for h in hashes}
    observe(
        f"{len(tokens)} tokens of 256 random bits: the store holds {len(hashes)} sha256 hashes and no token "
        f"(columns and the {len(db_bytes):,}-byte SQLite file); API, CLI listings and feeds show 12-digit "
        f"fingerprints only"
    )
