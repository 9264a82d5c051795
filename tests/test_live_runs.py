"""Against one real Airflow (standalone, on loopback): deploy refuses a workflow whose connections Airflow lacks (CLI
and API), `flowlink check` sees a connection added with `airflow connections add`, `flowlink runs` shows Airflow's
state of each run, and `flowlink run`/`resync --wait` wait for the outcome, quietly."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from examples.demo_erp import create as create_erp
from examples.demo_erp import touch
from examples.demo_shop import DemoShop
from tests.airflow_helpers import REPO, demo_connections
from tests.live_server import BIN, AgentProcess, AirflowServer, wait_for

WF = "erp_to_shop"
EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One Airflow with the example's connections as AIRFLOW_CONN_* variables, the demo ERP and shop, a primary
    environment with its agent, the example published."""
    root = tmp_path_factory.mktemp("live_runs")
    shop = DemoShop()
    shop.start()
    create_erp(root / "erp.db", customers=6, orders=4)
    server = AirflowServer(root, demo_connections(root / "erp.db", shop.url))
    agent = None
    try:
        server.flowlink("env", "add", "cloud", "--kind", "cloud")
        token = server.flowlink("env", "token", "cloud").stdout.strip()
        server.flowlink("publish", str(EXAMPLE))
        wait_for("the deployment tracker DAG", lambda: server.dag_known("flowlink_deployments"), timeout=90, every=1)
        agent = AgentProcess(server, "cloud", token, root / "agent.log")
        yield {"server": server, "shop": shop, "root": root}
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        shop.stop()


def variant(root, name: str, *replacements: tuple[str, str]):
    text = EXAMPLE.read_text().replace("name: erp_to_shop", f"name: {name}")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path = root / f"{name}.yaml"
    path.write_text(text)
    return path


