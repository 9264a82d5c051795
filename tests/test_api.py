"""The Flowlink REST API (plugins/api): agent endpoints, user endpoints, error mapping, auth, OpenAPI.

The store is a SQLite file in a per-test FLOWLINK_HOME. Deployments are created with flowlink.deployments
directly (no Airflow run); the endpoints that start Airflow runs are tested on their refusals, which come
before Airflow is touched.
"""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

import flowlink_airflow.api.app as api_app
from flowlink import deployments, publish
from flowlink.states import DEPLOYMENT_STEPS, DeploymentAction
from flowlink.store import Store
from flowlink.store.db import utcnow
from flowlink.store.tables import agent_tokens
from flowlink.store.tables import deployments as deployments_table
from flowlink_airflow.api import create_app
from tests.airflow_env import REPO

SPEC = REPO / "examples" / "erp_to_shop.yaml"
WF = "erp_to_shop"
DEPLOY_STEPS = [s.value for s in DEPLOYMENT_STEPS[DeploymentAction.DEPLOY]]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(app):
    return TestClient(app)  # a server error raises in the test: no 500 goes unnoticed


@pytest.fixture
def artifact(home):
    return publish.publish(SPEC).artifact


@pytest.fixture
def envs(store):
    """Two environments: prod (primary) and test, each with an agent token."""
    deployments.add_environment(store, "prod", "cloud")
    deployments.add_environment(store, "test", "on-premise")
    return SimpleNamespace(prod=deployments.issue_token(store, "prod"), test=deployments.issue_token(store, "test"))


@pytest.fixture
def pending(store, envs, artifact):
    """A pending deployment of the published workflow to prod."""
    return deployments.deploy(store, WF, None)


def agent(token):
    return {"X-Agent-Token": token}


def step(client, token, deployment_id, name, status="done", message=None):
    return client.post(
        f"/agent/v1/deployments/{deployment_id}/steps",
        headers=agent(token),
        json={"step": name, "status": status, "message": message},
    )


def set_wait_till(store, deployment_id, when):
    with store.engine.begin() as conn:
        conn.execute(deployments_table.update().where(deployments_table.c.id == deployment_id).values(wait_till=when))


# ------------------------------------------------------------------ app, OpenAPI, store

ROUTES = {
    ("POST", "/agent/v1/heartbeat"),
    ("GET", "/agent/v1/deployments"),
    ("GET", "/agent/v1/deployments/{deployment_id}/file"),
    ("POST", "/agent/v1/deployments/{deployment_id}/steps"),
    ("GET", "/api/v1/environments"),
    ("PATCH", "/api/v1/environments/{name}"),
    ("GET", "/api/v1/deployments"),
    ("POST", "/api/v1/deployments"),
    ("POST", "/api/v1/workflows/{workflow}/undeploy"),
    ("GET", "/api/v1/workflows/{workflow}/deployment-log"),
    ("POST", "/api/v1/workflows/{workflow}/run"),
    ("POST", "/api/v1/workflows/{workflow}/resync"),
    ("GET", "/api/v1/workflows/{workflow}/runs/{run_id}"),
    ("GET", "/api/v1/environments/{name}/tokens"),
    ("POST", "/api/v1/environments/{name}/tokens/{token_id}/revoke"),
    ("POST", "/api/v1/tries"),
    ("GET", "/api/v1/tries/{try_id}"),
    ("POST", "/api/v1/tries/transform"),
    ("POST", "/api/v1/tries/check"),
    ("POST", "/api/v1/workflows/{workflow}/publish"),
}


def test_openapi_lists_every_endpoint_with_tag_and_summary(client):
    doc = client.get("/openapi.json").json()
    found = {(m.upper(), p): op for p, ops in doc["paths"].items() for m, op in ops.items()}
    assert set(found) == ROUTES
    for (_method, path), op in found.items():
        assert op["tags"] == (["agent"] if path.startswith("/agent/") else ["user"]), path
        assert op["summary"], path
    assert "AgentToken" in doc["components"]["securitySchemes"]


def test_plugin_mounts_the_app_at_flowlink():
    from flowlink_airflow.plugin import FlowlinkPlugin

    (entry,) = FlowlinkPlugin.fastapi_apps
    assert entry["url_prefix"] == "/flowlink" and entry["name"] == "Flowlink"
    assert {r.path for r in entry["app"].app.routes} >= {p for _, p in ROUTES}


