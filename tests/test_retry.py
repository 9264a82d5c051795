"""Automatic retry of Failed records: real runs of the example workflow (dag.test) against the demo shop on
loopback, and real runs of the flowlink_retry DAG, whose TriggerDagRunOperator queues the retry runs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from dataclasses import replace

import pytest
from sqlalchemy import update

from flowlink import deployments, retry
from flowlink.actions import publish_workflow
from flowlink.errors import FlowlinkError
from flowlink.publish import make_live
from flowlink.store import Store, bucket, feeds, snapshots, state
from flowlink.store.db import utcnow
from flowlink.store.tables import bucket as bucket_table
from flowlink.store.tables import environments
from tests.airflow_helpers import REPO, demo_world, run_dag

WF = "erp_to_shop"
CUSTOMERS, ORDERS = 40, 60


@pytest.fixture
def demo(tmp_path, monkeypatch, airflow_db):
    """A fresh Flowlink home with a primary environment, the demo ERP, the demo shop, the example live."""
    with demo_world(tmp_path, monkeypatch, CUSTOMERS, ORDERS) as (erp, shop, store):
        deployments.add_environment(store, "cloud", "cloud")
        make_live(publish_workflow(store, REPO / "examples" / "erp_to_shop.yaml").result.artifact)
        yield erp, shop, store
    _drop_queued_runs()


def _drop_queued_runs() -> None:
    """The retry runs the tests queue are never run by a scheduler: leave none to the next test."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == WF, DagRun.state == "queued"):
            session.delete(run)


def age(store: Store, minutes: float) -> None:
    """Every record's last try moves `minutes` into the past (instead of waiting)."""
    with store.engine.begin() as conn:
        conn.execute(update(bucket_table).values(updated_at=utcnow() - dt.timedelta(minutes=minutes)))


def failed(store: Store, touchpoint: str) -> dict[str, int]:
    """source id -> tries of the touchpoint's Failed records."""
    return {
        r["source_id"]: r["tries"] for r in bucket.rows(store, WF, touchpoint=touchpoint, status="failed", limit=10_000)
    }


def retry_pass(force: bool = True) -> tuple[str, dict, list]:
    """One real run of the flowlink_retry DAG; returns (its state, task states, the workflow runs it queued)."""
    from airflow.models.dagrun import DagRun

    before = {r.run_id for r in DagRun.find(dag_id=WF)}
    run, states = run_dag("flowlink_retry", conf={"force": force})
    queued = sorted((r for r in DagRun.find(dag_id=WF) if r.run_id not in before), key=lambda r: r.run_id)
    return run.state, states, queued


def run_retry(store: Store, queued) -> dict[str, tuple]:
    """Run the workflow with the conf each queued retry run carries, in the order they were planned.

    dag.test() cannot run an existing queued run, so it runs a new one with the same conf; the request is then
    pointed at that run (in production the queued run itself runs, under the id the retry DAG gave it)."""
    done = {}
    for queued_run in sorted(queued, key=lambda r: r.conf["resync_id"]):
        conf = dict(queued_run.conf)
        assert conf["retry"] is True
        req = state.resync(store, conf["resync_id"])
        run, states = run_dag(WF, conf=conf)
        with store.engine.begin() as conn:
            state.attach_run(conf["resync_id"], run.run_id, conn)
        done[req["touchpoint"]] = (run, states, req)
    return done


