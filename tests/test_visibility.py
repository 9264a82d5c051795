"""Failures a user can see and fix in Flowlink: real runs (dag.test) of the example workflow that fail before reading
a record (a wrong connection id, a missing table, a REST endpoint answering 404, a wrong password) or in the middle
of a load (the target goes down), then what `flowlink runs`, `flowlink snapshot`, the feeds, the Snapshots page and
the resync bucket say, and `flowlink resync --unprocessed`.
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from flowlink.actions import publish_workflow
from flowlink.alerts import scrub
from flowlink.publish import make_live
from flowlink.store import bucket, feeds, snapshots
from tests.airflow_helpers import REPO
from tests.test_cli import flowlink
from tests.test_faults import SHOP_FAST, WF, proxy_to, run_dag, source_order, statuses, world  # noqa: F401 (fixtures)

WRONG_PASSWORD = "n0t-the-pa$$word"


def publish_variant(store, tmp_path: Path, name: str, change) -> None:
    """Publish a copy of the example spec, its customers touchpoint only, changed by `change(spec dict)`, and put it
    live."""
    spec = yaml.safe_load((REPO / "examples" / "erp_to_shop.yaml").read_text())
    spec["touchpoints"] = spec["touchpoints"][:1]
    change(spec)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    make_live(publish_workflow(store, path).result.artifact)


def cli(*args: str) -> str:
    done = flowlink(Path(os.environ["FLOWLINK_HOME"]), *args)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def cli_fails(*args: str) -> str:
    done = flowlink(Path(os.environ["FLOWLINK_HOME"]), *args)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    return done.stderr.strip()


def airflow_state(run_id: str, state: str) -> None:
    """Set an Airflow run's state in Airflow's metadata database (a run still running, then ended)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == WF, DagRun.run_id == run_id).one().state = state


