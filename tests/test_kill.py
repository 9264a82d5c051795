"""Processes killed with SIGKILL in the middle of their work, against real processes on loopback: Airflow
standalone (api-server, scheduler with the LocalExecutor, dag-processor, triggerer), the Flowlink agent, the
demo ERP, a slowed-down demo shop and slowed-down json-servers (npm). Nothing may be lost or done twice.

Each load is killed in two modes: its REST connection writing one record at a time ("concurrency": 1), and
writing AT_ONCE requests at a time while the services take AT_ONCE times as long per request, so that a load lasts
about as long and is killed in the middle either way."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from flowlink import publish
from flowlink.store import Store, bucket, snapshots, state
from tests.airflow_helpers import demo_connections
from tests.live_server import AgentProcess, AirflowServer, command_line, wait_for
from tests.npm_servers import JsonServer

WF = "kill_sync"  # loads by upsert (PUT by key)
WF_INSERT = "kill_insert"  # the same by insert (POST)
WF_API = "kill_api"  # the same by create_or_update into json-server (POST answering its id, PUT by that id)
N = 240  # customers in the ERP
BATCH = 40  # records per batch: the load records its outcomes batch by batch
PUT_DELAY = 0.03  # seconds the shop takes per customer write: a load of N records lasts several seconds
API_DELAY_MS = 15  # json-server's --delay per request; a new record takes two (look-up, create)
AT_ONCE = 8  # requests at a time of the concurrent mode (the connection's extra "concurrency")
MODES = {"one": 1, "concurrent": AT_ONCE}  # mode -> the connection's concurrency
STEPS = ["downloading workflow data", "downloading stylesheets", "installing", "deployed"]
HEARTBEAT_TIMEOUT = 20  # seconds: [scheduler] task_instance_heartbeat_timeout (default 300)

SPEC = """\
name: {name}
description: {description}
source: {{type: sql, connection: demo_erp}}
target: {{type: rest, connection: {target}}}
schedule: {{sync: manual}}
touchpoints:
  - name: customers
    extract: {{table: customers, key: id, incremental: updated_at}}
    mapping:
      - {{target: customer_id, source: id}}
      - {{target: name, xpath: "concat(first_name, ' ', last_name)"}}
      - {{target: email, xpath: "translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"}}
      - {{target: channel, constant: erp}}
    load: {load}
    batch_size: {batch}