@pytest.mark.reliability("Faults", "Failed records are retried automatically")
def test_failed_records_are_retried_after_the_wait_up_to_the_maximum(demo, observe):
    """The shop rejects 3 of 40 customers (and so their orders); the environment allows 3 tries with a 30-minute
    wait. The hourly flowlink_retry DAG is run for real (dag.test): before the wait it starts nothing; after it
    (the records' last try moved back 31 minutes) it queues one Airflow run per touchpoint with conf
    {"resync_id", "retry": true}, and those runs send only the Failed records. One customer is accepted on the
    second retry; the two others reach 3 tries, stay Failed, are not picked up again and are listed as
    exhausted. Raising the maximum to 4 and fixing the shop, the next retry completes them: every record in the
    shop once, the bucket all Success."""
    erp, shop, store = demo
    deployments.set_environment(store, "cloud", retry_max_tries=3, retry_wait_minutes=30)
    shop.reject("customers", ["5", "7", "11"], status=422, message="email: blocked by the spam filter")

    sync, _ = run_dag(WF)
    assert sync.state == "failed"
    assert failed(store, "customers") == {"5": 1, "7": 1, "11": 1}
    orders_failed = failed(store, "orders")
    assert orders_failed and set(orders_failed.values()) == {1}  # the orders of the rejected customers
    writes_after_sync = sum(shop.writes("customers").values()) + sum(shop.writes("orders").values())

    # Before the wait: the retry DAG runs and starts nothing.
    run_state, states, queued = retry_pass()
    assert run_state == "success", states
    assert queued == [] and states["trigger"] == "skipped"
    assert feeds.entries(store, tag="retry") == []

    # After the wait: one retry run per touchpoint, limited to its Failed records.
    age(store, 31)
    run_state, states, queued = retry_pass()
    assert run_state == "success", states
    assert len(queued) == 2 and all(r.run_id.startswith("retry__") and r.state == "queued" for r in queued)
    chosen = {
        state.resync(store, r.conf["resync_id"])["touchpoint"]: state.resync(store, r.conf["resync_id"]) for r in queued
    }
    assert sorted(chosen["customers"]["source_ids"]) == ["11", "5", "7"]
    assert sorted(chosen["orders"]["source_ids"]) == sorted(orders_failed)
    assert {req["kind"] for req in chosen.values()} == {"retry"}
    assert {req["run_id"] for req in chosen.values()} == {r.run_id for r in queued}  # noted by the `started` task
    assert len(feeds.entries(store, tag="retry")) == 2
    # Nothing else is chosen while those runs are queued: the next pass leaves both touchpoints alone.
    age(store, 31)
    assert retry.plan(store, force=True) == []
    done = run_retry(store, queued)
    customers_run, customer_states, _ = done["customers"]
    assert customer_states["orders.extract"] == "skipped"  # a retry touches only its touchpoint
    assert failed(store, "customers") == {"5": 2, "7": 2, "11": 2}
    assert failed(store, "orders") == {k: 2 for k in orders_failed}
    first_retry_writes = (
        sum(shop.writes("customers").values()) + sum(shop.writes("orders").values()) - writes_after_sync
    )
    assert first_retry_writes == 3 + len(orders_failed)  # only the Failed records were sent again
    steps = {(s["touchpoint"], s["step"]): s for s in snapshots.snapshot(store, customers_run.run_id)["steps"]}
    assert steps[("customers", "extract")]["count_out"] == 3
    assert {r["run_id"]: r["kind"] for r in snapshots.runs(store, WF)} == {
        sync.run_id: "sync",
        customers_run.run_id: "retry",
        done["orders"][0].run_id: "retry",
    }

    # Right after a try, nothing is eligible: the wait holds.
    assert retry.plan(store, force=True) == []

    # The shop accepts customer 11 now; the second retry completes it and its orders.
    shop.reject("customers", [])  # (rejections add up: clear, then reject only 5 and 7)
    shop.reject("customers", ["5", "7"], status=422, message="email: blocked by the spam filter")
    age(store, 31)
    run_retry(store, retry_pass()[2])
    assert failed(store, "customers") == {"5": 3, "7": 3}
    orders_of_5_7 = {k for k in orders_failed if k in failed(store, "orders")}
    assert failed(store, "orders") == {k: 3 for k in orders_of_5_7} and orders_of_5_7 < set(orders_failed)
    assert shop.writes("customers")["11"] == 3 and "11" in shop.records("customers")

    # At the maximum: still Failed, not picked up again, named as exhausted.
    age(store, 31)
    run_state, states, queued = retry_pass()
    assert run_state == "success" and queued == []
    exhausted = retry.exhausted(store, WF)
    assert [(e["touchpoint"], e["source_id"], e["tries"]) for e in exhausted if e["touchpoint"] == "customers"] == [
        ("customers", "5", 3),
        ("customers", "7", 3),
    ]
    assert {e["source_id"] for e in exhausted if e["touchpoint"] == "orders"} == orders_of_5_7
    assert all("spam filter" in e["message"] for e in exhausted if e["touchpoint"] == "customers")
    assert retry.exhausted(store) == exhausted  # over every workflow

    # A fourth try allowed and the shop fixed: the next retry completes them.
    deployments.set_environment(store, "cloud", retry_max_tries=4)
    shop.reject("customers", [])
    assert retry.exhausted(store, WF) == []
    run_retry(store, retry_pass()[2])
    assert bucket.counts(store, WF) == {("customers", "success"): CUSTOMERS, ("orders", "success"): ORDERS}
    assert len(shop.records("customers")) == CUSTOMERS and len(shop.records("orders")) == ORDERS
    writes = shop.writes("customers")
    assert Counter(writes.values()) == Counter({1: CUSTOMERS - 3, 3: 1, 4: 2})  # tries, the rejected ones included
    age(store, 31)
    assert retry.plan(store, force=True) == []
    observe(
        f"3 of {CUSTOMERS} customers and {len(orders_failed)} of {ORDERS} orders Failed with tries 1; before "
        f"the 30-minute wait the retry DAG queued 0 runs, after it 2 (one per touchpoint) sending only those "
        f"{first_retry_writes} records; a pass while they were queued chose nothing; customer 11 succeeded on try 3; "
        f"customers 5 and 7 and {len(orders_of_5_7)} orders stopped at the maximum of 3 tries, were not "
        f"picked up again and were listed as exhausted; with 4 tries allowed and the shop fixed the next retry "
        f"completed them: {CUSTOMERS} customers and {ORDERS} orders Success, each in the shop once"
    )