def pages_client():
    """The Flowlink pages on this test's FLOWLINK_HOME, logged in as Airflow's admin."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    from flowlink_airflow.api import create_app

    create_auth_manager()
    app = create_app()
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="admin", role="admin")
    return TestClient(app, follow_redirects=False)


@pytest.mark.reliability(
    "Bad input",
    "A run that fails before reading a record: wrong connection id, missing table, "
    "REST endpoint answering 404, wrong password",
)
def test_runs_that_fail_before_any_record_show_in_flowlink_with_the_reason(
    world,
    pg_url,
    tmp_path,
    monkeypatch,
    observe,
):
    """Five real runs of the example's customers touchpoint, each with one mistake: the source connection named
    acc_erpp (not defined in Airflow); the customers table named customerz; a REST source whose endpoint /customerz
    the shop answers with 404; an http connection for the SQL source; the source connection pointing at PostgreSQL
    with a wrong password. Then `flowlink runs`, `flowlink snapshot`, `flowlink feeds` and the Snapshots page."""
    shop, setup = world
    erp, store = setup(customers=5, orders=0)

    def connection(spec):
        spec["source"]["connection"] = "acc_erpp"

    def table(spec):
        spec["touchpoints"][0]["extract"]["table"] = "customerz"

    def endpoint(spec):
        spec["source"] = {"type": "rest", "connection": "demo_shop"}
        spec["touchpoints"][0]["extract"] = {"endpoint": "/customerz", "key": "id", "records_path": "records"}

    def password(spec):
        pg = make_url(pg_url)
        monkeypatch.setenv(
            "AIRFLOW_CONN_DEMO_ERP",
            json.dumps(
                {
                    "conn_type": "postgres",
                    "host": pg.host,
                    "port": pg.port,
                    "login": pg.username,
                    "password": WRONG_PASSWORD,
                    "schema": pg.database,
                }
            ),
        )

    def kind(spec):
        monkeypatch.setenv("AIRFLOW_CONN_DEMO_ERP", json.dumps({"conn_type": "http", "host": "127.0.0.1"}))

    cases = {
        "connection": (connection, "connection 'acc_erpp' isn't defined in Airflow: add it"),
        "table": (table, "no such table 'customerz'"),
        "endpoint": (endpoint, "/customerz: HTTP 404"),
        "type": (kind, "the connection's type 'http' is not a database type Flowlink can read"),
        "password": (password, "password authentication failed for user"),
    }
    failed: dict[str, tuple[str, str]] = {}
    for name, (change, expected) in cases.items():
        publish_variant(store, tmp_path, name, change)
        run, tasks = run_dag()
        assert run.state == "failed" and tasks["customers.extract"] == ("failed", 1), (name, tasks)
        steps = snapshots.run_steps(store, WF, run.run_id)
        assert [(s["touchpoint"], s["step"], s["status"], s["failure"]) for s in steps] == [
            ("customers", "extract", "failed", "step")
        ], (name, steps)
        reason = steps[0]["message"]
        assert expected in reason and "\n" not in reason and WRONG_PASSWORD not in reason, (name, reason)
        failed[name] = (run.run_id, reason)

    listed = {r["run_id"] for r in json.loads(cli("runs", WF, "--json"))}
    assert {run_id for run_id, _ in failed.values()} <= listed
    for run_id, reason in failed.values():
        shown = cli("snapshot", run_id, "--workflow", WF)
        assert "customers" in shown and "extract" in shown and "failed" in shown, shown
        snap = json.loads(cli("snapshot", run_id, "--workflow", WF, "--json"))
        assert [s["message"] for s in snap["steps"]] == [reason]
    entries = json.loads(cli("feeds", "--tag", "run_failed", "--json"))
    assert sorted(e["message"] for e in entries) == sorted(  # URL user names hidden, as alerts do
        f"run {run_id} failed: customers.extract: {scrub(reason)}" for run_id, reason in failed.values()
    )
    assert all(WRONG_PASSWORD not in e["message"] for e in entries)

    page = pages_client().get(f"/ui/snapshots?workflow={WF}")
    assert page.status_code == 200
    for run_id, reason in failed.values():
        row = html.unescape(page.text.split(f'<tr data-run-id="{run_id}">', 1)[1].split("</tr>", 1)[0])
        assert f"customers.extract: {reason}" in row, row
    observe(
        f"{len(failed)} runs failed at customers.extract, each listed by `flowlink runs`, its snapshot step failed with the "
        "reason, 1 feeds entry per run and a Reason cell on the Snapshots page: "
        + "; ".join(f"{name}: '{reason}'" for name, (_, reason) in failed.items())
    )


@pytest.mark.reliability("Faults", "The target goes down in the middle of a load: records left behind, resync")
def test_a_load_failing_as_a_whole_leaves_its_records_unprocessed_with_the_reason_and_resync_completes_them(
    world, proxy_to, monkeypatch, observe
):
    """400 customers go to the shop (batches of 200) through a proxy that goes down (connection refused) when the
    shop receives its 250th write. While Airflow says the failed run is still running, `flowlink resync
    --unprocessed` refuses; once it has ended, the shop is back and the resync run sends them."""
    shop, setup = world
    erp, store = setup(customers=400, orders=0)
    proxy = proxy_to(shop.port)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEMO_SHOP",
        json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{proxy.port}", "extra": SHOP_FAST}),
    )
    shop.on_write = lambda n: proxy.down() if n == 250 else None
    ids = source_order(erp, "customers")

    started = time.monotonic()
    run, tasks = run_dag()
    took = time.monotonic() - started
    assert run.state == "failed" and tasks["customers.load"] == ("failed", 1), tasks
    load = next(s for s in snapshots.run_steps(store, WF, run.run_id) if s["step"] == "load")
    assert load["status"] == "failed" and load["failure"] == "step" and "\n" not in load["message"]
    assert f"127.0.0.1:{proxy.port}" in load["message"], load["message"]
    assert statuses(store, "customers") == {i: "success" for i in ids[:200]} | {i: "unprocessed" for i in ids[200:]}
    expected = f"run {run.run_id}: load failed: {load['message']}"
    left = bucket.rows(store, WF, touchpoint="customers", status="unprocessed", limit=1000)
    assert {r["message"] for r in left} == {expected} and len(left) == 200
    logged = snapshots.data_log_page(
        store, WF, run.run_id, touchpoint="customers", step="load", status="unprocessed", limit=1000
    )
    assert sorted(d["source_id"] for d in logged) == sorted(ids[200:]) and {d["message"] for d in logged} == {expected}
    assert [e["message"] for e in feeds.entries(store, tag="run_failed")] == [
        f"run {run.run_id} failed: customers.load: {load['message']}"
    ]

    # A run that has not ended may still load its records: they are not resynced.
    airflow_state(run.run_id, "running")
    assert cli_fails("resync", WF, "--touchpoint", "customers", "--unprocessed") == (
        f"flowlink resync: no unprocessed records of ended runs in the bucket of {WF}.customers (200 wait for runs "
        f"not ended yet, which may still load them: {run.run_id}): nothing to resync"
    )
    airflow_state(run.run_id, "failed")

    proxy.up()
    before = shop.writes("customers")
    stdout = cli("resync", WF, "--touchpoint", "customers", "--unprocessed")
    resync_id = int(stdout.split("#", 1)[1].split(":", 1)[0])
    assert stdout.startswith(f"resync #{resync_id}: 200 customers records, run "), stdout
    # No scheduler runs here: dag.test runs the resync as the queued run would, with its conf.
    resynced, tasks2 = run_dag({"resync_id": resync_id})
    assert resynced.state == "success", tasks2
    assert statuses(store, "customers") == {i: "success" for i in ids}
    assert sorted(shop.records("customers")) == sorted(ids)  # each customer once (the shop keys by id)
    assert shop.writes("customers") - before == {i: 1 for i in ids[200:]}  # the resync sent exactly those, once
    assert cli_fails("resync", WF, "--touchpoint", "customers", "--unprocessed") == (
        f"flowlink resync: no unprocessed records of ended runs in the bucket of {WF}.customers: nothing to resync"
    )
    observe(
        f"shop down at write 250 of 400: the run failed in {took:.0f} s with customers.load failed "
        f"('{load['message']}'), 200 Success, 200 Unprocessed each with '{expected[:60]}...' in the bucket and "
        f"the data log, 1 feeds entry; `resync --unprocessed` refused while Airflow said running, then sent the "
        f"200 once each: 400 of 400 Success, the shop holds {len(shop.records('customers'))}, duplicates 0"
    )