"""
LOADS = {
    "upsert": "{endpoint: /customers, method: upsert, key: customer_id}",
    "insert": "{endpoint: /customers, method: insert, key: customer_id}",
    "create_or_update": "{endpoint: /customers, method: create_or_update, key: customer_id, id_field: id, "
    "match: {endpoint: '/customers?email={email}'}}",
}


def spec_text(name: str, method: str, description: str = "Customers, for the kill tests.", mode: str = "one") -> str:
    target = ("customer_api" if method == "create_or_update" else "demo_shop") + ("" if mode == "one" else f"_{mode}")
    return SPEC.format(batch=BATCH, name=name, description=description, target=target, load=LOADS[method])


def workflow(name: str, mode: str) -> str:
    """The workflow of a kill test in a mode: `kill_sync`, `kill_sync_concurrent`, ..."""
    return name if mode == "one" else f"{name}_{mode}"


def modes(scenario: str) -> list:
    """The parameters of a kill test: each mode, with its row of the reliability report."""
    return [
        pytest.param(
            mode,
            id=mode,
            marks=pytest.mark.reliability(
                "Faults", f"{scenario} ({'one record at a time' if n == 1 else f'{n} requests at a time'})"
            ),
        )
        for mode, n in MODES.items()
    ]


class SlowShop(DemoShop):
    """The demo shop, taking `delay` seconds per write (outside its lock, as a slow real service would)."""

    delay = 0.0

    def put(self, resource, id_, body):
        if self.delay:
            time.sleep(self.delay)
        return super().put(resource, id_, body)

    def post(self, resource, body):
        if self.delay:
            time.sleep(self.delay)
        return super().post(resource, body)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Airflow with task retries, a slow shop, two slow json-servers, an ERP; a primary environment `cloud` with
    `kill_sync` (upsert), `kill_insert` (insert) and `kill_api` (create_or_update) v1 deployed, each also as
    `..._concurrent`, whose connections send AT_ONCE requests at a time (to the shop, and to the second json-server,
    AT_ONCE times slower)."""
    root = tmp_path_factory.mktemp("kill")
    shop = SlowShop()
    shop.start()
    api = JsonServer(root / "api", delay_ms=API_DELAY_MS, quiet=False)
    api.start()
    api_concurrent = JsonServer(root / "api-concurrent", delay_ms=API_DELAY_MS * AT_ONCE, quiet=False)
    api_concurrent.start()
    create_erp(root / "erp.db", customers=N, orders=0)

    def conn(url: str, mode: str) -> str:
        return json.dumps({"conn_type": "http", "host": url, "extra": {"concurrency": MODES[mode]}})

    server = AirflowServer(
        root,
        {
            **demo_connections(root / "erp.db", shop.url),
            "AIRFLOW_CONN_DEMO_SHOP": conn(shop.url, "one"),
            "AIRFLOW_CONN_CUSTOMER_API": conn(api.url, "one"),
            "AIRFLOW_CONN_DEMO_SHOP_CONCURRENT": conn(shop.url, "concurrent"),
            "AIRFLOW_CONN_CUSTOMER_API_CONCURRENT": conn(api_concurrent.url, "concurrent"),
            # every task gets two retries, two seconds apart (dag_factory/render.py takes Airflow's defaults)
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
            # a task whose worker died is found within seconds instead of five minutes
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
        },
    )
    agents: list[AgentProcess] = []

    def agent(command: list[str] | None = None) -> AgentProcess:
        a = AgentProcess(server, "cloud", token, root / f"agent-{len(agents) + 1}.log", command=command)
        agents.append(a)
        return a

    try:
        server.flowlink("env", "add", "cloud", "--kind", "cloud")
        token = server.flowlink("env", "token", "cloud").stdout.strip()
        workflows = {
            workflow(name, mode): (method, mode)
            for name, method in {WF: "upsert", WF_INSERT: "insert", WF_API: "create_or_update"}.items()
            for mode in MODES
        }
        for name, (method, mode) in workflows.items():
            spec = root / f"{name}.yaml"
            spec.write_text(spec_text(name, method, mode=mode))
            server.flowlink("publish", str(spec))
        wait_for("the deployment tracker DAG", lambda: server.dag_known("flowlink_deployments"), timeout=120, every=1)
        first = agent()
        for name in workflows:
            server.flowlink("deploy", name)
        wait_for(
            "v1 deployed",
            lambda: all(last_deployment(server, name)["status"] == "successful" for name in workflows),
            timeout=90,
            every=0.5,
        )
        first.stop()
        yield {
            "server": server,
            "shop": shop,
            "api": {"one": api, "concurrent": api_concurrent},
            "root": root,
            "agent": agent,
        }
    finally:
        for a in agents:
            a.stop()
        server.stop()
        shop.stop()
        api.stop()
        api_concurrent.stop()


def last_deployment(server, workflow: str = WF) -> dict:
    return next(d for d in server.flowlink_json("deployments") if d["workflow"] == workflow)


def open_store(world) -> Store:
    return Store.open(f"sqlite:///{world['root'] / 'flowlink' / 'flowlink.db'}")


def shop_writes(shop) -> int:
    return sum(shop.writes("customers").values())


def erp_customers(world) -> tuple[dict[str, dict], str]:
    """The ERP's customers as the shop should hold them (mapped), by id, and the newest updated_at."""
    with sqlite3.connect(world["root"] / "erp.db") as db:
        rows = db.execute("SELECT id, first_name, last_name, email FROM customers").fetchall()
        newest = db.execute("SELECT max(updated_at) FROM customers").fetchone()[0]
    return {
        str(i): {
            "id": str(i),
            "customer_id": str(i),
            "name": f"{first} {last}",
            "email": email.lower(),
            "channel": "erp",
        }
        for i, first, last, email in rows
    }, newest