def test_batch_size_takes_the_oldest_failures_first(demo):
    erp, shop, store = demo
    shop.reject("customers", ["3", "4", "5", "6", "7"], status=422, message="email: refused")
    run_dag(WF)
    deployments.set_environment(store, "cloud", retry_batch_size=2, retry_wait_minutes=10)
    with store.engine.begin() as conn:  # 7 failed longest ago, then 3
        for sid, minutes in (("7", 50), ("3", 40), ("4", 30), ("5", 20), ("6", 5)):
            conn.execute(
                update(bucket_table)
                .where(
                    bucket_table.c.workflow == WF,
                    bucket_table.c.source_id == sid,
                    bucket_table.c.touchpoint == "customers",
                )
                .values(updated_at=utcnow() - dt.timedelta(minutes=minutes))
            )
    pol = retry.policy(store, WF)
    assert retry.eligible(store, WF, "customers", pol) == ["7", "3"]
    assert retry.eligible(store, WF, "customers", pol, now=utcnow() + dt.timedelta(hours=1)) == ["7", "3"]
    wide = retry.Policy(max_tries=4, wait_minutes=10, batch_size=100, every="hourly")
    assert retry.eligible(store, WF, "customers", wide) == ["7", "3", "4", "5"]  # 6 has waited only 5 minutes


def test_policy_from_the_environment_and_overridden_by_the_spec(demo, tmp_path):
    erp, shop, store = demo
    assert retry.policy(store, WF) == retry.Policy(4, 60, 500, "hourly", environment="cloud")  # the defaults
    deployments.add_environment(store, "site_b", "on-premise")
    deployments.set_environment(
        store, "site_b", retry_max_tries=6, retry_wait_minutes=5, retry_batch_size=50, retry_every="daily"
    )
    # Live in the root folder: the primary environment's settings; in live/site_b/: site_b's.
    live = tmp_path / "flowlink" / "live"
    (live / "site_b").mkdir()
    shutil.move(live / f"{WF}.json", live / "site_b" / f"{WF}.json")
    assert retry.policy(store, WF) == retry.Policy(6, 5, 50, "daily", environment="site_b")

    # The spec's retry section overrides key by key.
    spec = (REPO / "examples" / "erp_to_shop.yaml").read_text()
    custom = tmp_path / "erp_to_shop.yaml"
    custom.write_text(spec + "retry:\n  max_tries: 2\n  every: hourly\n")
    art = publish_workflow(store, custom).result.artifact
    assert art.spec["retry"]["max_tries"] == 2
    pol = retry.policy(store, art, "site_b")
    assert pol == retry.Policy(2, 5, 50, "hourly", environment="site_b", from_spec=("every", "max_tries"))
    # A spec without retry: section publishes as before (no `retry: null` in the file, the same checksum).
    assert "retry" not in publish_workflow(store, REPO / "examples" / "erp_to_shop.yaml").result.artifact.spec