def test_store_is_opened_once_per_app(home, envs, monkeypatch):
    opened = []
    real_open = Store.open

    def counting_open(*args, **kwargs):
        opened.append(1)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(api_app.Store, "open", counting_open)
    app = create_app()
    assert opened == []  # lazily: creating the app touches no database
    client = TestClient(app)
    for _ in range(3):
        assert client.post("/agent/v1/heartbeat", headers=agent(envs.prod)).status_code == 200
    assert len(opened) == 1


# ------------------------------------------------------------------ agent: authentication and scope

AGENT_CALLS = [
    ("POST", "/agent/v1/heartbeat", None),
    ("GET", "/agent/v1/deployments", None),
    ("GET", "/agent/v1/deployments/1/file", None),
    ("POST", "/agent/v1/deployments/1/steps", {"step": DEPLOY_STEPS[0], "status": "done"}),
]


@pytest.mark.parametrize(("method", "url", "body"), AGENT_CALLS)
def test_agent_without_token_is_401(client, pending, method, url, body):
    r = client.request(method, url, json=body)
    assert r.status_code == 401
    assert r.json() == {"detail": "missing X-Agent-Token header"}


@pytest.mark.parametrize(("method", "url", "body"), AGENT_CALLS)
def test_agent_with_wrong_token_is_403(client, pending, method, url, body):
    r = client.request(method, url, json=body, headers=agent("flk_not-a-token"))
    assert r.status_code == 403
    assert r.json() == {"detail": "unknown or revoked agent token"}


def test_revoked_token_is_403(client, store, envs):
    assert client.post("/agent/v1/heartbeat", headers=agent(envs.prod)).status_code == 200
    with store.engine.begin() as conn:
        conn.execute(agent_tokens.update().where(agent_tokens.c.environment == "prod").values(revoked_at=utcnow()))
    assert client.post("/agent/v1/heartbeat", headers=agent(envs.prod)).status_code == 403


def test_another_environments_deployment_is_404(client, store, envs, pending):
    r = client.get(f"/agent/v1/deployments/{pending['id']}/file", headers=agent(envs.test))
    assert r.status_code == 404 and "for environment test" in r.json()["detail"]
    r = step(client, envs.test, pending["id"], DEPLOY_STEPS[0])
    assert r.status_code == 404
    assert client.get("/agent/v1/deployments", headers=agent(envs.test)).json() == {"deployments": []}
    assert deployments.progress(store, pending["id"])["done"] == []  # nothing was recorded


def test_unknown_deployment_is_404(client, envs):
    assert client.get("/agent/v1/deployments/999/file", headers=agent(envs.prod)).status_code == 404
    r = step(client, envs.prod, 999, DEPLOY_STEPS[0])
    assert r.status_code == 404 and r.json() == {"detail": "no deployment 999"}


# ------------------------------------------------------------------ agent: behaviour


def test_heartbeat_updates_last_heartbeat(client, store, envs):
    assert deployments.environment(store, "prod")["last_heartbeat"] is None
    before = utcnow()
    r = client.post("/agent/v1/heartbeat", headers=agent(envs.prod))
    assert r.status_code == 200
    body = r.json()
    assert body["environment"] == "prod"
    server_time = dt.datetime.fromisoformat(body["server_time"])
    assert server_time.tzinfo is not None and server_time >= before
    env = deployments.environment(store, "prod")
    assert env["last_heartbeat"] >= before and env["agent"] == "connected"
    assert deployments.environment(store, "test")["last_heartbeat"] is None


def test_pending_deployments_are_listed(client, envs, pending, artifact):
    r = client.get("/agent/v1/deployments", headers=agent(envs.prod))
    assert r.status_code == 200
    (d,) = r.json()["deployments"]
    assert d["id"] == pending["id"] and d["workflow"] == WF and d["action"] == "deploy"
    assert d["version"] == artifact.version and d["sha256"] == artifact.sha256
    assert d["done"] == [] and d["remaining"] == DEPLOY_STEPS
    assert dt.datetime.fromisoformat(d["wait_till"]) == pending["wait_till"]  # an ISO string


