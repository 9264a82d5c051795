"""Starting Airflow runs from the CLI and the API, through Airflow's own code on its metadata database."""

from __future__ import annotations

import contextlib
import sys

from flowlink.errors import FlowlinkError

TRACKER_DAG = "flowlink_deployments"  # dags/flowlink_deployments.py: one run per deployment


@contextlib.contextmanager
def _quiet():
    """Airflow sets up its logging (to stdout) when first imported: keep its lines off a command's output."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def require_dag(dag_id: str) -> None:
    with _quiet():
        from airflow.models.dag import DagModel
        from sqlalchemy.exc import SQLAlchemyError

        try:
            known = DagModel.get_current(dag_id)
        except SQLAlchemyError as exc:
            raise FlowlinkError(f"cannot read Airflow's metadata database ({type(exc.orig or exc).__name__}: "
                                f"{str(exc.orig or exc).splitlines()[0]}): is AIRFLOW_HOME set and `airflow db migrate` done?") from None
        if known is None:
            raise FlowlinkError(f"Airflow does not know the DAG {dag_id!r} yet: is the dag-processor running "
                                f"(or run `airflow dags reserialize`)?")


def trigger(dag_id: str, conf: dict) -> str:
    """Queue a run of a DAG; returns its run id."""
    with _quiet():
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.utils.types import DagRunTriggeredByType

        return trigger_dag(dag_id, conf=conf, triggered_by=DagRunTriggeredByType.REST_API).run_id