def loading(server, progress, workflow: str, run_id: str, try_number: int, before: int) -> dict:
    """The task instance of the load once this try is running and progress() (records written or held) has grown by
    N/4 since before."""

    def check():
        if progress() - before < N // 4:
            return None
        ti = server.task_instance(workflow, run_id, "customers.load")
        return ti if ti["state"] == "running" and ti["try_number"] == try_number and ti["pid"] else None

    return wait_for(f"try {try_number} of the load to be loading", check, timeout=180, every=0.1)


def start_run(server, shop, workflow: str, mode: str) -> str:
    shop.reset()
    shop.delay = PUT_DELAY * MODES[mode]  # a load lasts about as long in either mode
    wait_for(f"the {workflow} DAG", lambda: server.dag_known(workflow), timeout=120, every=1)
    return server.flowlink("run", workflow).stdout.split("run ")[-1].strip()


def settle(delay: float) -> None:
    """Wait until the requests a killed process had sent have been carried out by the service (it takes ``delay``
    seconds for each): what they wrote is in the service before the test looks."""
    time.sleep(delay + 1)


def run_end(server, workflow: str, run_id: str) -> str:
    return wait_for(
        "the run to end",
        lambda: (s := server.run_state(workflow, run_id)) in ("success", "failed") and s,
        timeout=240,
        every=1,
    )


