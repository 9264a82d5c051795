"""Workflows as Airflow assets (issue 17): each load declares the target it writes as an Asset and updates it with the
counts; a `sync: after` workflow runs when another workflow's touchpoint (or any asset) was updated. Spec errors
name the unknown workflow or touchpoint and refuse cycles. The example's two touchpoints split into two workflows,
orders after customers, under a real scheduler (Airflow standalone, LocalExecutor)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from flowlink import assets, publish
from flowlink.schedule import summary
from flowlink.spec import SpecError
from tests.airflow_helpers import REPO, demo_connections, load_dags
from tests.live_server import AirflowServer, wait_for

EXAMPLE = yaml.safe_load((REPO / "examples" / "erp_to_shop.yaml").read_text())
CUSTOMERS_URI = "flowlink://demo_shop/customers"


def split_example(folder: Path, orders_schedule: dict) -> tuple[Path, Path]:
    """shop_customers (the example's customers, manual) and shop_orders (its orders, on ``orders_schedule``)."""
    customers, orders = (dict(tp) for tp in EXAMPLE["touchpoints"])
    orders.pop("depends_on")
    specs = {
        "shop_customers": dict(EXAMPLE, name="shop_customers", schedule={"sync": "manual"}, touchpoints=[customers]),
        "shop_orders": dict(EXAMPLE, name="shop_orders", schedule=orders_schedule, touchpoints=[orders]),
    }
    for name, spec in specs.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "shop_customers.yaml", folder / "shop_orders.yaml"


AFTER_CUSTOMERS = {"sync": "after", "after": [{"workflow": "shop_customers", "touchpoint": "customers"}]}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    return tmp_path / "flowlink"


def test_a_loads_asset_uri_names_the_application_and_its_target_as_airflow_keeps_it():
    from airflow.sdk import Asset

    cases = {
        ("demo_shop", "endpoint", "/customers"): "flowlink://demo_shop/customers",
        ("demo_shop", "endpoint", "/v2/customers/"): "flowlink://demo_shop/v2/customers",
        ("erp", "table", "public.customers"): "flowlink://erp/public.customers",
        ("exports", "file", "customers export.csv"): "flowlink://exports/customers%20export.csv",
        ("api", "endpoint", "/items?b=2&a=1"): "flowlink://api/items?a=1&b=2",
    }
    for (connection, key, where), uri in cases.items():
        assert assets.target_uri(connection, {key: where}) == uri
        assert Asset(uri).uri == uri  # Airflow keeps it as it is
    for uri in ("S3://bucket/orders.csv/", "postgres://db:5432/shop/public/orders", "x-app://a/b?z=1&y=2#frag"):
        assert assets.normalize(uri) == Asset(uri).uri


def test_sync_after_resolves_to_asset_uris_when_published_and_every_mistake_is_named(home, tmp_path):
    customers_spec, orders_spec = split_example(tmp_path, AFTER_CUSTOMERS)
    with pytest.raises(SpecError, match=r"schedule\.after\[0\]\.workflow: unknown workflow 'shop_customers'"):
        publish.publish(orders_spec)  # what it runs after is not published yet
    assert not (home / "published" / "shop_orders").exists()

    validate = subprocess.run(
        [str(Path(sys.executable).parent / "flowlink"), "validate", str(orders_spec)], capture_output=True, text=True
    )
    assert validate.returncode == 1 and "schedule.after[0].workflow: unknown workflow" in validate.stderr

    first = publish.publish(customers_spec).artifact
    assert first.after == () and "after" not in first.spec["schedule"]  # other specs' files are unchanged
    art = publish.publish(orders_spec).artifact
    assert art.after == (CUSTOMERS_URI,)
    assert summary(art.workflow_model().schedule) == "after shop_customers.customers"

    bad = dict(AFTER_CUSTOMERS, after=[{"workflow": "shop_customers", "touchpoint": "orders"}, {"asset": "nope"}])
    _, orders_spec = split_example(tmp_path, bad)
    with pytest.raises(SpecError) as err:
        publish.publish(orders_spec)
    assert err.value.problems == [
        ("schedule.after[1].asset", "'nope' is not an asset URI: scheme://..., e.g. s3://bucket/orders.csv")
    ]
    bad["after"] = bad["after"][:1]
    _, orders_spec = split_example(tmp_path, bad)
    with pytest.raises(SpecError) as err:
        publish.publish(orders_spec)
    assert err.value.problems == [
        (
            "schedule.after[0].touchpoint",
            "workflow 'shop_customers' has no touchpoint 'orders' (its touchpoints: customers)",
        )
    ]
    for schedule, where, reason in [
        ({"sync": "after"}, "schedule.after", "sync: after needs after"),
        (dict(AFTER_CUSTOMERS, repeat="hourly"), "schedule.repeat", "not on a clock: no repeat"),
        ({"sync": "manual", "after": AFTER_CUSTOMERS["after"]}, "schedule.after", "not sync: manual"),
        ({"sync": "after", "after": [{"workflow": "shop_customers"}]}, "schedule.after[0].touchpoint", "which"),
        ({"sync": "after", "after": [{"asset": "airflow://x"}]}, "schedule.after[0].asset", "reserved"),
    ]:
        _, orders_spec = split_example(tmp_path, schedule)
        with pytest.raises(SpecError) as err:
            publish.publish(orders_spec)
        assert [p for p, _ in err.value.problems] == [where] and reason in err.value.problems[0][1], err.value
    assert [p.name for p in publish.versions("shop_orders")] == ["shop_orders-v0001.json"]


def test_workflows_scheduled_after_each_other_in_a_cycle_are_refused(home, tmp_path):
    customers_spec, orders_spec = split_example(tmp_path, AFTER_CUSTOMERS)
    publish.publish(customers_spec)
    publish.publish(orders_spec)
    # customers after orders, which is after customers: refused, naming the cycle
    spec = yaml.safe_load(customers_spec.read_text())
    spec["schedule"] = {"sync": "after", "after": [{"workflow": "shop_orders", "touchpoint": "orders"}]}
    customers_spec.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as err:
        publish.publish(customers_spec)
    assert err.value.problems == [
        (
            "schedule.after",
            "workflows scheduled after each other make a cycle: shop_customers -> shop_orders -> shop_customers",
        )
    ]
    # the same cycle through an asset URI, and a workflow after its own load
    spec["schedule"]["after"] = [{"asset": "flowlink://demo_shop/orders/"}]
    customers_spec.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="shop_customers -> shop_orders -> shop_customers"):
        publish.publish(customers_spec)
    spec["schedule"]["after"] = [{"workflow": "shop_customers", "touchpoint": "customers"}]
    customers_spec.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="make a cycle: shop_customers -> shop_customers"):
        publish.publish(customers_spec)
    assert len(publish.versions("shop_customers")) == 1
    # after an asset nobody here writes: fine
    spec["schedule"]["after"] = [{"asset": "s3://landing/customers.csv"}]
    customers_spec.write_text(yaml.safe_dump(spec))
    assert publish.publish(customers_spec).artifact.after == ("s3://landing/customers.csv",)