def test_hourly_and_daily_passes(demo):
    erp, shop, store = demo
    now = utcnow()
    pol = retry.policy(store, WF)
    due = lambda **changes: retry.workflow_due(store, WF, replace(pol, **changes), now)  # noqa: E731
    assert pol.environment == "cloud" and pol.last_retry_at is None and due()
    assert due(last_retry_at=now - dt.timedelta(minutes=58))  # hourly
    assert not due(last_retry_at=now - dt.timedelta(minutes=30))
    assert not due(every="daily", last_retry_at=now - dt.timedelta(hours=12))
    assert due(every="daily", last_retry_at=now - dt.timedelta(hours=23, minutes=58))  # the same hour
    assert due(environment=None, last_retry_at=None)  # no environment: the defaults, due

    # A pass sets last_retry_at; a daily environment is then skipped until the next day.
    shop.reject("customers", ["9"])
    run_dag(WF)
    age(store, 61)
    deployments.set_environment(store, "cloud", retry_every="daily")
    with store.engine.begin() as conn:
        conn.execute(update(environments).values(last_retry_at=now - dt.timedelta(hours=3)))
    assert retry.plan(store, now) == []  # not due: the failed customer waits for tomorrow's pass
    tomorrow = now + dt.timedelta(hours=21)
    planned = retry.plan(store, tomorrow)
    assert [(p["touchpoint"], p["count"]) for p in planned] == [
        ("customers", 1),
        ("orders", len(failed(store, "orders"))),
    ]
    assert deployments.environment(store, "cloud")["last_retry_at"] == tomorrow
    assert all(p["conf"] == {"resync_id": p["resync_id"], "retry": True} for p in planned)
    assert retry.settle(store, planned, [planned[0]["run_id"]]) == [planned[1]]  # the second could not start
    assert state.resync(store, planned[0]["resync_id"])["run_id"] == planned[0]["run_id"]
    with pytest.raises(FlowlinkError):
        state.resync(store, planned[1]["resync_id"])  # taken back: its records are chosen again next time

    # A spec's own `every: daily` counts from the workflow's last retry.
    pol = retry.Policy(4, 60, 500, "daily", environment="cloud", from_spec=("every",))
    assert not retry.workflow_due(store, WF, pol, tomorrow + dt.timedelta(hours=2))
    assert retry.workflow_due(store, WF, pol, utcnow() + dt.timedelta(days=1))


def test_no_retry_while_a_deployment_is_pending(demo):
    erp, shop, store = demo
    shop.reject("customers", ["2"])
    run_dag(WF)
    age(store, 61)
    deployments.deploy(store, WF)  # pending until its agent reports
    assert retry.plan(store, force=True) == []
    assert failed(store, "customers") == {"2": 1}


