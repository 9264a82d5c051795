"""Deployments against real processes on loopback: Airflow standalone (api-server, scheduler, dag-processor,
triggerer), the Flowlink agent as a separate process, the demo shop as the workflow's target."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
import requests
from sqlalchemy import update

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from flowlink.store import Store
from flowlink.store.tables import deployments as deployments_table
from tests.airflow_helpers import REPO, demo_connections
from tests.live_server import AgentProcess, AirflowServer, wait_for

WF = "erp_to_shop"
STEPS = ["downloading workflow data", "downloading stylesheets", "installing", "deployed"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One Airflow, one shop, one ERP, a primary cloud environment with an agent token, the example published."""
    root = tmp_path_factory.mktemp("deployments")
    shop = DemoShop()
    shop.start()
    create_erp(root / "erp.db", customers=20, orders=30)
    server = AirflowServer(root, demo_connections(root / "erp.db", shop.url))
    try:
        server.flowlink("env", "add", "cloud", "--kind", "cloud")
        server.flowlink("env", "add", "site_b", "--kind", "on-premise")
        token = server.flowlink("env", "token", "cloud").stdout.strip()
        other_token = server.flowlink("env", "token", "site_b").stdout.strip()
        server.flowlink("publish", str(REPO / "examples" / "erp_to_shop.yaml"))
        wait_for("the deployment tracker DAG", lambda: server.dag_known("flowlink_deployments"), timeout=90, every=1)
        yield {"server": server, "shop": shop, "token": token, "other_token": other_token, "root": root}
    finally:
        server.stop()
        shop.stop()


@pytest.fixture
def agent(world):
    agents = []

    def start() -> AgentProcess:
        a = AgentProcess(world["server"], "cloud", world["token"], world["root"] / "agent.log")
        agents.append(a)
        return a

    yield start
    for a in agents:
        a.stop()


def test_each_stored_record_names_the_columns_of_its_table():
    """The typed records of flowlink.store.deployments hold a row each: the same keys as the table's columns."""
    from flowlink.store import deployments as stored
    from flowlink.store import tables

    for record, table in (
        (stored.EnvironmentRow, tables.environments),
        (stored.TokenRow, tables.agent_tokens),
        (stored.Deployment, tables.deployments),
        (stored.LogLine, tables.deployment_log),
    ):
        assert record.__required_keys__ == set(table.c.keys()), record.__name__


def store_of(world) -> Store:
    return Store.open(f"sqlite:///{world['root'] / 'flowlink' / 'flowlink.db'}")


def last_deployment(server) -> dict:
    return next(d for d in server.flowlink_json("deployments") if d["workflow"] == WF)


def wait_status(server, status: str, timeout: float = 60) -> dict:
    return wait_for(f"deployment {status}", lambda: (d := last_deployment(server))["status"] == status and d, timeout)


def deploy(server, *args) -> tuple[int, str]:
    """flowlink deploy: (deployment id, the run id of the Airflow run that tracks it)."""
    out = server.flowlink("deploy", WF, *args).stdout
    assert " is Pending " in out and "wait till" in out, out
    return int(out.split()[1].rstrip(":")), out.split("tracked by run ")[1].strip()


def tracker_state(server, run_id: str) -> str:
    """The Airflow run that tracks a deployment, once it has ended."""

    def ended():
        state = server.api("GET", f"/api/v2/dags/flowlink_deployments/dagRuns/{run_id}").json()["state"]
        return state in ("success", "failed") and state

    return wait_for("the tracking run to end", ended, timeout=60)


def log_steps(server) -> list[tuple[str, str]]:
    return [(s["step"], s["status"]) for s in server.flowlink_json("deployment-log", WF)["steps"]]


def live_version(world) -> int | None:
    path = world["root"] / "flowlink" / "live" / "cloud" / f"{WF}.json"
    return json.loads(path.read_text())["version"] if path.exists() else None


def test_happy_path_pending_to_successful_then_the_dag_runs(world, agent):
    server = world["server"]
    agent()
    deployment_id, tracker = deploy(server)
    d = wait_status(server, "successful", timeout=60)
    assert d["id"] == deployment_id and d["tries"] == 0
    assert tracker_state(server, tracker) == "success"
    steps = server.flowlink_json("deployment-log", WF)["steps"]
    assert [(s["step"], s["status"]) for s in steps if s["status"] == "done"] == [(s, "done") for s in STEPS]
    last_step = dt.datetime.fromisoformat([s for s in steps if s["step"] == "deployed"][0]["at"])
    assert dt.datetime.fromisoformat(d["ended_at"]) - last_step < dt.timedelta(seconds=5)
    assert live_version(world) == 1

    # The workflow's DAG appears and a run moves the records.
    wait_for("the workflow DAG", lambda: server.dag_known(WF), timeout=90, every=1)
    run_id = server.flowlink("run", WF).stdout.split("run ")[-1].strip()
    state = wait_for(
        "the workflow run to end",
        lambda: (
            (s := server.api("GET", f"/api/v2/dags/{WF}/dagRuns/{run_id}").json()["state"]) in ("success", "failed")
            and s
        ),
        timeout=120,
        every=1,
    )
    assert state == "success"
    assert len(world["shop"].records("customers")) == 20 and len(world["shop"].records("orders")) == 30
    feeds = [f["message"] for f in server.flowlink_json("feeds", "--tag", "deploy")]
    assert any("successful" in m for m in feeds)


