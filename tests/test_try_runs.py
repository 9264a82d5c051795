"""The worker side of the Try page, through Airflow: real runs (dag.test) of Flowlink's `flowlink_try` DAG on tries
recorded in the store, against real sources (the demo ERP on SQLite and on PostgreSQL, json-server from npm).

Each run's result is the page's: the source fields and the mapped output of the newest (or chosen) records, each
record's message, or the try's error when the source cannot be read, and the task fails with that error in its
log. The task instance's queue in Airflow's database is the environment's (flowlink_airflow.policy reads the run's
conf). Nothing is written: no watermark, bucket or data-log row, snapshot, batch file, and no request to the target.
`flowlink.tries.follow` hands an ended try over once, to the user who asked only, and fails a try whose run ended
without its task reporting; `retransform` re-runs only the transform on the records a page already has.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from flowlink import publish, tries
from flowlink.deployments import NotFound, add_environment
from flowlink.errors import FlowlinkError
from flowlink.store import Store
from flowlink.store import tries as rows
from flowlink.store.db import utcnow
from tests.airflow_helpers import demo_world, load_dags
from tests.fixtures import copy_erp_to_postgres
from tests.live_server import free_port
from tests.test_try import EXAMPLE, by_key, customer, erp_rows, nothing_recorded

WF = "erp_to_shop"
NEWEST_CUSTOMERS = "SELECT * FROM customers ORDER BY updated_at DESC, id DESC"
NEWEST_ORDERS = "SELECT * FROM orders ORDER BY updated_at DESC, id DESC"
STOPS_ON = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/">
    <records>
      <xsl:for-each select="records/record">
        <xsl:if test="id = {id}"><xsl:message terminate="yes">order {id} is on hold</xsl:message></xsl:if>
        <record><xsl:copy-of select="@key"/><order_id><xsl:value-of select="id"/></order_id>
          <status><xsl:value-of select="status"/></status></record>
      </xsl:for-each>
    </records>
  </xsl:template>
</xsl:stylesheet>
"""


@pytest.fixture
def world(tmp_path, monkeypatch, airflow_db):
    """The demo ERP (12 customers, 6 orders) and shop with the example's connections, the example published, the
    flowlink_try DAG known to Airflow; yields (erp, shop, store, home)."""
    with demo_world(tmp_path, monkeypatch, customers=12, orders=6) as (erp, shop, store):
        publish.publish(EXAMPLE)
        bag = load_dags()
        assert not bag.import_errors, bag.import_errors
        assert bag.get_dag(tries.TRY_DAG).task_ids == ["fetch"]
        yield erp, shop, store, tmp_path / "flowlink"
    _drop_queued_try_runs()


def _drop_queued_try_runs() -> None:
    """The runs tries.request queues are never run here (no scheduler): leave none to the next test."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == tries.TRY_DAG, DagRun.state == "queued"):
            session.delete(run)


def new_try(
    store: Store,
    content: dict,
    touchpoint: str,
    *,
    version: int | None,
    environment: str | None = None,
    limit: int = 5,
    ids: list[str] | None = None,
    user: str = "alice",
) -> int:
    return rows.create(
        store,
        workflow=content["spec"]["name"],
        version=version,
        touchpoint=touchpoint,
        requested_by=user,
        environment=environment,
        subject=content,
        limit=limit,
        ids=ids,
    )


def run_try(try_id: int, queue: str | None, caplog) -> tuple[str, str, str]:
    """One real run of flowlink_try with the conf tries.request gives it; returns (run state, the task instance's
    queue as Airflow's database holds it, the task's log records as text)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    dag = load_dags().get_dag(tries.TRY_DAG)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run = dag.test(run_conf={"try_id": try_id, "queue": queue})
    log = caplog.text
    with create_session() as session:
        found = session.execute(
            sa.select(TaskInstance.task_id, TaskInstance.state, TaskInstance.queue).where(
                TaskInstance.dag_id == tries.TRY_DAG, TaskInstance.run_id == run.run_id
            )
        ).all()
    assert [ti.task_id for ti in found] == ["fetch"]
    assert found[0].state == run.state, (found, run.state)
    return run.state, found[0].queue, log