@pytest.mark.parametrize("mode", modes("A worker is killed in the middle of a load"))
def test_worker_killed_in_the_middle_of_a_load(world, observe, mode):
    """A real Airflow run (LocalExecutor, 2 task retries) loads 240 ERP customers into a shop that takes 30 ms per
    write. While the load task is running and part of the records have arrived, its task process gets SIGKILL
    (Airflow's supervisor sees it die and sets up_for_retry); while the retry is loading, its worker process
    (the supervisor) and the task process get SIGKILL (nobody reports: the scheduler's heartbeat timeout finds it).
    The third try must succeed: each source record in the shop exactly once with its mapped fields, one Success
    row per record in the resync bucket, the load step's snapshot successful and the watermark at the newest
    record."""
    server, shop = world["server"], world["shop"]
    wf = workflow(WF, mode)
    run_id = start_run(server, shop, wf, mode)
    task = "customers.load"

    # Kill 1: the task process (the one running LoadOperator.execute), its supervisor stays.
    ti = loading(server, lambda: shop_writes(shop), wf, run_id, 1, 0)
    pid = ti["pid"]
    assert ti["id"] in command_line(pid), (pid, command_line(pid))  # the task runner's title names its task instance
    server.kill(pid)
    arrived_1, writes_1 = len(shop.records("customers")), shop_writes(shop)
    assert 0 < arrived_1 < N, f"the load was not in the middle: {arrived_1} of {N}"

    # Kill 2: the retry's worker process (the LocalExecutor worker that supervises it) first, then its task process.
    ti = loading(server, lambda: shop_writes(shop), wf, run_id, 2, writes_1)
    runner = ti["pid"]
    supervisor = int(Path(f"/proc/{runner}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert "LocalExecutor" in command_line(supervisor), command_line(supervisor)
    server.kill(supervisor)
    server.kill(runner)
    killed_at = time.monotonic()
    writes_2 = shop_writes(shop)
    assert writes_2 - writes_1 < N, "the second try was not in the middle of its load"

    final = run_end(server, wf, run_id)
    tries = server.task_tries(wf, run_id, task)
    assert [t["state"] for t in tries][-1] == "success", tries
    assert final == "success"
    assert [t["try_number"] for t in tries] == [1, 2, 3]
    assert tries[0]["state"] in ("up_for_retry", "failed") and tries[1]["state"] in ("up_for_retry", "failed"), tries
    detected = max(0.0, time.monotonic() - killed_at)
    timeouts = server.api(
        "GET",
        "/api/v2/eventLogs",
        params={"dag_id": wf, "run_id": run_id, "task_id": task, "event": "heartbeat timeout"},
    ).json()["event_logs"]
    assert [e["try_number"] for e in timeouts] == [2], timeouts  # try 1 was reported by its supervisor

    # The shop: each source record once, with the mapped fields; no record it should not have.
    expected, newest = erp_customers(world)
    source_ids = set(expected)
    held = shop.records("customers")
    assert len(held) == N and set(held) == source_ids
    wrong = [i for i in expected if held[i] != expected[i]]
    assert not wrong, [(held[i], expected[i]) for i in wrong[:3]]
    writes = shop.writes("customers")
    resent = sum(writes.values()) - N
    assert set(writes) == source_ids  # the shop was written only these ids
    # a retry writes again only the batch its killed try was in the middle of, not the batches it recorded
    assert resent <= 2 * BATCH, writes

    store = open_store(world)
    try:
        rows = bucket.rows(store, wf, touchpoint="customers", limit=10 * N)
        assert len(rows) == N and {r["source_id"] for r in rows} == source_ids  # one row per record
        assert {r["status"] for r in rows} == {"success"} and all(r["last_run"] == run_id for r in rows)
        steps = {s["step"]: s for s in snapshots.snapshot(store, run_id, wf)["steps"]}
        assert steps["load"]["status"] == "success" and steps["load"]["count_out"] == N
        assert steps["load"]["count_failed"] == 0
        assert state.watermark(store, wf, "customers") == newest
    finally:
        store.dispose()
    observe(
        f"killed task process {pid} after {arrived_1} of {N} records had arrived (try 1 {tries[0]['state']}); "
        f"killed the retry's worker {supervisor} and task process {runner} after {writes_2 - writes_1} more writes "
        f"(try 2 {tries[1]['state']} by the heartbeat timeout of {HEARTBEAT_TIMEOUT}s; run done {detected:.0f}s "
        f"later); try 3 succeeded; the shop "
        f"holds {len(held)} of {N} records once each ({resent} writes again by the retries: the interrupted "
        f"batches, upsert by key), "
        f"duplicates 0; bucket {len(rows)} rows, all Success; watermark at the newest record"
    )


@pytest.mark.parametrize("mode", modes("A worker is killed in the middle of a load that inserts (POST)"))
def test_worker_killed_in_the_middle_of_an_insert_load(world, observe, mode):
    """As above with a workflow whose load inserts (POST, which the shop answers 409 for an existing key): the
    load's task process gets SIGKILL once part of the records have arrived, and Airflow's retry must complete the
    load. The retry must not send again the batches the killed try recorded, and the records of the interrupted
    batch that the killed try had already created (409 on the retry) must end Success, not Failed: each record in
    the shop once, every bucket row Success, the run successful."""
    server, shop = world["server"], world["shop"]
    wf = workflow(WF_INSERT, mode)
    run_id = start_run(server, shop, wf, mode)
    ti = loading(server, lambda: shop_writes(shop), wf, run_id, 1, 0)
    pid = ti["pid"]
    assert ti["id"] in command_line(pid), (pid, command_line(pid))
    server.kill(pid)
    settle(shop.delay)  # a request the killed process had sent still completes in the shop
    arrived = set(shop.records("customers"))
    assert 0 < len(arrived) < N, f"the load was not in the middle: {len(arrived)} of {N}"

    final = run_end(server, wf, run_id)
    tries = server.task_tries(wf, run_id, "customers.load")
    store = open_store(world)
    try:
        rows = bucket.rows(store, wf, touchpoint="customers", limit=10 * N)
        load = {s["step"]: s for s in snapshots.snapshot(store, run_id, wf)["steps"]}["load"]
    finally:
        store.dispose()
    statuses = {r["source_id"]: (r["status"], r["message"]) for r in rows}
    assert final == "success", (tries, load["message"], [v for v in statuses.values() if v[0] != "success"][:5])
    assert [(t["try_number"], t["state"]) for t in tries][-1] == (2, "success"), tries

    expected, _ = erp_customers(world)
    held = shop.records("customers")
    assert held == expected  # each record once, with its mapped fields
    writes = shop.writes("customers")
    twice = {i for i, n in writes.items() if n == 2}
    assert set(writes) == set(expected) and max(writes.values()) <= 2
    # written twice: only records of the interrupted batch the killed try had created (the retry got 409 for them)
    assert twice <= arrived and len(twice) <= BATCH
    recorded_before = len(arrived) - len(twice)  # arrived in batches the killed try recorded
    assert recorded_before % BATCH == 0
    assert len(rows) == N and {s for s, _ in statuses.values()} == {"success"}
    found = {i for i, (_, message) in statuses.items() if message and "interrupted try" in message}
    assert found == twice
    assert load["status"] == "success" and load["count_out"] == N and load["count_failed"] == 0
    observe(
        f"killed task process {pid} with {len(arrived)} of {N} records in the shop ({recorded_before} in "
        f"recorded batches, {len(twice)} in the interrupted one); try 2 succeeded without sending the recorded "
        f"batches again; {len(twice)} POSTs answered 409 and counted Success (created by the killed try); shop "
        f"{len(held)} records once each, duplicates 0; bucket {len(rows)} rows, all Success"
    )


@pytest.mark.parametrize("mode", modes("A worker is killed in the middle of a create_or_update load (json-server)"))
def test_worker_killed_in_the_middle_of_a_create_or_update_load(world, observe, mode):
    """As above with a workflow whose load is create_or_update into json-server (from npm; 15 ms per request): each
    new customer is looked up by e-mail, then created with POST, json-server answering its own id. The load's task
    process gets SIGKILL once part of the customers have been created, and Airflow's retry must complete the load:
    the customers the killed try created without recording them are found by the retry's look-up and updated (PUT by
    json-server's id), never created again. Every ERP customer in json-server exactly once (counted by e-mail) with its
    mapped fields, exactly N POSTs, every bucket row Success with json-server's id as destination id."""
    server, api = world["server"], world["api"][mode]
    wf = workflow(WF_API, mode)
    wait_for(f"the {wf} DAG", lambda: server.dag_known(wf), timeout=120, every=1)
    sent = len(api.requests())
    run_id = server.flowlink("run", wf).stdout.split("run ")[-1].strip()
    ti = loading(server, lambda: len(api.records()), wf, run_id, 1, 0)
    pid = ti["pid"]
    assert ti["id"] in command_line(pid), (pid, command_line(pid))
    server.kill(pid)
    settle(api.delay_ms / 1000)  # a request the killed process had sent still completes in json-server
    arrived = {r["id"] for r in api.records()}
    assert 0 < len(arrived) < N, f"the load was not in the middle: {len(arrived)} of {N}"

    final = run_end(server, wf, run_id)
    tries = server.task_tries(wf, run_id, "customers.load")
    store = open_store(world)
    try:
        rows = bucket.rows(store, wf, touchpoint="customers", limit=10 * N)
        load = {s["step"]: s for s in snapshots.snapshot(store, run_id, wf)["steps"]}["load"]
    finally:
        store.dispose()
    assert final == "success", (
        tries,
        load["message"],
        [(r["source_id"], r["message"]) for r in rows if r["status"] != "success"][:5],
    )
    assert [(t["try_number"], t["state"]) for t in tries][-1] == (2, "success"), tries

    expected, _ = erp_customers(world)
    held = api.records()
    emails = Counter(r["email"] for r in held)
    assert len(held) == N and set(emails.values()) == {1}  # each customer once
    by_customer = {r["customer_id"]: r for r in held}
    assert {i: {k: v for k, v in r.items() if k != "id"} for i, r in by_customer.items()} == {
        i: {k: v for k, v in r.items() if k != "id"} for i, r in expected.items()
    }
    writes = [(method, path) for method, path, _ in api.requests()[sent:] if method in ("POST", "PUT")]
    posts = [p for m, p in writes if m == "POST"]
    puts = [p for m, p in writes if m == "PUT"]
    assert len(posts) == N  # each created once: the retry created none of what the killed try had created
    # updated by the retry: only customers the killed try had created in its interrupted batch
    assert {p.rsplit("/", 1)[1] for p in puts} <= {str(i) for i in arrived} and len(puts) <= BATCH
    assert len(rows) == N and {r["status"] for r in rows} == {"success"}
    assert {r["source_id"]: r["destination_id"] for r in rows} == {i: str(r["id"]) for i, r in by_customer.items()}
    assert load["status"] == "success" and load["count_out"] == N and load["count_failed"] == 0
    observe(
        f"killed task process {pid} with {len(arrived)} of {N} customers created in json-server; try 2 "
        f"succeeded: {len(puts)} customers of the interrupted batch were found by the look-up and updated "
        f"(PUT by json-server's id), {len(posts)} POSTs in all for {N} customers; json-server holds {len(held)} "
        f"customers, each e-mail once; bucket {len(rows)} rows, all Success with json-server's id"
    )


def live_file(world) -> Path:
    return world["root"] / "flowlink" / "live" / "cloud" / f"{WF}.json"


@pytest.mark.reliability("Faults", "The agent is killed in the middle of a deployment")
def test_agent_killed_in_the_middle_of_a_deployment(world, observe):
    """A new version is deployed through an agent that waits 3 s between carrying out each step and reporting it
    (tests/slow_agent.py). Once two steps are reported and it has switched the live file
    (installing carried out, not yet reported), the agent gets SIGKILL; a new agent is started. The deployment
    must end Successful with each step in the deployment log exactly once and in order, the restarted agent
    carrying out only the remaining steps, the live file the new version with its checksum and the backup the
    previous version."""
    server = world["server"]
    before = publish.read_artifact(live_file(world))
    spec = world["root"] / f"{WF}-next.yaml"
    spec.write_text(spec_text(WF, "upsert", f"Customers, for the kill tests, after v{before.version}."))
    out = server.flowlink("publish", str(spec)).stdout
    version = int(out.split(" v", 1)[1].split()[0])
    new = publish.read_artifact(world["root"] / "flowlink" / "published" / WF / f"{WF}-v{version:04d}.json")
    assert new.version == version > before.version

    slow = world["agent"]([str(world["server"].bin_dir / "python"), "-m", "tests.slow_agent", "3"])
    deploy_out = server.flowlink("deploy", WF).stdout
    deployment_id = int(deploy_out.split()[1].rstrip(":"))
    wait_for("two steps reported", lambda: "downloading stylesheets done" in slow.output(), timeout=120, every=0.1)
    # installing is carried out right after; the agent then waits 3 s before reporting it
    wait_for("the switch", lambda: publish.read_artifact(live_file(world)).version == version, timeout=30, every=0.05)
    slow.kill()
    reported = [s["step"] for s in server.flowlink_json("deployment-log", WF)["steps"] if s["status"] == "done"]
    assert reported == STEPS[:2], reported
    d = last_deployment(server)
    assert d["id"] == deployment_id and d["status"] == "pending"

    again = world["agent"]()
    d = wait_for(
        "Successful", lambda: (d := last_deployment(server))["status"] == "successful" and d, timeout=120, every=0.5
    )
    assert d["id"] == deployment_id and d["tries"] == 0 and d["version"] == version
    log = server.flowlink_json("deployment-log", WF)["steps"]
    done = [s["step"] for s in log if s["status"] == "done"]
    assert done == STEPS  # each step once, in order
    assert not [s for s in log if s["status"] == "failed"]

    # The restarted agent carried out only what was left: no step reported twice, nothing downloaded again.
    first_out, second_out = slow.output(), again.output()
    label = f"{WF} v{version} deployment {deployment_id}"
    assert [s for s in STEPS if f"{label}: {s} done" in first_out] == STEPS[:2]
    assert [s for s in STEPS if f"{label}: {s} done" in second_out] == STEPS[2:]
    assert "downloading it again" not in second_out

    live = publish.read_artifact(live_file(world))
    assert (live.version, live.sha256) == (new.version, new.sha256) == (version, d["sha256"])
    assert live_file(world).read_bytes() == new.path.read_bytes()
    backup = live_file(world).parent / ".agent" / "backup" / f"{WF}.json"
    assert publish.read_artifact(backup).sha256 == before.sha256  # not overwritten by the resumed install
    assert not (live_file(world).parent / ".agent" / str(deployment_id)).exists()  # its work folder is cleaned
    leftovers = [p.name for p in live_file(world).parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    observe(
        f"killed the agent with {len(STEPS[:2])} of {len(STEPS)} steps reported and v{version} already "
        f"switched in; the restarted agent reported only {', '.join(STEPS[2:])}; Successful, deployment log "
        f"{len(done)} steps once each in order; live file v{version} sha256 {live.sha256[:12]} as published; "
        f"backup still v{before.version}"
    )