def test_file_download_is_the_published_file(client, envs, pending, artifact):
    r = client.get(f"/agent/v1/deployments/{pending['id']}/file", headers=agent(envs.prod))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == artifact.path.read_bytes()
    assert r.headers["x-flowlink-sha256"] == artifact.sha256
    assert json.loads(r.content)["workflow"] == WF


def test_steps_in_order_advance_done(client, store, envs, pending):
    for i, name in enumerate(DEPLOY_STEPS):
        r = step(client, envs.prod, pending["id"], name)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == ("successful" if name == DEPLOY_STEPS[-1] else "pending")  # the last step ends it
        assert body["done"] == DEPLOY_STEPS[: i + 1] and body["remaining"] == DEPLOY_STEPS[i + 1 :]
    again = step(client, envs.prod, pending["id"], DEPLOY_STEPS[0])  # reporting twice is harmless
    assert again.status_code == 200 and again.json()["done"] == DEPLOY_STEPS
    assert client.get("/agent/v1/deployments", headers=agent(envs.prod)).json()["deployments"] == []


def test_step_out_of_order_is_400(client, store, envs, pending):
    r = step(client, envs.prod, pending["id"], DEPLOY_STEPS[2])
    assert r.status_code == 400
    assert r.json() == {"detail": f"step {DEPLOY_STEPS[2]!r} out of order: next is {DEPLOY_STEPS[0]!r}"}
    r = step(client, envs.prod, pending["id"], "reticulating splines")
    assert r.status_code == 400 and r.json()["detail"].startswith("unknown step")
    assert deployments.get(store, pending["id"])["status"] == "pending"


def test_failed_step_ends_the_deployment_and_later_steps_are_409(client, store, envs, pending):
    assert step(client, envs.prod, pending["id"], DEPLOY_STEPS[0]).status_code == 200
    r = step(client, envs.prod, pending["id"], DEPLOY_STEPS[1], "failed", "disk full")
    assert r.status_code == 200
    assert r.json()["status"] == "unsuccessful" and "disk full" in r.json()["message"]
    r = step(client, envs.prod, pending["id"], DEPLOY_STEPS[1])
    assert r.status_code == 409 and "no longer pending" in r.json()["detail"]
    assert r.json()["status"] == "unsuccessful"  # the fact the agent decides on: roll back
    r = client.get(f"/agent/v1/deployments/{pending['id']}/file", headers=agent(envs.prod))
    assert r.status_code == 409 and r.json()["status"] == "unsuccessful"
    assert client.get("/agent/v1/deployments", headers=agent(envs.prod)).json() == {"deployments": []}


def test_a_report_after_success_is_409_saying_successful(client, store, envs, pending):
    for name in DEPLOY_STEPS:
        assert step(client, envs.prod, pending["id"], name).status_code == 200
    r = step(client, envs.prod, pending["id"], DEPLOY_STEPS[-1], "failed", "the agent lost track")
    assert r.status_code == 409 and r.json()["status"] == "successful"  # the agent keeps what it installed


def test_step_after_wait_till_is_409_and_unsuccessful(client, store, envs, pending):
    assert step(client, envs.prod, pending["id"], DEPLOY_STEPS[0]).status_code == 200
    set_wait_till(store, pending["id"], utcnow() - dt.timedelta(minutes=1))
    r = step(client, envs.prod, pending["id"], DEPLOY_STEPS[1])
    assert r.status_code == 409
    assert "unsuccessful" in r.json()["detail"] and "wait till" in r.json()["detail"]
    d = deployments.get(store, pending["id"])
    assert d["status"] == "unsuccessful" and DEPLOY_STEPS[1] in d["message"]


def test_file_after_wait_till_is_409(client, store, envs, pending):
    set_wait_till(store, pending["id"], utcnow() - dt.timedelta(seconds=1))
    r = client.get(f"/agent/v1/deployments/{pending['id']}/file", headers=agent(envs.prod))
    assert r.status_code == 409 and "no longer pending" in r.json()["detail"] and r.json()["status"] == "unsuccessful"
    assert deployments.get(store, pending["id"])["status"] == "unsuccessful"