def test_agent_down_at_start_resumes_and_no_step_runs_twice(world, agent):
    server = world["server"]
    spec = world["root"] / "v2.yaml"
    spec.write_text(
        (REPO / "examples" / "erp_to_shop.yaml").read_text().replace("Customers and their orders", "Version two,")
    )
    server.flowlink("publish", str(spec))
    deploy(server)
    d = last_deployment(server)
    assert d["status"] == "pending" and d["version"] == 2 and d["tries"] == 1
    assert [s for s, st in log_steps(server) if st == "done"] == []
    a = agent()
    wait_status(server, "successful")
    done = [s for s, st in log_steps(server) if st == "done"]
    assert done == STEPS  # each step exactly once
    assert live_version(world) == 2
    assert a.output().count(f"{WF} v2") >= 4


def test_agent_never_comes_back_unsuccessful_then_a_redeploy_succeeds(world, agent):
    server = world["server"]
    deployment_id, tracker = deploy(server, "--version", "1")
    store = store_of(world)
    try:  # stand for elapsed time: wait till moves close
        with store.engine.begin() as conn:
            conn.execute(
                update(deployments_table)
                .where(deployments_table.c.id == deployment_id)
                .values(wait_till=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2))
            )
    finally:
        store.dispose()
    d = wait_status(server, "unsuccessful", timeout=30)  # ended by the tracking sensor's trigger at wait till
    assert d["tries"] == 1 and "wait till" in d["message"]
    assert tracker_state(server, tracker) == "failed"
    assert live_version(world) == 2  # the running version stays
    agent()
    deploy(server, "--version", "1")
    d = wait_status(server, "successful")
    assert d["tries"] == 0 and d["version"] == 1
    assert live_version(world) == 1


def test_a_corrupted_published_file_fails_its_step_and_the_previous_version_keeps_running(world, agent):
    server = world["server"]
    spec = world["root"] / "v3.yaml"
    spec.write_text(
        (REPO / "examples" / "erp_to_shop.yaml").read_text().replace("Customers and their orders", "Version three,")
    )
    server.flowlink("publish", str(spec))
    deploy(server)  # no agent yet; the file is damaged in storage before the agent downloads it
    published = world["root"] / "flowlink" / "published" / WF / f"{WF}-v0003.json"
    os.chmod(published, 0o644)
    published.write_text(published.read_text().replace("Version three", "Version 3hree"))
    agent()
    d = wait_status(server, "unsuccessful")
    assert "downloading workflow data failed" in d["message"] and "checksum" in d["message"]
    assert ("downloading workflow data", "failed") in log_steps(server)
    assert live_version(world) == 1


def test_rules_while_pending_and_undeploy(world, agent):
    server = world["server"]
    deploy(server, "--version", "2")  # no agent: stays pending
    for args, word in (
        (["deploy", WF], "deploy refused"),
        (["run", WF], "execute refused"),
        (["resync", WF, "--touchpoint", "customers", "--failed"], "resync refused"),
        (["undeploy", WF], "undeploy refused"),
    ):
        done = server.flowlink(*args, check=False)
        assert done.returncode == 1 and word in done.stderr and "is pending" in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    before = last_deployment(server)
    assert before["status"] == "pending"
    refused = server.flowlink("env", "set", "cloud", "--pending-timeout", "61", check=False)
    assert refused.returncode == 1 and "5 to 60 minutes" in refused.stderr
    agent()
    wait_status(server, "successful")
    assert live_version(world) == 2
    server.flowlink("env", "set", "cloud", "--disable")
    disabled = server.flowlink("deploy", WF, check=False)
    assert disabled.returncode == 1 and "disabled" in disabled.stderr
    server.flowlink("env", "set", "cloud", "--enable")

    out = server.flowlink("undeploy", WF).stdout
    assert "undeploy of erp_to_shop" in out
    d = wait_status(server, "successful")
    assert d["action"] == "undeploy"
    assert live_version(world) is None  # the agent removed the installed file
    again = server.flowlink("undeploy", WF, check=False)
    assert again.returncode == 1 and "not deployed" in again.stderr
    assert any("undeploy" in f["message"] for f in server.flowlink_json("feeds", "--tag", "undeploy"))


def test_endpoints_require_the_right_token_or_a_login(world):
    server = world["server"]
    base = f"{server.url}/flowlink"
    assert requests.post(f"{base}/agent/v1/heartbeat", timeout=10).status_code == 401
    assert (
        requests.post(f"{base}/agent/v1/heartbeat", headers={"X-Agent-Token": "flk_wrong"}, timeout=10).status_code
        == 403
    )
    ok = requests.post(f"{base}/agent/v1/heartbeat", headers={"X-Agent-Token": world["token"]}, timeout=10)
    assert ok.status_code == 200 and ok.json()["environment"] == "cloud"
    cloud_deployment = last_deployment(server)["id"]
    other = requests.get(
        f"{base}/agent/v1/deployments/{cloud_deployment}/file",
        headers={"X-Agent-Token": world["other_token"]},
        timeout=10,
    )
    assert other.status_code == 404
    assert requests.get(f"{base}/api/v1/deployments", timeout=10).status_code == 401
    assert requests.get(
        f"{base}/api/v1/deployments", headers={"Authorization": "Bearer nonsense"}, timeout=10
    ).status_code in (401, 403)
    listed = server.api("GET", "/flowlink/api/v1/deployments")
    assert listed.status_code == 200 and any(d["workflow"] == WF for d in listed.json())
    openapi = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert "/agent/v1/heartbeat" in openapi["paths"] and "/api/v1/deployments" in openapi["paths"]
