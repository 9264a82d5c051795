"""Flowlink's DAGs: one per live workflow (``workflows``) and Flowlink's own (deployments, retry, alerts, maintenance).

An Airflow DAGs folder gets them through two one-line files that ``flowlink dags write FOLDER`` writes
(flowlink/dag_files.py; this repository's ``dags/`` holds the same two):

- ``flowlink_dags.py``: ``globals().update(dags())``, every DAG below;
- ``flowlink_import_errors.py``: ``report_broken_files()``, live files that cannot become a DAG, shown as the
  import error of that file (Airflow UI > Dag import errors) while the other DAGs still load.
"""

from __future__ import annotations

import importlib

OWN = ("deployments", "retry", "alerts", "maintenance", "tries")  # modules of Flowlink's own DAGs (flowlink_*)


def dags() -> dict:
    """dag_id -> DAG. In a task's process only what that task needs is built (Airflow's parsing context)."""
    from airflow.sdk import DAG, get_parsing_context

    from flowlink_airflow.dag_factory.workflows import build_dags

    wanted = get_parsing_context().dag_id
    if wanted is not None and not wanted.startswith("flowlink_"):
        return build_dags()
    found: dict = {}
    for name in OWN:
        module = importlib.import_module(f"{__name__}.{name}")
        found.update((v.dag_id, v) for v in vars(module).values() if isinstance(v, DAG))
    if wanted is None:
        found.update(build_dags())
    return found


def report_broken_files() -> None:
    """Raise an ImportError naming every live file that cannot become a DAG, and why (when Airflow parses the file)."""
    from airflow.sdk import get_parsing_context

    from flowlink_airflow.dag_factory.workflows import broken_files

    if get_parsing_context().dag_id is None and (broken := broken_files()):
        raise ImportError(
            "Flowlink: live workflow files that could not be loaded:\n"
            + "\n".join(f"- {path}: {reason}" for path, reason in broken)
        )