@pytest.mark.parametrize(
    "body",
    [
        {"step": DEPLOY_STEPS[0], "status": "maybe"},
        {"step": DEPLOY_STEPS[0]},
        {"step": "", "status": "done"},
        {"step": ["a"], "status": "done"},
        {"step": DEPLOY_STEPS[0], "status": "done", "extra": 1},
        {"step": DEPLOY_STEPS[0], "status": "done", "message": "x" * 5000},
        [],
        "done",
    ],
)
def test_bad_step_bodies_are_422(client, store, envs, pending, body):
    r = client.post(f"/agent/v1/deployments/{pending['id']}/steps", headers=agent(envs.prod), json=body)
    assert r.status_code == 422 and "detail" in r.json()
    assert deployments.progress(store, pending["id"])["done"] == []


@pytest.mark.parametrize("deployment_id", ["abc", "1.5", "0", "-1", str(2**63), "99999999999999999999999"])
def test_bad_deployment_ids_are_422(client, envs, pending, deployment_id):
    r = client.get(f"/agent/v1/deployments/{deployment_id}/file", headers=agent(envs.prod))
    assert r.status_code == 422
    r = step(client, envs.prod, deployment_id, DEPLOY_STEPS[0])
    assert r.status_code == 422


def test_malformed_json_is_422(client, envs, pending):
    r = client.post(
        f"/agent/v1/deployments/{pending['id']}/steps", headers={**agent(envs.prod), **JSON}, content=b"{not json"
    )
    assert r.status_code == 422


# ------------------------------------------------------------------ user: authentication

USER_CALLS = [
    ("GET", "/api/v1/environments", None),
    ("PATCH", "/api/v1/environments/prod", {"enabled": False}),
    ("GET", "/api/v1/deployments", None),
    ("POST", "/api/v1/deployments", {"workflow": WF, "version": None}),
    ("POST", f"/api/v1/workflows/{WF}/undeploy", {}),
    ("GET", f"/api/v1/workflows/{WF}/deployment-log", None),
    ("POST", f"/api/v1/workflows/{WF}/run", {}),
    ("POST", f"/api/v1/workflows/{WF}/resync", {"touchpoint": "customers", "failed": True}),
    ("GET", f"/api/v1/workflows/{WF}/runs/manual__1", None),
    ("GET", "/api/v1/environments/prod/tokens", None),
    ("POST", "/api/v1/environments/prod/tokens/1/revoke", {}),
    ("POST", "/api/v1/tries", {"workflow": WF, "touchpoint": "customers"}),
    ("GET", "/api/v1/tries/1", None),
    ("POST", "/api/v1/tries/transform", {"workflow": WF, "touchpoint": "customers", "records": [{"id": 1}]}),
    ("POST", "/api/v1/tries/check", {"draft": f"name: {WF}"}),
    ("POST", f"/api/v1/workflows/{WF}/publish", {"spec": SPEC.read_text()}),
]


def test_user_calls_cover_every_user_route():
    assert {(m, p) for m, p in ROUTES if p.startswith("/api/")} == {
        (
            m,
            u.replace("/prod", "/{name}")
            .replace(f"/{WF}/", "/{workflow}/")
            .replace("/manual__1", "/{run_id}")
            .replace("/tokens/1/", "/tokens/{token_id}/")
            .replace("/tries/1", "/tries/{try_id}"),
        )
        for m, u, _ in USER_CALLS
    }


@pytest.mark.parametrize(("method", "url", "body"), USER_CALLS)
def test_user_endpoint_anonymous_is_401(client, store, envs, method, url, body):
    r = client.request(method, url, json=body)
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}
    assert deployments.environment(store, "prod")["enabled"] is True  # nothing changed


@pytest.mark.parametrize(("method", "url", "body"), USER_CALLS)
def test_user_endpoint_garbage_bearer_is_403(client, auth_manager, store, envs, method, url, body):
    r = client.request(method, url, json=body, headers={"Authorization": "Bearer garbage.not.ajwt"})
    assert r.status_code == 403
    assert r.json() == {"detail": "Invalid JWT token"}
    client.cookies.set("_token", "garbage")  # the UI's cookie: same rule
    r = client.request(method, url, json=body)
    assert r.status_code == 403
    assert deployments.environment(store, "prod")["enabled"] is True


