"""End to end through Airflow: the example workflow from a SQLite ERP to a REST shop on loopback, via dag.test()."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest

from examples.demo_erp import create as create_erp
from examples.demo_erp import touch
from examples.demo_shop import DemoShop
from flowlink.actions import publish_workflow, request_resync
from flowlink.publish import make_live
from flowlink.store import Store, bucket, snapshots, state
from tests.airflow_helpers import REPO, demo_connections, demo_world, run_dag

CUSTOMERS, ORDERS = 400, 600  # 1,000 records over two touchpoints
COUNTRIES = {"DE": "Germany", "FR": "France", "US": "United States"}
STATUSES = {"N": "new", "S": "shipped", "C": "cancelled"}


@pytest.fixture
def demo(tmp_path, monkeypatch, airflow_db):
    """A fresh Flowlink home, the demo ERP with 1,000 records, the demo shop on loopback, the example published."""
    with demo_world(tmp_path, monkeypatch, CUSTOMERS, ORDERS) as (erp, shop, store):
        published = publish_workflow(store, REPO / "examples" / "erp_to_shop.yaml").result.artifact
        make_live(published)  # what the agent's install step does; deployments are tested in test_deployments.py
        yield erp, shop, store


def erp_rows(erp, table):
    with sqlite3.connect(erp) as conn:
        conn.row_factory = sqlite3.Row
        return {str(r["id"]): dict(r) for r in conn.execute(f"SELECT * FROM {table}")}


def total_writes(shop):
    return sum(shop.writes("customers").values()) + sum(shop.writes("orders").values())


def test_records_arrive_exactly_once_with_mapped_fields_and_a_second_run_sends_nothing(demo):
    erp, shop, store = demo
    run, states = run_dag("erp_to_shop")
    assert run.state == "success", states
    assert set(states.values()) == {"success"}

    customers, orders = shop.records("customers"), shop.records("orders")
    assert len(customers) == CUSTOMERS and len(orders) == ORDERS
    assert set(shop.writes("customers").values()) == {1} and set(shop.writes("orders").values()) == {1}
    for cid, src in erp_rows(erp, "customers").items():
        assert customers[cid] == {
            "id": cid,
            "customer_id": cid,
            "name": f"{src['first_name']} {src['last_name']}",
            "email": src["email"].lower(),
            "country": COUNTRIES.get(src["country_code"], "Other"),
            "channel": "erp",
        }
    for oid, src in erp_rows(erp, "orders").items():
        assert orders[oid]["customer_id"] == str(src["customer_id"])
        assert orders[oid]["total"] == f"{src['amount']:.2f}"
        assert orders[oid]["status"] == STATUSES[src["status"]]

    assert bucket.counts(store, "erp_to_shop") == {("customers", "success"): CUSTOMERS, ("orders", "success"): ORDERS}
    snap = snapshots.snapshot(store, run.run_id)
    by_step = {(s["touchpoint"], s["step"]): s for s in snap["steps"]}
    assert by_step[("customers", "load")]["count_out"] == CUSTOMERS
    assert by_step[("orders", "extract")]["count_in"] == ORDERS
    assert len(by_step[("customers", "extract")]["files"]) == CUSTOMERS // 200  # batch_size 200
    from airflow.utils.net import get_hostname  # Airflow's host name ([core] hostname_callable) of the worker

    # Each step names the worker and queue that ran it (here: this machine, the default queue).
    assert {(s["hostname"], s["queue"]) for s in snap["steps"]} == {(get_hostname(), "default")}
    assert len([d for d in snap["data_log"] if d["step"] == "load"]) == CUSTOMERS + ORDERS
    assert state.watermark(store, "erp_to_shop", "orders") == max(
        r["updated_at"] for r in erp_rows(erp, "orders").values()
    )

    # No source changes: the second run sends nothing.
    before = total_writes(shop)
    run2, states2 = run_dag("erp_to_shop")
    assert run2.state == "success", states2
    assert total_writes(shop) == before
    steps2 = {(s["touchpoint"], s["step"]): s for s in snapshots.snapshot(store, run2.run_id)["steps"]}
    assert steps2[("customers", "extract")]["count_out"] == 0 and steps2[("orders", "load")]["count_in"] == 0

    # Three customers change in the ERP: only they are sent again, as updates (no duplicates).
    touch(erp, "customers", [3, 4, 5])
    run3, _ = run_dag("erp_to_shop")
    assert run3.state == "success"
    assert total_writes(shop) == before + 3
    assert {k for k, n in shop.writes("customers").items() if n == 2} == {"3", "4", "5"}
    assert len(shop.records("customers")) == CUSTOMERS


def test_rejected_records_fail_alone_and_a_resync_completes_them(demo):
    erp, shop, store = demo
    rejected = ["5", "7", "11"]
    shop.reject("customers", rejected, status=422, message="email: blocked by the shop's spam filter")
    run, states = run_dag("erp_to_shop")
    assert run.state == "failed"  # a run with failed records is not green
    assert states["customers.load"] == "failed"
    assert states["orders.load"] in ("failed", "success")  # orders still ran: record failures do not stop it

    failed = {r["source_id"]: r for r in bucket.rows(store, "erp_to_shop", touchpoint="customers", status="failed")}
    assert set(failed) == set(rejected)
    assert all("blocked by the shop's spam filter" in r["message"] and r["tries"] == 1 for r in failed.values())
    assert bucket.count(store, "erp_to_shop", touchpoint="customers", status="success") == CUSTOMERS - 3
    # Orders of the rejected customers are rejected by the shop too (unknown customer), and only those.
    orders_of_rejected = {oid for oid, o in erp_rows(erp, "orders").items() if str(o["customer_id"]) in rejected}
    failed_orders = {
        r["source_id"]: r for r in bucket.rows(store, "erp_to_shop", touchpoint="orders", status="failed", limit=1000)
    }
    assert set(failed_orders) == orders_of_rejected
    assert all("unknown customer" in r["message"] for r in failed_orders.values())
    assert len(shop.records("orders")) == ORDERS - len(orders_of_rejected)

    # The shop is fixed; resync the failed customers, then the failed orders.
    shop.reject("customers", [])
    resync_id, ids = request_resync(store, "erp_to_shop", "customers", failed=True)
    assert sorted(ids) == sorted(rejected)
    run2, states2 = run_dag("erp_to_shop", conf={"resync_id": resync_id})
    assert run2.state == "success", states2
    assert states2["orders.extract"] == "skipped"  # a resync touches only the chosen touchpoint
    assert bucket.count(store, "erp_to_shop", touchpoint="customers", status="failed") == 0
    assert {
        r["source_id"]: r["tries"]
        for r in bucket.rows(store, "erp_to_shop", touchpoint="customers", limit=1000)
        if r["source_id"] in rejected
    } == {i: 2 for i in rejected}

    resync_id, ids = request_resync(store, "erp_to_shop", "orders", failed=True)
    run3, _ = run_dag("erp_to_shop", conf={"resync_id": resync_id})
    assert run3.state == "success"
    assert bucket.counts(store, "erp_to_shop") == {("customers", "success"): CUSTOMERS, ("orders", "success"): ORDERS}
    assert len(shop.records("customers")) == CUSTOMERS and len(shop.records("orders")) == ORDERS
    # Every record was accepted exactly once: the rejected attempts plus one resync each, nothing else.
    writes = shop.writes("customers")
    assert Counter(writes.values()) == Counter({1: CUSTOMERS - 3, 2: 3})
    # Resync runs never move the watermark, and a normal run afterwards sends nothing.
    before = total_writes(shop)
    run4, _ = run_dag("erp_to_shop")
    assert run4.state == "success" and total_writes(shop) == before


def test_a_run_is_failed_when_an_earlier_touchpoint_failed_and_the_last_one_loaded(demo):
    """Airflow sets a run's state from its last tasks: customers failing while orders load must still fail the run."""
    erp, shop, store = demo
    ordered = {str(o["customer_id"]) for o in erp_rows(erp, "orders").values()}
    lonely = sorted(set(erp_rows(erp, "customers")) - ordered)[:2]  # customers without orders: no order fails with them
    assert lonely, "the demo ERP has customers without orders"
    shop.reject("customers", lonely, status=422, message="rejected")
    run, states = run_dag("erp_to_shop")
    assert states["customers.load"] == "failed" and states["orders.load"] == "success"
    assert states["all-loaded"] == "upstream_failed"
    assert run.state == "failed"