def test_the_dag_of_a_sync_after_workflow_is_scheduled_on_the_asset_every_load_writes(home, tmp_path, airflow_db):
    from airflow.sdk import Asset
    from airflow.sdk.definitions.asset import AssetAll

    for spec in split_example(tmp_path, AFTER_CUSTOMERS):
        publish.make_live(publish.publish(spec).artifact)
    bag = load_dags()
    assert not bag.import_errors
    customers, orders = bag.dags["shop_customers"], bag.dags["shop_orders"]
    assert customers.get_task("customers.load").outlets == [Asset(CUSTOMERS_URI)]
    assert orders.get_task("orders.load").outlets == [Asset("flowlink://demo_shop/orders")]
    assert [t.outlets for t in orders.tasks if t.task_id != "orders.load"] == [[], [], []]
    assert orders.timetable.asset_condition == AssetAll(Asset(CUSTOMERS_URI))
    assert "* schedule: after shop_customers.customers" in orders.doc_md


# ----------------------------------------------------------------------------------- Airflow standalone (real runs)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    shop = DemoShop()
    shop.start()
    create_erp(root / "erp.db", customers=8, orders=6)
    server = AirflowServer(root, demo_connections(root / "erp.db", shop.url))
    try:
        split_example(root, AFTER_CUSTOMERS)
        yield server, shop, root
    finally:
        server.stop()
        shop.stop()


def runs_of(server, dag_id: str) -> list[dict]:
    return server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after").json()["dag_runs"]


def test_a_load_updates_its_asset_and_the_workflow_after_it_runs(standalone):
    """shop_orders has no clock: it runs after shop_customers' load updated flowlink://demo_shop/customers, whose
    event carries the counts. An idle run of shop_customers (nothing new: its load is skipped) updates nothing, and
    shop_orders does not run again."""
    server, shop, root = standalone
    server.put_live(root / "shop_customers.yaml", root / "shop_orders.yaml")
    dag = server.api("GET", "/api/v2/dags/shop_orders/details").json()
    assert dag["timetable_summary"] == "Asset" and CUSTOMERS_URI in str(dag["asset_expression"]), dag
    assert runs_of(server, "shop_orders") == []

    def run_customers() -> str:
        r = server.api("POST", "/api/v2/dags/shop_customers/dagRuns", json={"logical_date": None})
        assert r.ok, r.text
        run_id = r.json()["dag_run_id"]
        return wait_for(
            "shop_customers' run",
            lambda: (s := server.run_state("shop_customers", run_id)) in ("success", "failed") and s,
            timeout=240,
            every=1,
        )

    assert run_customers() == "success"
    asset = server.api("GET", "/api/v2/assets", params={"uri_pattern": "demo_shop/customers"}).json()["assets"]
    assert [a["uri"] for a in asset] == [CUSTOMERS_URI]
    events = server.api("GET", "/api/v2/assets/events", params={"asset_id": asset[0]["id"]}).json()["asset_events"]
    assert len(events) == 1 and events[0]["source_dag_id"] == "shop_customers", events
    assert events[0]["source_task_id"] == "customers.load"
    assert events[0]["extra"] == {
        "workflow": "shop_customers",
        "touchpoint": "customers",
        "version": 1,
        "loaded": 8,
        "failed": 0,
    }

    orders_run = wait_for(
        "shop_orders' run after the asset event",
        lambda: (runs := runs_of(server, "shop_orders")) and runs[0]["state"] in ("success", "failed") and runs[0],
        timeout=240,
        every=1,
    )
    assert orders_run["state"] == "success" and orders_run["run_type"] == "asset_triggered", orders_run
    assert len(shop.records("orders")) == 6  # every order found its customer

    assert run_customers() == "success"  # nothing new: customers' load is skipped, no event
    time.sleep(10)  # the scheduler checks asset events every second here
    events = server.api("GET", "/api/v2/assets/events", params={"asset_id": asset[0]["id"]}).json()["asset_events"]
    assert len(events) == 1 and len(runs_of(server, "shop_orders")) == 1