def default_queue() -> str:
    from airflow.configuration import conf

    return conf.get("operators", "default_queue")


def followed(store: Store, try_id: int, user: str = "alice") -> rows.Try:
    """The ended try as its page gets it: handed over once, then gone (NotFound)."""
    got = tries.follow(store, try_id, user)
    assert got["status"] in ("success", "failed"), got
    with pytest.raises(NotFound, match=f"no try {try_id} of yours"):
        tries.follow(store, try_id, user)
    assert rows.get(store, try_id) is None
    return got


def no_target_write(shop) -> None:
    assert shop.stats()["writes"] == {r: {"total": 0, "ids": {}} for r in shop.keys}


def draft_of(tmp_path: Path, change) -> str:
    """The example's YAML with `change` applied to its parsed dict: a draft as the page's editor holds it."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    change(spec)
    return yaml.safe_dump(spec, sort_keys=False)


# ---------------------------------------------------------------- SQLite: the newest records, on the env's queue


def test_a_published_version_tried_on_sqlite_runs_on_the_environments_queue_and_writes_nothing(world, caplog):
    erp, shop, store, home = world
    version, content = tries.published_content(WF)
    newest = erp_rows(erp, NEWEST_CUSTOMERS + " LIMIT 3")

    try_id = new_try(store, content, "customers", version=version, environment="site_b", limit=3)
    state, queue, log = run_try(try_id, "site_b", caplog)
    assert (state, queue) == ("success", "site_b")  # the policy put the task on the environment's queue
    assert (
        f"try {try_id} of {WF}.customers: 3 records from sql source demo_erp: table customers; 3 ready, 0 failed, "
        "0 skipped" in log
    )

    # only the user who asked sees it, and they get it once
    with pytest.raises(NotFound):
        tries.follow(store, try_id, "bob")
    got = followed(store, try_id)
    assert (got["status"], got["error"], got["environment"]) == ("success", None, "site_b")
    result = got["result"]
    assert (result["workflow"], result["version"], result["touchpoint"]) == (WF, version, "customers")
    assert result["source"] == "sql source demo_erp: table customers"
    assert result["chosen"] == "the newest 3 records by updated_at"
    assert result["stylesheet"] == content["stylesheets"]["customers"]
    assert [r["key"] for r in result["records"]] == [str(row["id"]) for row in newest]
    for record, row in zip(result["records"], newest, strict=True):
        assert (record["status"], record["message"]) == ("ready", None)
        assert record["source"] == row
        assert record["output"] == [customer(row)]
        assert record["requests"] == [
            {"target": "rest", "method": "PUT", "where": f"/customers/{row['id']}", "body": customer(row), "note": ""}
        ]

    # chosen ids, with no environment: the default queue; an id the source does not have fails as in a resync
    orders = {str(r["id"]): r for r in erp_rows(erp, NEWEST_ORDERS)}
    try_id = new_try(store, content, "orders", version=version, ids=["4", "99", "2"])
    state, queue, _ = run_try(try_id, None, caplog)
    assert (state, queue) == ("success", default_queue())
    result = followed(store, try_id)["result"]
    assert [(r["key"], r["status"]) for r in result["records"]] == [("4", "ready"), ("2", "ready"), ("99", "failed")]
    assert by_key(result)["4"]["source"] == orders["4"]
    assert by_key(result)["99"]["message"] == "not found in the source"

    no_target_write(shop)
    nothing_recorded(home, WF, ["customers", "orders"])

    # the page edits a rule: only the transform runs again, on the records it has
    fetched = [r["source"] for r in got["result"]["records"]]

    def web_channel(spec: dict) -> None:
        spec["touchpoints"][0]["mapping"][-1]["constant"] = "web"
        spec["touchpoints"][0]["mapping"][1] = {"target": "name", "source": "last_name"}

    draft = tries.draft_content(draft_of(home, web_channel))
    started = time.perf_counter()
    again = tries.retransform(tries.subject_of(draft, "customers", None), fetched, store)
    took = time.perf_counter() - started
    print(f"\nretransform of {len(fetched)} records: {took * 1000:.0f} ms")
    assert [r.output for r in again.records] == [
        [{**customer(row), "name": row["last_name"], "channel": "web"}] for row in newest
    ]
    assert [r.source for r in again.records] == newest
    same = tries.retransform(tries.subject_of(content, "customers", version), fetched, store)
    assert [r.output for r in same.records] == [r["output"] for r in got["result"]["records"]]
    no_target_write(shop)
    nothing_recorded(home, WF, ["customers", "orders"])


# ---------------------------------------------------------------- PostgreSQL


def test_a_postgresql_source_and_one_that_cannot_be_reached(world, pg_url, monkeypatch, caplog):
    erp, shop, store, home = world
    base = sa.engine.make_url(pg_url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql('DROP DATABASE IF EXISTS "try_runs_erp" WITH (FORCE)')
        conn.exec_driver_sql('CREATE DATABASE "try_runs_erp"')
    admin.dispose()
    url = base.set(database="try_runs_erp")
    copy_erp_to_postgres(erp, url)
    fields = {
        "conn_type": "postgres",
        "host": url.host,
        "port": url.port,
        "login": url.username,
        "password": url.password,
        "schema": url.database,
    }
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_ERP", json.dumps(fields))
    version, content = tries.published_content(WF)
    newest = erp_rows(erp, NEWEST_CUSTOMERS + " LIMIT 4")

    try_id = new_try(store, content, "customers", version=version, environment="site_b", limit=4)
    state, queue, log = run_try(try_id, "site_b", caplog)
    assert (state, queue) == ("success", "site_b")
    got = followed(store, try_id)
    assert [r["source"] for r in got["result"]["records"]] == newest
    assert [r["output"] for r in got["result"]["records"]] == [[customer(row)] for row in newest]
    assert url.password not in json.dumps(got, default=str) + log

    # a server that does not answer (a closed port): said at once, the task fails with it, no password anywhere
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_ERP", json.dumps({**fields, "port": free_port()}))
    try_id = new_try(store, content, "customers", version=version, environment="site_b")
    state, queue, log = run_try(try_id, "site_b", caplog)
    assert (state, queue) == ("failed", "site_b")
    got = followed(store, try_id)
    assert got["status"] == "failed" and got["result"] is None
    error = got["error"]
    assert error.startswith("cannot connect to postgresql+psycopg://"), error
    assert error.endswith("not tried again"), error  # not for FLOWLINK_UNREACHABLE_AFTER seconds: the page waits
    assert "***" in error and url.password not in error + log
    assert error in log  # the task log says it too
    no_target_write(shop)
    nothing_recorded(home, WF, ["customers"])


# ---------------------------------------------------------------- a REST source, as a draft


def test_a_draft_with_a_rest_source_and_an_endpoint_that_is_not_there(world, tmp_path, monkeypatch, caplog):
    from tests.npm_servers import JsonServer

    erp, shop, store, home = world
    people = [
        {"id": n, "first": f"P{n}", "mail": f" P{n}@Example.com ", "changed": f"2024-05-{n:02d}T10:00:00Z"}
        for n in range(1, 8)
    ]
    draft = yaml.safe_dump(
        {
            "name": "people",
            "source": {"type": "rest", "connection": "people_api"},
            "target": {"type": "rest", "connection": "people_api"},
            "touchpoints": [
                {
                    "name": "people",
                    "extract": {"endpoint": "/people", "key": "id", "incremental": "changed"},
                    "mapping": [
                        {"target": "ref", "source": "id", "type": "integer"},
                        {"target": "email", "source": "mail", "trim": True, "case": "lower"},
                    ],
                    "load": {"endpoint": "/contacts", "key": "ref"},
                },
                {
                    "name": "missing",
                    "extract": {"endpoint": "/nothing-here", "key": "id"},
                    "mapping": [{"target": "ref", "source": "id"}],
                    "load": {"endpoint": "/contacts", "key": "ref"},
                },
            ],
        }
    )
    content = tries.draft_content(draft)
    with JsonServer(tmp_path / "json-server", {"people": people, "contacts": []}, quiet=False) as api:
        monkeypatch.setenv(
            "AIRFLOW_CONN_PEOPLE_API",
            json.dumps({"conn_type": "http", "host": api.url, "login": "me", "password": "s3cret-pw"}),
        )
        try_id = new_try(store, content, "people", version=None, environment="site_b", limit=2)
        state, queue, log = run_try(try_id, "site_b", caplog)
        assert (state, queue) == ("success", "site_b")
        result = followed(store, try_id)["result"]
        assert (result["workflow"], result["version"]) == ("people", None)
        assert [r["key"] for r in result["records"]] == ["7", "6"]
        assert [r["source"] for r in result["records"]] == [people[6], people[5]]
        assert [r["output"] for r in result["records"]] == [
            [{"ref": 7, "email": "p7@example.com"}],
            [{"ref": 6, "email": "p6@example.com"}],
        ]

        # an endpoint the service does not have: its answer is the try's error and the task's
        try_id = new_try(store, content, "missing", version=None, environment="site_b")
        state, queue, log = run_try(try_id, "site_b", caplog)
        assert state == "failed"
        error = followed(store, try_id)["error"]
        assert error.startswith(f"{api.url}: GET /nothing-here: HTTP 404"), error
        assert error in log and "s3cret-pw" not in error + log

        asked = [(method, path) for method, path, _ in api.requests(under="/") if path != "/db"]
        assert {path.split("?")[0] for _, path in asked} == {"/people", "/nothing-here"}
        assert {method for method, _ in asked} == {"GET"}  # nothing went to /contacts
        assert api.records("contacts") == []
    nothing_recorded(home, "people", ["people", "missing"])


# ---------------------------------------------------------------- bad input: a missing table, a breaking record


def test_a_missing_table_fails_the_try_and_a_record_that_breaks_the_stylesheet_fails_alone(world, tmp_path, caplog):
    erp, shop, store, home = world

    def clients(spec: dict) -> None:
        spec["touchpoints"][0]["extract"]["table"] = "clients"

    content = tries.draft_content(draft_of(tmp_path, clients))
    try_id = new_try(store, content, "customers", version=None)
    state, _, log = run_try(try_id, None, caplog)
    assert state == "failed"
    error = followed(store, try_id)["error"]
    assert "no such table 'clients'" in error and error in log

    # a published version whose own stylesheet stops on one record: that record fails with its message, the others
    # are mapped, the try succeeds
    orders = erp_rows(erp, NEWEST_ORDERS + " LIMIT 4")
    breaking = orders[1]["id"]
    (tmp_path / "orders.xsl").write_text(STOPS_ON.replace("{id}", str(breaking)))
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["name"] = "erp_xslt"
    spec["touchpoints"] = [spec["touchpoints"][1]]
    spec["touchpoints"][0].pop("depends_on")
    spec["touchpoints"][0].pop("mapping")
    spec["touchpoints"][0]["xslt"] = "orders.xsl"
    (tmp_path / "erp_xslt.yaml").write_text(yaml.safe_dump(spec))
    publish.publish(tmp_path / "erp_xslt.yaml")
    version, content = tries.published_content("erp_xslt")
    try_id = new_try(store, content, "orders", version=version, limit=4)
    state, _, log = run_try(try_id, None, caplog)
    assert state == "success"
    result = followed(store, try_id)["result"]
    records = by_key(result)
    assert list(records) == [str(r["id"]) for r in orders]
    broken = records[str(breaking)]
    assert (broken["status"], broken["step"], broken["output"]) == ("failed", "transform", [])
    assert f"order {breaking} is on hold" in broken["message"]
    assert broken["source"] == orders[1]
    for row in (orders[0], *orders[2:]):
        record = records[str(row["id"])]
        assert (record["status"], record["source"]) == ("ready", row)
        assert record["output"] == [{"order_id": str(row["id"]), "status": row["status"]}]
    assert "4 records from sql source demo_erp: table orders; 3 ready, 1 failed, 0 skipped" in log
    no_target_write(shop)
    nothing_recorded(home, "erp_xslt", ["orders"])


# ---------------------------------------------------------------- a run that ended without the task reporting


def test_a_requested_try_goes_to_the_primary_environments_queue_and_a_run_that_never_reported_fails_it(world):
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    erp, shop, store, home = world
    add_environment(store, "site_b", "on-premise")  # the first environment: the primary, where a deploy goes
    version, content = tries.published_content(WF)

    asked = tries.request(store, content, "customers", version=version, limit=2, user="alice")
    assert (asked["status"], asked["environment"], asked["requested_by"]) == ("queued", "site_b", "alice")
    run_id = asked["run_id"]
    with create_session() as session:
        run = session.scalar(sa.select(DagRun).where(DagRun.dag_id == tries.TRY_DAG, DagRun.run_id == run_id))
        assert run is not None and run.conf == {"try_id": asked["id"], "queue": "site_b"}
        queues = session.scalars(
            sa.select(TaskInstance.queue).where(TaskInstance.dag_id == tries.TRY_DAG, TaskInstance.run_id == run_id)
        ).all()
    assert queues == ["site_b"]  # created with the run, on the environment's queue

    # no worker serves it here: while the run is queued, the page sees it queued, again and again
    for _ in range(2):
        assert tries.follow(store, asked["id"], "alice")["status"] == "queued"

    with create_session() as session:
        session.execute(
            sa.update(DagRun)
            .where(DagRun.dag_id == tries.TRY_DAG, DagRun.run_id == run_id)
            .values(state="failed", end_date=utcnow())
        )
    got = followed(store, asked["id"])
    assert got["status"] == "failed" and got["result"] is None
    assert got["error"] == (
        f"the flowlink_try run {run_id} is failed but its task never reported: see the run and its task log in Airflow"
    )

    # a run deleted from Airflow before it ran
    asked = tries.request(store, content, "orders", version=version, ids=["1"], user="alice")
    with create_session() as session:
        session.execute(sa.delete(DagRun).where(DagRun.dag_id == tries.TRY_DAG, DagRun.run_id == asked["run_id"]))
    assert followed(store, asked["id"])["error"].startswith(f"the flowlink_try run {asked['run_id']} is deleted")

    # a run that ran but whose try had gone meanwhile (its page took it, or it expired): the task fails, saying so
    gone = new_try(store, content, "customers", version=version)
    rows.finish(store, gone, error="stopped")
    rows.take(store, gone)
    with pytest.raises(FlowlinkError, match=f"try {gone} is gone"):
        tries.run(store, gone, lambda app: pytest.fail("the source is not opened for a try that is gone"))
    no_target_write(shop)
    nothing_recorded(home, WF, ["customers", "orders"])


# ---------------------------------------------------------------- the maintenance DAG purges expired tries


def test_the_maintenance_run_deletes_the_tries_no_page_came_back_for(world):
    from flowlink.store.tables import tries as tries_table
    from tests.airflow_helpers import run_dag

    erp, shop, store, home = world
    version, content = tries.published_content(WF)
    old = new_try(store, content, "customers", version=version)
    new = new_try(store, content, "customers", version=version)
    with store.transaction() as conn:
        conn.execute(
            sa.update(tries_table)
            .where(tries_table.c.id == old)
            .values(created_at=utcnow() - tries.KEEP - dt.timedelta(minutes=1))
        )
    run, states = run_dag("flowlink_maintenance")
    assert run.state == "success", states
    assert rows.get(store, old) is None and rows.get(store, new) is not None
