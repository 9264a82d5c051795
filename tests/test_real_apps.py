"""A plain ERP -> API sync against applications nobody here wrote, as a new user sets it up from the README:
a PostgreSQL ERP and json-server (npm), whose create is `POST /customers` (answering its own id) and whose update
is `PUT /customers/{its id}` (404 for an unknown id). Airflow standalone with `make run`'s task retries, the
example spec examples/erp_to_api.yaml (method: create_or_update), the `flowlink` command for everything.

One scenario, in order (each step builds on the one before):
1. Some customers already exist in the API (created there by hand): the first sync matches them by e-mail and
   updates them; every other customer is created once.
2. A second run with nothing new sends nothing.
3. 10 customers change in the ERP: exactly 10 updates by the stored id, no create, no look-up.
4. The API is stopped in the middle of a run: the run fails within about a minute, every record left behind is
   Unprocessed with its reason, and `flowlink resync --touchpoint customers --unprocessed --wait` completes them once the API is back:
   no customer twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from examples.demo_erp import create as create_erp
from flowlink.store import Store, bucket
from tests.airflow_helpers import REPO
from tests.fixtures import copy_erp_to_postgres
from tests.live_server import AirflowServer, wait_for
from tests.npm_servers import JsonServer

WF = "erp_to_api"
N = 120  # customers in the ERP
KNOWN = 5  # of them already in the API before the first sync (same e-mail, another name)


def _erp_emails(erp: Path) -> dict[str, str]:
    with sqlite3.connect(erp) as db:
        return {str(i): email.lower() for i, email in db.execute("SELECT id, email FROM customers")}


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_url):
    root = tmp_path_factory.mktemp("real_apps")
    erp = root / "erp.db"
    create_erp(erp, customers=N, orders=0)
    base = make_url(pg_url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql('DROP DATABASE IF EXISTS "real_apps_erp" WITH (FORCE)')
        conn.exec_driver_sql('CREATE DATABASE "real_apps_erp"')
    admin.dispose()
    erp_url = base.set(database="real_apps_erp")
    copy_erp_to_postgres(erp, erp_url)

    emails = _erp_emails(erp)
    known = {sid: emails[sid] for sid in sorted(emails, key=int)[:KNOWN]}
    api = JsonServer(
        root / "api",
        {
            "customers": [
                {"id": 1000 + n, "name": "Created by hand", "email": email} for n, email in enumerate(known.values())
            ]
        },
        quiet=False,
    )
    api.start()
    server = AirflowServer(
        root,
        {
            "AIRFLOW_CONN_DEMO_ERP": json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "127.0.0.1",
                    "port": erp_url.port,
                    "login": erp_url.username,
                    "password": erp_url.password,
                    "schema": erp_url.database,
                }
            ),
            "AIRFLOW_CONN_CUSTOMER_API": json.dumps({"conn_type": "http", "host": api.url}),
            # as `make run` (examples/run.sh) and docker-compose (airflow.env): an unreachable application's task is
            # tried again, a minute later
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "60",
        },
    )
    try:
        server.flowlink("env", "add", "cloud", "--kind", "cloud")
        token = server.flowlink("env", "token", "cloud").stdout.strip()
        server.flowlink("publish", str(REPO / "examples" / "erp_to_api.yaml"))
        server.flowlink("check", WF)
        from tests.live_server import AgentProcess

        agent = AgentProcess(server, "cloud", token, root / "agent.log")
        try:
            wait_for("the deployment tracker DAG", lambda: server.dag_known("flowlink_deployments"), timeout=120)
            server.flowlink("deploy", WF)
            wait_for(
                "the deployment",
                lambda: server.flowlink_json("deployments")[0]["status"] == "successful",
                timeout=120,
                every=0.5,
            )
        finally:
            agent.stop()
        wait_for(f"the {WF} DAG", lambda: server.dag_known(WF), timeout=120, every=1)
        yield {"server": server, "api": api, "erp": erp, "erp_url": erp_url, "known": known, "root": root}
    finally:
        server.stop()
        api.stop()


def by_email(api: JsonServer) -> Counter:
    return Counter(c["email"] for c in api.records())


def open_store(world) -> Store:
    return Store.open(f"sqlite:///{world['root'] / 'flowlink' / 'flowlink.db'}")


def touch(world, ids: list[int], stamp: str) -> None:
    engine = sa.create_engine(world["erp_url"])
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE customers SET last_name = last_name || '-Neu', updated_at = :t WHERE id = ANY(:ids)"),
            {"t": stamp, "ids": ids},
        )
    engine.dispose()


def test_first_sync_creates_each_customer_once_and_matches_those_the_api_had(world):
    server, api, known = world["server"], world["api"], world["known"]
    done = server.flowlink("run", WF, "--wait", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = api.methods()
    assert seen["POST"] == N - KNOWN and seen["PUT"] == KNOWN, seen  # created, or matched and updated
    held = api.records()
    assert len(held) == N and set(by_email(api).values()) == {1}
    for n, email in enumerate(known.values()):  # matched: the API's own record, updated, not a second one
        record = next(c for c in held if c["email"] == email)
        assert record["id"] == 1000 + n and record["name"] != "Created by hand"
    store = open_store(world)
    try:
        rows = bucket.rows(store, WF, touchpoint="customers", limit=10 * N)
    finally:
        store.dispose()
    assert len(rows) == N and {r["status"] for r in rows} == {"success"}
    ids = {c["email"]: str(c["id"]) for c in held}
    emails = _erp_emails(world["erp"])
    assert {r["source_id"]: r["destination_id"] for r in rows} == {sid: ids[e] for sid, e in emails.items()}


def test_a_second_run_with_nothing_new_sends_nothing(world):
    server, api = world["server"], world["api"]
    before = len(api.requests())
    done = server.flowlink("run", WF, "--wait", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert api.methods(since=before) == Counter()


def test_ten_changed_customers_are_ten_updates_by_the_api_id(world):
    server, api = world["server"], world["api"]
    touch(world, list(range(11, 21)), "2030-01-01T00:00:00Z")
    before = len(api.requests())
    done = server.flowlink("run", WF, "--wait", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    sent = api.requests()[before:]
    assert Counter(m for m, _, _ in sent) == Counter({"PUT": 10}), sent
    held = {c["email"]: c for c in api.records()}
    emails = _erp_emails(world["erp"])
    assert all(held[emails[str(i)]]["name"].endswith("-Neu") for i in range(11, 21))
    assert len(held) == N


@pytest.mark.reliability("Faults", "The target API is stopped in the middle of a run")
def test_the_api_stopped_mid_run_fails_fast_leaves_reasons_and_resync_completes(world, observe):
    server, api = world["server"], world["api"]
    touch(world, list(range(21, 81)), "2030-02-01T00:00:00Z")  # 60 changes
    api.stop()
    data = json.loads(api.db.read_text())
    slow = JsonServer(api.folder, data, delay_ms=100, quiet=False)  # the same data, slower: a load lasts seconds
    slow.port, slow.url = api.port, api.url  # the address the Airflow connection names
    slow.start()
    world["api"] = api = slow
    before = len(api.requests())
    started = time.monotonic()
    run = server.flowlink("run", WF).stdout.split("run ")[-1].strip()
    wait_for(
        "a few updates",
        lambda: sum(m == "PUT" for m, _, _ in api.requests(settle=False)[before:]) >= 5,
        timeout=120,
        every=0.2,
    )
    api.stop()
    stopped = time.monotonic()
    state = wait_for(
        "the run to end", lambda: (s := server.run_state(WF, run)) in ("success", "failed") and s, timeout=300, every=1
    )
    took = time.monotonic() - stopped
    assert state == "failed"
    assert took < 120, f"the run took {took:.0f} s to fail after the API stopped"
    store = open_store(world)
    try:
        rows = {r["source_id"]: r for r in bucket.rows(store, WF, touchpoint="customers", limit=10 * N)}
    finally:
        store.dispose()
    left = {sid: r for sid, r in rows.items() if r["status"] != "success"}
    assert left and all(r["status"] == "unprocessed" for r in left.values()), {r["status"] for r in left.values()}
    assert all(r["message"].startswith(f"run {run}: load failed: ") for r in left.values()), {
        r["message"] for r in left.values()
    }
    reason = next(iter(left.values()))["message"]

    api.start()  # back, same port and data
    done = server.flowlink("resync", WF, "--touchpoint", "customers", "--unprocessed", "--wait", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = by_email(api)
    assert len(counts) == N and set(counts.values()) == {1}  # nobody twice
    held = {c["email"]: c for c in api.records()}
    emails = _erp_emails(world["erp"])
    assert all(held[emails[str(i)]]["name"].endswith("-Neu") for i in range(21, 81))
    store = open_store(world)
    try:
        statuses = {r["status"] for r in bucket.rows(store, WF, touchpoint="customers", limit=10 * N)}
    finally:
        store.dispose()
    assert statuses == {"success"}
    observe(
        f"json-server stopped after {api.methods(since=before)['PUT']} updates: the run failed "
        f"{took:.0f} s later ({time.monotonic() - started:.0f} s in all); {len(left)} records left Unprocessed with "
        f"'{reason[:120]}'; resync --unprocessed --wait completed them: {N} customers, each once, all Success"
    )