def test_user_endpoint_accepts_an_airflow_jwt(client, auth_manager, airflow_db, envs):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = auth_manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    r = client.get("/api/v1/environments", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert [e["name"] for e in r.json()] == ["prod", "test"]


# ------------------------------------------------------------------ user: JSON only (CSRF)


@pytest.mark.parametrize(("method", "url", "body"), [c for c in USER_CALLS if c[0] != "GET"])
@pytest.mark.parametrize(
    "content_type", [None, "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]
)
def test_state_changing_user_endpoints_need_json(user, store, envs, method, url, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    r = user.request(method, url, content=json.dumps(body).encode(), headers=headers)
    assert r.status_code == 415
    assert "application/json" in r.json()["detail"]
    assert deployments.environment(store, "prod")["enabled"] is True


def test_json_with_charset_is_accepted(user, store, envs):
    r = user.patch(
        "/api/v1/environments/prod",
        content=b'{"enabled": false}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200 and r.json()["enabled"] is False


# ------------------------------------------------------------------ user: environments


def test_environments_list(user, store, envs):
    client_beat = TestClient(user.app)
    client_beat.post("/agent/v1/heartbeat", headers=agent(envs.test))
    r = user.get("/api/v1/environments")
    assert r.status_code == 200
    got = {e["name"]: e for e in r.json()}
    assert got["prod"]["is_primary"] is True and got["test"]["is_primary"] is False
    assert got["prod"]["agent"] == "disconnected" and got["test"]["agent"] == "connected"
    assert got["prod"]["last_heartbeat"] is None and dt.datetime.fromisoformat(got["test"]["last_heartbeat"])


def test_patch_environment(user, store, envs):
    r = user.patch("/api/v1/environments/test", json={"primary": True, "pending_timeout": 30})
    assert r.status_code == 200
    assert r.json()["is_primary"] is True and r.json()["pending_timeout"] == 30
    assert deployments.primary(store)["name"] == "test"
    r = user.patch("/api/v1/environments/prod", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["is_primary"] is False


@pytest.mark.parametrize(
    ("url", "body", "status", "detail"),
    [
        ("/api/v1/environments/prod", {"pending_timeout": 61}, 400, "pending timeout must be 5 to 60 minutes, got 61"),
        ("/api/v1/environments/nowhere", {"enabled": False}, 404, "no environment 'nowhere' (flowlink env list)"),
        ("/api/v1/environments/prod", {"primary": False}, 422, None),
        ("/api/v1/environments/prod", {"pending_timeout": "10"}, 422, None),
        ("/api/v1/environments/prod", {"pending_timeout": 10.5}, 422, None),
        ("/api/v1/environments/prod", {"enabled": "no"}, 422, None),
        ("/api/v1/environments/prod", {"colour": "red"}, 422, None),
        ("/api/v1/environments/Bad-Name", {"enabled": False}, 422, None),
    ],
)
def test_patch_environment_refusals(user, store, envs, url, body, status, detail):
    r = user.patch(url, json=body)
    assert r.status_code == status
    if detail:
        assert r.json() == {"detail": detail}
    env = deployments.environment(store, "prod")
    assert env["enabled"] is True and env["pending_timeout"] == 5 and env["is_primary"] is True


# ------------------------------------------------------------------ user: deployments


def test_listing(user, store, envs, pending):
    r = user.get("/api/v1/deployments")
    assert r.status_code == 200
    (d,) = r.json()
    assert d["id"] == pending["id"] and d["status"] == "pending" and d["environment"] == "prod"
    assert user.get("/api/v1/deployments", params={"environment": "prod"}).json() == r.json()
    assert user.get("/api/v1/deployments", params={"environment": "test"}).json() == []
    r = user.get("/api/v1/deployments", params={"environment": "nowhere"})
    assert r.status_code == 404 and r.json() == {"detail": "no environment 'nowhere' (flowlink env list)"}


def test_deployment_log(user, store, envs, pending):
    client = TestClient(user.app)
    step(client, envs.prod, pending["id"], DEPLOY_STEPS[0], message="fetched")
    r = user.get(f"/api/v1/workflows/{WF}/deployment-log")
    assert r.status_code == 200
    body = r.json()
    assert body["deployment"]["id"] == pending["id"]
    assert [(s["step"], s["status"]) for s in body["steps"]] == [("deploy started", "info"), (DEPLOY_STEPS[0], "done")]
    assert body["steps"][1]["message"] == "fetched"
    r = user.get("/api/v1/workflows/never_deployed/deployment-log")
    assert r.status_code == 404 and r.json() == {"detail": "never_deployed has never been deployed"}


def test_deploy_without_primary_environment_is_409(user, store, artifact):
    r = user.post("/api/v1/deployments", json={"workflow": WF, "version": None})
    assert r.status_code == 409
    assert r.json()["detail"].startswith("there is no primary environment")


def test_deploy_of_unpublished_workflow_or_version_is_400(user, store, envs, artifact):
    r = user.post("/api/v1/deployments", json={"workflow": "nothing_here"})
    assert r.status_code == 400 and "has not been published" in r.json()["detail"]
    r = user.post("/api/v1/deployments", json={"workflow": WF, "version": 7})
    assert r.status_code == 400 and r.json()["detail"] == f"workflow {WF!r} has no published version 7"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"workflow": "Bad Name"},
        {"workflow": WF, "version": "1"},
        {"workflow": WF, "version": 0},
        {"workflow": WF, "version": 2**40},
        {"workflow": WF, "force": True},
        {"workflow": "x" * 64},
    ],
)
def test_deploy_bad_bodies_are_422(user, store, envs, artifact, body):
    r = user.post("/api/v1/deployments", json=body)
    assert r.status_code == 422
    assert deployments.listing(store) == []


@pytest.mark.parametrize(
    ("method", "url", "body", "what"),
    [
        ("POST", "/api/v1/deployments", {"workflow": WF}, "deploy"),
        ("POST", f"/api/v1/workflows/{WF}/undeploy", None, "undeploy"),
        ("POST", f"/api/v1/workflows/{WF}/run", None, "execute"),
    ],
)
def test_actions_refused_while_a_deployment_is_pending(user, store, pending, method, url, body, what):
    r = user.request(method, url, json=body, headers=JSON)
    assert r.status_code == 409
    assert r.json()["detail"].startswith(f"{what} refused: a deployment of {WF} (v1 to prod) is pending")
    assert [d["id"] for d in deployments.listing(store)] == [pending["id"]]


def test_run_of_a_workflow_that_is_not_live_is_400(user, store, envs, artifact):
    r = user.post(f"/api/v1/workflows/{WF}/run", headers=JSON)
    assert r.status_code == 400 and r.json()["detail"].startswith(f"workflow {WF!r} is not live")


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/workflows/Bad-Name/run",
        "/api/v1/workflows/Bad-Name/undeploy",
        "/api/v1/workflows/Bad-Name/deployment-log",
    ],
)
def test_bad_workflow_names_are_422(user, url):
    r = user.request("GET" if url.endswith("log") else "POST", url, headers=JSON)
    assert r.status_code == 422


