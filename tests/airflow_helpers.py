"""Helpers for tests that run the generated DAGs through Airflow (dag.test on serialized DAGs)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OWN_DAGS = [  # Flowlink's own DAGs (dags/flowlink_dags.py), beside the workflows
    "flowlink_alerts",
    "flowlink_daily_summary",
    "flowlink_deployments",
    "flowlink_maintenance",
    "flowlink_retry",
    "flowlink_try",
]


def manual_example(folder: Path) -> Path:
    """The example workflow with `sync: manual` (runs only when started) as folder/erp_to_shop.yaml."""
    import re

    text = (REPO / "examples" / "erp_to_shop.yaml").read_text()
    auto = re.search(r"schedule:\n(  .*\n)+", text)
    assert auto is not None
    spec = folder / "erp_to_shop.yaml"
    spec.write_text(text.replace(auto[0], "schedule:\n  sync: manual\n"))
    return spec


def demo_connections(erp: Path | str, shop_url: str) -> dict[str, str]:
    """The example workflow's Airflow Connections (as AIRFLOW_CONN_* variables): the demo ERP file and shop."""
    return {
        "AIRFLOW_CONN_DEMO_ERP": json.dumps({"conn_type": "sqlite", "host": str(erp)}),
        "AIRFLOW_CONN_DEMO_SHOP": json.dumps({"conn_type": "http", "host": shop_url}),
    }


@contextmanager
def demo_world(tmp_path: Path, monkeypatch, customers: int, orders: int):
    """A fresh FLOWLINK_HOME in tmp_path, the demo ERP (tmp_path/erp.db) with these many records, the demo shop on
    loopback, the example's Connections, the store; yields (erp, shop, store), then stops the shop and the store."""
    from examples.demo_erp import create as create_erp
    from examples.demo_shop import DemoShop
    from flowlink.store import Store

    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    erp = tmp_path / "erp.db"
    create_erp(erp, customers=customers, orders=orders)
    shop = DemoShop()
    url = shop.start()
    for name, value in demo_connections(erp, url).items():
        monkeypatch.setenv(name, value)
    store = Store.open()
    try:
        yield erp, shop, store
    finally:
        shop.stop()
        store.dispose()


def load_dags(dags_folder: Path = REPO / "dags"):
    """Parse the DAGs folder like the dag-processor does and store the serialized DAGs; returns the DagBag."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(dags_folder))
    sync_bag_to_db(bag, "dags-folder", None)
    return bag


def run_dag(dag_id: str, conf: dict | None = None):
    """One real run of a live workflow's DAG; returns (dag_run, {task_id: state})."""
    bag = load_dags()
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not in {sorted(bag.dag_ids)}"
    dag_run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    return dag_run, states