def test_a_retry_run_queues_behind_a_running_sync(demo):
    """The workflow DAG allows one active run (max_active_runs=1): Airflow's own scheduler query does not start
    a queued retry run while a sync of the workflow runs, starts it once the sync ended, and, the other way
    round, starts no other run of the workflow while a retry run runs."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    erp, shop, store = demo
    shop.reject("customers", ["4"])
    sync, _ = run_dag(WF)
    age(store, 61)
    _, _, queued = retry_pass()
    assert len(queued) == 2

    def startable(session) -> set[str]:
        return {r.run_id for r in DagRun.get_queued_dag_runs_to_set_running(session) if r.dag_id == WF}

    with create_session() as session:
        assert session.get(DagModel, WF).max_active_runs == 1
        session.get(DagModel, WF).is_paused = False
        for r in session.query(DagRun).filter(DagRun.run_id.in_([q.run_id for q in queued])):
            assert r.note.startswith("automatic retry #")  # shown on the run in the Airflow UI
            # The query starts runs whose run_after <= now(); on SQLite now() has whole seconds only.
            r.run_after -= dt.timedelta(seconds=5)
        running = session.query(DagRun).filter(DagRun.dag_id == WF, DagRun.run_id == sync.run_id).one()
        running.state = DagRunState.RUNNING  # a sync is running
        session.flush()
        assert startable(session) == set()
        running.state = DagRunState.SUCCESS  # the sync ended
        session.flush()
        assert startable(session) == {r.run_id for r in queued}
        retrying = session.query(DagRun).filter(DagRun.dag_id == WF, DagRun.run_id == queued[0].run_id).one()
        retrying.state = DagRunState.RUNNING  # a retry is running: nothing else of the workflow starts
        session.flush()
        assert startable(session) == set()
        session.rollback()  # the metadata database as it was


def test_env_set_retry_settings_with_clear_errors(store, capsys):
    from flowlink import cli

    deployments.add_environment(store, "cloud", "cloud")
    for args, message in (
        (["--retry-max-tries", "0"], "retry max tries must be a whole number from 1 to 20 tries, got 0"),
        (["--retry-max-tries", "21"], "from 1 to 20 tries, got 21"),
        (["--retry-wait", "10081"], "retry wait minutes must be a whole number from 0 to 10080 minutes"),
        (["--retry-batch-size", "0"], "retry batch size must be a whole number from 1 to 100000 records"),
    ):
        assert cli.main(["env", "set", "cloud", *args]) == 1
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a choice
        cli.main(["env", "set", "cloud", "--retry-every", "weekly"])
    assert "invalid choice: 'weekly'" in capsys.readouterr().err
    assert cli.main(["env", "set", "cloud"]) == 1
    assert "--retry-max-tries N" in capsys.readouterr().err
    with pytest.raises(FlowlinkError, match="retry every must be hourly or daily"):
        deployments.set_environment(store, "cloud", retry_every="weekly")

    assert (
        cli.main(
            [
                "env",
                "set",
                "cloud",
                "--retry-max-tries",
                "6",
                "--retry-wait",
                "0",
                "--retry-batch-size",
                "100",
                "--retry-every",
                "daily",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert cli.main(["env", "list"]) == 0
    assert "daily: 6 tries, wait 0 min, 100 per run" in capsys.readouterr().out
    assert cli.main(["env", "list", "--json"]) == 0
    env = json.loads(capsys.readouterr().out)[0]
    assert {k: env[k] for k in ("retry_max_tries", "retry_wait_minutes", "retry_batch_size", "retry_every")} == {
        "retry_max_tries": 6,
        "retry_wait_minutes": 0,
        "retry_batch_size": 100,
        "retry_every": "daily",
    }
    assert retry.policy(store, WF) == retry.Policy(6, 0, 100, "daily", environment="cloud")  # not published: env only


def test_snapshots_page_and_runs_mark_retries(home, store, app, auth_manager, capsys):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from flowlink import cli, publish

    publish.publish(REPO / "examples" / "erp_to_shop.yaml")
    for run_id in ("scheduled__1", "manual__2", "retry__3"):
        snapshots.start_step(store, WF, run_id, 1, "customers", "extract")
        snapshots.finish_step(store, WF, run_id, "customers", "extract", status="success")
    with store.engine.begin() as conn:
        state.attach_run(state.create_resync(WF, "customers", ["1"], conn), "manual__2", conn)
        state.attach_run(state.create_resync(WF, "customers", ["2"], conn, kind="retry"), "retry__3", conn)
    assert {r["run_id"]: r["kind"] for r in snapshots.runs(store, WF)} == {
        "scheduled__1": "sync",
        "manual__2": "resync",
        "retry__3": "retry",
    }

    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="admin", role="admin")
    try:
        client = TestClient(app, follow_redirects=False)
        page = client.get(f"/ui/snapshots?workflow={WF}")
        assert page.status_code == 200
        assert page.text.count('data-kind="retry"') == 1 and page.text.count('data-kind="resync"') == 1
        one = client.get(f"/ui/snapshot?workflow={WF}&run_id=retry__3")
        assert one.status_code == 200 and 'data-kind="retry">retry</span></h1>' in one.text
        assert "data-kind" not in client.get(f"/ui/snapshot?workflow={WF}&run_id=scheduled__1").text
    finally:
        app.dependency_overrides.clear()
    assert cli.main(["runs", WF]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if "__" in line}
    assert lines["retry__3"].rstrip(" │").endswith("retry") and lines["manual__2"].rstrip(" │").endswith("resync")
