"""Helpers for tests that run the generated DAGs through Airflow (dag.test on serialized DAGs)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demo_connections(erp: Path | str, shop_url: str) -> dict[str, str]:
    """The example workflow's Airflow Connections (as AIRFLOW_CONN_* variables): the demo ERP file and shop."""
    return {"AIRFLOW_CONN_DEMO_ERP": json.dumps({"conn_type": "sqlite", "host": str(erp)}),
            "AIRFLOW_CONN_DEMO_SHOP": json.dumps({"conn_type": "http", "host": shop_url})}


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