@pytest.mark.reliability("Faults", "The target application is unreachable")
def test_unreachable_target_fails_the_run_and_keeps_the_watermark(demo, monkeypatch, observe):
    """The demo shop is stopped (connection refused; the connector retries once) and the example workflow runs."""
    erp, shop, store = demo
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEMO_SHOP",
        json.dumps({"conn_type": "http", "host": shop.url, "extra": {"retries": 1, "backoff": 0.1}}),
    )
    shop.stop()  # the shop is down: connection refused
    run, states = run_dag("erp_to_shop")
    assert run.state == "failed"
    assert states["customers.load"] == "failed"
    assert state.watermark(store, "erp_to_shop", "customers") is None  # the next run reads everything again
    load = next(s for s in snapshots.snapshot(store, run.run_id)["steps"] if s["step"] == "load")
    assert load["status"] == "failed" and "127.0.0.1" in load["message"]
    waiting = bucket.count(store, "erp_to_shop", touchpoint="customers", status="unprocessed")
    assert waiting == CUSTOMERS and bucket.count(store, "erp_to_shop", touchpoint="customers") == CUSTOMERS
    observe(
        f"the run failed at customers.load: '{load['message']}'; watermark not set, the {waiting} extracted "
        f"customers wait Unprocessed in the bucket (none lost, none marked Failed)"
    )


def test_batch_files_can_live_on_object_storage(tmp_path, monkeypatch, airflow_db):
    """FLOWLINK_STAGING_DIR as a URL: the steps hand each other Airflow ObjectStoragePath files (file:// here;
    s3://conn_id@bucket/... in production, with the credentials of that Airflow connection)."""
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    monkeypatch.setenv("FLOWLINK_STAGING_DIR", f"file://{tmp_path}/objects")
    create_erp(tmp_path / "erp.db", customers=30, orders=40)
    with DemoShop() as shop:
        for name, value in demo_connections(tmp_path / "erp.db", shop.url).items():
            monkeypatch.setenv(name, value)
        store = Store.open()
        make_live(publish_workflow(store, REPO / "examples" / "erp_to_shop.yaml").result.artifact)
        run, states = run_dag("erp_to_shop")
        assert run.state == "success", states
        assert len(shop.records("customers")) == 30 and len(shop.records("orders")) == 40
    files = [f for s in snapshots.snapshot(store, run.run_id)["steps"] for f in s["files"]]
    assert files and all(f.startswith(f"file://{tmp_path}/objects/erp_to_shop/") for f in files)
    assert all((tmp_path / "objects").joinpath(f.split("/objects/", 1)[1]).is_file() for f in files)
    assert not (tmp_path / "flowlink" / "staging").exists()
    store.dispose()