def airflow(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "airflow"), *args], env=server.env, capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.reliability("Bad input", "Deploy of a workflow whose connection id is wrong (acc_erpp)")
def test_deploy_refuses_missing_connections_by_cli_and_api(world, observe):
    """A spec whose source names a connection Airflow does not have is published, then deployed with `flowlink deploy`
    and with POST /flowlink/api/v1/deployments: both refuse, naming the connection; no deployment is recorded."""
    server = world["server"]
    server.flowlink(
        "publish", str(variant(world["root"], "typo_flow", ("connection: demo_erp", "connection: acc_erpp")))
    )
    done = server.flowlink("deploy", "typo_flow", check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(
        "flowlink deploy: deploy refused: Airflow has no connection 'acc_erpp' (source.connection): add it"
    ), done.stderr
    r = server.api("POST", "/flowlink/api/v1/deployments", json={"workflow": "typo_flow"})
    assert r.status_code == 400 and "Airflow has no connection 'acc_erpp' (source.connection)" in r.json()["detail"]
    assert [d for d in server.flowlink_json("deployments") if d["workflow"] == "typo_flow"] == []
    check = server.flowlink("check", "typo_flow", "--json", check=False)
    assert check.returncode == 1
    assert [c["what"] for c in json.loads(check.stdout)["checks"] if c["result"] == "problem"] == ["source acc_erpp"]
    observe(f"CLI exit 1: {done.stderr.strip()[:110]}...; API 400; no deployment; check names 'source acc_erpp'")


def test_a_connection_added_to_the_running_airflow_is_seen(world):
    """`airflow connections add` (the metadata database, not a variable): check and deploy see it; --conn-type
    postgres is stored as generic, and check says which form to use instead."""
    server = world["server"]
    airflow(
        server,
        "connections",
        "add",
        "added_shop",
        "--conn-json",
        json.dumps({"conn_type": "http", "host": world["shop"].url}),
    )
    airflow(
        server,
        "connections",
        "add",
        "pg_typed",
        "--conn-type",
        "postgres",
        "--conn-host",
        "127.0.0.1",
        "--conn-login",
        "u",
        "--conn-password",
        "pw-typed-9",
        "--conn-port",
        "5432",
    )
    spec = variant(world["root"], "added_flow", ("connection: demo_shop", "connection: added_shop"))
    report = json.loads(server.flowlink("check", str(spec), "--json").stdout)
    assert report["ok"] and ("connect", "target added_shop", "ok") in [
        (c["check"], c["what"], c["result"]) for c in report["checks"]
    ]
    generic = variant(world["root"], "typed_flow", ("connection: demo_erp", "connection: pg_typed"))
    done = server.flowlink("check", str(generic), "--json", check=False)
    row = next(c for c in json.loads(done.stdout)["checks"] if c["what"] == "source pg_typed")
    assert done.returncode == 1 and "type is generic" in row["detail"] and "--conn-json" in row["detail"]
    assert "pw-typed-9" not in done.stdout + done.stderr


def run_ids(server) -> dict[str, dict]:
    return {r["run_id"]: r for r in server.flowlink_json("runs", WF)}


def test_runs_show_airflows_state_and_wait_gives_the_outcome(world):
    server, shop = world["server"], world["shop"]
    deployed = server.flowlink("deploy", WF)
    assert "creating dag run" not in deployed.stdout + deployed.stderr and deployed.stderr == ""
    wait_for(
        "the deployment",
        lambda: next(d for d in server.flowlink_json("deployments") if d["workflow"] == WF)["status"] == "successful",
        timeout=90,
    )
    wait_for("the workflow DAG", lambda: server.dag_known(WF), timeout=90, every=1)

    # a run waiting in Airflow (the DAG paused): queued, no end time; --wait --timeout gives up, the run goes on
    assert server.api("PATCH", f"/api/v2/dags/{WF}", json={"is_paused": True}).ok
    started = server.flowlink("run", WF)
    assert started.stderr == "" and "creating dag run" not in started.stdout
    queued = re.fullmatch(rf"{WF}: run (\S+)\n", started.stdout)[1]
    listed = run_ids(server)[queued]
    assert (listed["status"], listed["ended_at"], listed["version"]) == ("queued", None, None)
    assert re.search(rf"{re.escape(queued)} .* queued", server.flowlink("runs", WF).stdout)
    timed_out = server.flowlink("run", WF, "--wait", "--timeout", "2", check=False)
    assert timed_out.returncode == 1
    second = re.search(r"run (\S+)\n", timed_out.stdout)[1]
    assert f"run {second} of {WF} is still queued after 2 s (--timeout); it goes on in Airflow" in timed_out.stderr

    # unpaused: --wait follows the next run to its end, exit 0
    assert server.api("PATCH", f"/api/v2/dags/{WF}", json={"is_paused": False}).ok
    for run_id in (queued, second):  # max_active_runs=1: the earlier runs go first
        wait_for(
            f"run {run_id}",
            lambda run_id=run_id: server.run_state(WF, run_id) in ("success", "failed"),
            timeout=180,
            every=2,
        )
    done = server.flowlink("run", WF, "--wait", "--timeout", "100")
    third = re.match(rf"{WF}: run (\S+)\n", done.stdout)[1]
    assert done.stdout.rstrip().endswith(f"run {third}: success"), done.stdout
    assert re.search(r"run \S+: (queued|running), \d+ of \d+ steps done", done.stdout)  # plain progress lines
    assert "creating dag run" not in done.stdout + done.stderr
    runs = run_ids(server)
    assert runs[third]["status"] == "success" and runs[third]["ended_at"] and runs[third]["version"] == 1
    assert runs[queued]["status"] == runs[second]["status"] == "success"
    assert len(shop.records("customers")) == 6

    # a failed run: exit 1 with the failing step's message; resync --wait completes the record
    shop.reject("customers", ["3"], 422, "email: not accepted")
    touch(world["root"] / "erp.db", "customers", [3])
    failed = server.flowlink("run", WF, "--wait", "--timeout", "100", check=False)
    assert failed.returncode == 1, failed
    run_id = re.match(rf"{WF}: run (\S+)\n", failed.stdout)[1]
    assert failed.stderr.startswith(f"run {run_id}: failed\n  customers.load: "), failed.stderr
    assert "1 record failed" in failed.stderr
    assert run_ids(server)[run_id]["status"] == "failed"
    shop.reject("customers", [])
    resynced = server.flowlink("resync", WF, "--touchpoint", "customers", "--failed", "--wait", "--timeout", "100")
    assert re.match(r"resync #\d+: 1 customers record, run \S+\n", resynced.stdout), resynced.stdout
    assert resynced.stdout.rstrip().endswith(": success") and resynced.stderr == ""
    assert shop.writes("customers")["3"] >= 3  # the first sync, the refused write, the resync