def test_deploy_when_airflow_lacks_the_tracker_dag_is_400_and_leaves_nothing(user, store, envs, artifact, airflow_db):
    """The one path into Airflow tested here: its metadata DB does not know the tracker DAG."""
    from airflow.api.common.delete_dag import delete_dag
    from airflow.exceptions import DagNotFound

    try:
        delete_dag("flowlink_deployments")  # another test of the session may have registered it
    except DagNotFound:
        pass
    r = user.post("/api/v1/deployments", json={"workflow": WF})
    assert r.status_code == 400
    assert "Airflow does not know the DAG 'flowlink_deployments'" in r.json()["detail"]
    assert deployments.listing(store) == []


def test_mounted_by_airflows_api_server(home, airflow_db, auth_manager):
    """The plugin's app under Airflow's own api-server app at /flowlink, with Airflow's login."""
    from airflow.api_fastapi.app import create_app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client = TestClient(airflow_app(apps="core"))
    doc = client.get("/flowlink/openapi.json")
    assert doc.status_code == 200 and {("GET", "/api/v1/environments")} <= {
        (m.upper(), p) for p, ops in doc.json()["paths"].items() for m in ops
    }
    assert client.get("/flowlink/api/v1/environments").status_code == 401
    assert client.post("/flowlink/agent/v1/heartbeat").status_code == 401
    token = auth_manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    r = client.get("/flowlink/api/v1/environments", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == []
