"""OpenLineage (issue 17): with Airflow's OpenLineage provider configured (its file transport here), a real run of the
example (demo ERP in SQLite -> demo shop over REST) reports each extract's source and each load's source and target,
the target with the mapping as column lineage; without a transport the provider stays disabled and nothing is sent.

Each run is `dag.test()` in a process of its own: the provider decides at start-up, from the configuration, whether
its listener is installed (as in a real worker); the listener calls the operators in a process forked from the
task's, as under the scheduler."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from examples.demo_erp import touch
from flowlink.actions import publish_workflow
from flowlink.lineage import Dataset, column_lineage, rest_dataset, source, sql_dataset, target, xpath_fields
from flowlink.publish import make_live
from flowlink.spec import load_spec
from tests.airflow_helpers import REPO, demo_world

EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"
PASSWORD = "pw-Lineage-7f3a"  # the shop connection's: never in an event
RUN = """
import json, sys
from tests.airflow_helpers import run_dag
run, states = run_dag("erp_to_shop")
from airflow.providers.openlineage import conf
from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin as plugin
print("RESULT " + json.dumps({
    "state": str(run.state), "states": {k: str(v) for k, v in states.items()}, "disabled": conf.is_disabled(),
    "listeners": [type(listener).__name__ for listener in plugin.listeners],
    "client_imported": "openlineage.client" in sys.modules,
}))
"""


@pytest.fixture
def demo(tmp_path, monkeypatch, airflow_db):
    """The example published and live, the demo ERP (5 customers, 7 orders), the demo shop behind basic auth."""
    with demo_world(tmp_path, monkeypatch, 5, 7) as (erp, shop, store):
        monkeypatch.setenv(
            "AIRFLOW_CONN_DEMO_SHOP",
            json.dumps({"conn_type": "http", "host": shop.url, "login": "shop-user", "password": PASSWORD}),
        )
        make_live(publish_workflow(store, EXAMPLE).result.artifact)
        yield erp, shop


def run_example(**env: str) -> dict:
    """One real run of the example in a fresh process with this environment (OpenLineage settings removed first)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE__"))}
    done = subprocess.run(
        [sys.executable, "-c", RUN], env={**clean, **env}, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert done.returncode == 0 and line, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["state"] == "success" and set(result["states"].values()) == {"success"}, result
    return result


def completed(events: list[dict], task: str) -> dict:
    found = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"erp_to_shop.{task}"]
    assert len(found) == 1, [(e["eventType"], e["job"]["name"]) for e in events]
    return found[0]


def names(datasets: list[dict]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def test_a_run_reports_erp_tables_to_shop_endpoints_with_the_mapping_as_column_lineage(demo, tmp_path):
    erp, shop = demo
    log = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(log), "append": True}
    result = run_example(AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(transport))
    assert not result["disabled"] and result["listeners"] == ["OpenLineageListener"]
    assert len(shop.records("customers")) == 5 and len(shop.records("orders")) == 7  # the records did arrive

    text = log.read_text()
    assert PASSWORD not in text and "shop-user" not in text
    events = [json.loads(line) for line in text.splitlines()]
    erp_ns, shop_ns = f"sqlite://{erp}", f"http://127.0.0.1:{shop.port}"  # the ERP file; the shop's host and port
    for tp, table, endpoint in (("customers", "customers", "/customers"), ("orders", "orders", "/orders")):
        extract, load = completed(events, f"{tp}.extract"), completed(events, f"{tp}.load")
        assert names(extract["inputs"]) == [(erp_ns, table)] and extract["outputs"] == []
        assert names(load["inputs"]) == [(erp_ns, table)]
        assert names(load["outputs"]) == [(shop_ns, endpoint)]
        assert extract["run"]["facets"]["parent"]["job"]["name"] == "erp_to_shop"  # one DAG run holds them

    facets = completed(events, "customers.load")["outputs"][0]["facets"]
    lineage = {
        field: [
            (i["namespace"], i["name"], i["field"], i["transformations"][0]["subtype"]) for i in found["inputFields"]
        ]
        for field, found in facets["columnLineage"]["fields"].items()
    }
    assert lineage == {
        "customer_id": [(erp_ns, "customers", "id", "IDENTITY")],
        "name": [
            (erp_ns, "customers", "first_name", "TRANSFORMATION"),
            (erp_ns, "customers", "last_name", "TRANSFORMATION"),
        ],
        "email": [(erp_ns, "customers", "email", "TRANSFORMATION")],
        "country": [(erp_ns, "customers", "country_code", "TRANSFORMATION")],
    }  # channel is a constant: it reads no source field
    email = facets["columnLineage"]["fields"]["email"]["inputFields"][0]["transformations"][0]
    assert email == {"type": "DIRECT", "subtype": "TRANSFORMATION", "description": "trim, lower case"}
    chosen = facets["columnLineage"]["dataset"]
    assert [(i["name"], i["field"], i["transformations"][0]["type"]) for i in chosen] == [
        ("customers", "updated_at", "INDIRECT")
    ]
    assert [(f["name"], f["type"]) for f in facets["schema"]["fields"]] == [
        ("customer_id", "string"),
        ("name", "string"),
        ("email", "string"),
        ("country", "string"),
        ("channel", "string"),
    ]
    orders = completed(events, "orders.load")["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert {f: [i["field"] for i in found["inputFields"]] for f, found in orders.items()} == {
        "order_id": ["id"],
        "customer_id": ["customer_id"],
        "total": ["amount"],
        "status": ["status"],
    }


def test_without_a_transport_the_provider_stays_disabled_and_sends_nothing(demo, tmp_path):
    erp, shop = demo
    result = run_example()  # no OpenLineage setting at all
    assert result["disabled"] and result["listeners"] == []
    assert not result["client_imported"]  # not even OpenLineage's client was imported: no event was built
    assert len(shop.records("customers")) == 5

    # Configured but switched off ([openlineage] disabled): the transport's file is never written, though the
    # changed records are extracted and loaded again.
    touch(erp, "customers", [1, 2])
    touch(erp, "orders", [3])
    writes = sum(shop.writes("customers").values()) + sum(shop.writes("orders").values())
    log = tmp_path / "openlineage.jsonl"
    transport = json.dumps({"type": "file", "log_file_path": str(log), "append": True})
    result = run_example(AIRFLOW__OPENLINEAGE__TRANSPORT=transport, AIRFLOW__OPENLINEAGE__DISABLED="true")
    assert result["disabled"] and result["listeners"] == [] and not log.exists()
    assert sum(shop.writes("customers").values()) + sum(shop.writes("orders").values()) == writes + 3


# ------------------------------------------------------------------- names of other stores, XPath fields


def test_names_follow_the_openlineage_conventions_and_hold_no_credentials(tmp_path):
    import sqlalchemy as sa

    pg = {"conn_type": "postgres", "host": "db.example", "port": None, "schema": "erp", "extra": {}}
    wf = load_spec(EXAMPLE)
    extract = wf.touchpoints[0].extract
    assert source("sql", pg, extract).datasets == [Dataset("postgres://db.example:5432", "erp.public.customers")]
    url = sa.engine.make_url("postgresql+psycopg://u:secret@db.example:6543/erp")
    assert sql_dataset(url, "sales.orders") == Dataset("postgres://db.example:6543", "erp.sales.orders")
    sqlalchemy_url = dict(pg, extra={"sqlalchemy_url": "mysql+pymysql://u:secret@my.example/shop"})
    assert target("sql", sqlalchemy_url, wf.touchpoints[0].load.model_copy(update={"table": "t"})) == Dataset(
        "mysql://my.example:3306", "shop.t"
    )
    rest = {"conn_type": "http", "host": "https://u:secret@api.example/v2/", "port": None, "schema": None, "extra": {}}
    assert rest_dataset(rest, "/customers?active=1") == Dataset("https://api.example:443", "/v2/customers")
    folder = {"conn_type": "fs", "host": None, "port": None, "schema": None, "extra": {"path": str(tmp_path)}}
    assert source("file", folder, extract.model_copy(update={"table": None, "file": "orders-*.csv"})).datasets == [
        Dataset("file", f"{tmp_path}/orders-*.csv")
    ]


def test_a_query_source_names_its_tables_and_where_each_field_comes_from(tmp_path):
    spec = load_spec(EXAMPLE).model_dump(mode="json")
    tp = spec["touchpoints"][1]
    tp["extract"] = {
        "query": "SELECT o.id, o.customer_id, o.amount, o.status, o.updated_at FROM orders o "
        "JOIN customers c ON c.id = o.customer_id",
        "key": "id",
        "incremental": "updated_at",
    }
    from flowlink.spec import Touchpoint

    orders = Touchpoint.model_validate(tp)
    conn = {"conn_type": "sqlite", "host": str(tmp_path / "erp.db"), "port": None, "schema": None, "extra": {}}
    src = source("sql", conn, orders.extract)
    erp = f"sqlite://{tmp_path}/erp.db"
    assert sorted(src.datasets) == [Dataset(erp, "customers"), Dataset(erp, "orders")]
    fields, chosen = column_lineage(orders, src)
    assert {f: [(i.dataset.name, i.field) for i in found] for f, found in fields.items()} == {
        "order_id": [("orders", "id")],
        "customer_id": [("orders", "customer_id")],
        "total": [("orders", "amount")],
        "status": [("orders", "status")],
    }
    assert [(i.dataset.name, i.field, i.subtype) for i in chosen] == [("orders", "updated_at", "FILTER")]


def test_the_fields_an_xpath_reads_are_its_first_steps_from_the_record():
    cases = {
        "concat(first_name, ' ', last_name)": ["first_name", "last_name"],
        "format-number(amount, '0.00')": ["amount"],
        "number(qty) * number(unit-price) div 100": ["qty", "unit-price"],
        "address/city": ["address"],
        "count(items/item[kind = 'gift'])": ["items"],
        "child::code | @id | $rate | name()": ["code"],
        "a and b or c mod 2": ["a", "b", "c"],
        "/records/record": [],
        "string(.)": [],
        "'first_name'": [],
    }
    for expr, fields in cases.items():
        assert xpath_fields(expr) == fields, expr


def test_a_connection_that_cannot_be_read_leaves_its_dataset_out_with_a_warning(monkeypatch, capfd):
    from flowlink_airflow.lineage import operator_lineage
    from flowlink_airflow.operators.load import LoadOperator

    monkeypatch.delenv("AIRFLOW_CONN_DEMO_ERP", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP", json.dumps({"conn_type": "http", "host": "http://shop.example:81"}))
    load = LoadOperator(task_id="load")
    load.workflow, load.touchpoint = "erp_to_shop", "customers"
    load.lineage_spec = load_spec(EXAMPLE).model_dump(mode="json")
    reported = operator_lineage(load)
    assert reported.inputs == []  # the ERP's connection is missing
    (output,) = reported.outputs
    assert (output.namespace, output.name) == ("http://shop.example:81", "/customers")
    assert "columnLineage" not in output.facets and [f.name for f in output.facets["schema"].fields][:2] == [
        "customer_id",
        "name",
    ]
    logged = capfd.readouterr()
    assert "OpenLineage: connection 'demo_erp':" in logged.out + logged.err and "left out" in logged.out + logged.err
