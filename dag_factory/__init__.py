"""Flowlink's DAGs: one per live workflow (``workflows``) and Flowlink's own (deployments, retry, alerts, maintenance,
try).

An Airflow DAGs folder gets them through one-line files that ``flowlink dags write FOLDER`` writes
(flowlink/dag_files.py; this repository's ``dags/`` holds the same files):

- ``flowlink_dags.py``: ``own_dags()``, Flowlink's own DAGs;
- ``flowlink_workflows_NN.py``: ``workflow_dags(NN, of=K)``, the live workflows of shard NN of K (by a stable
  checksum of the workflow's name, flowlink.live.shard): no file's parse grows with the whole number of workflows,
  and the dag-processor parses the files in parallel;
- ``flowlink_import_errors_NN.py``: ``report_broken_files(NN, of=K)``, the live files of that shard that cannot
  become a DAG, shown as the import error of that file (Airflow UI > Dag import errors) while every DAG still loads.

In a task's process Airflow parses only its DAG's file, and only that DAG is built (Airflow's parsing context).
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

OWN = ("deployments", "retry", "alerts", "maintenance", "tries")  # modules of Flowlink's own DAGs (flowlink_*)


def own_dags() -> dict:
    """dag_id -> DAG of Flowlink's own DAGs. A task of a workflow's DAG needs none of them (workflow names never
    start with ``flowlink_``, flowlink/spec.py)."""
    from airflow.sdk import DAG, get_parsing_context

    wanted = get_parsing_context().dag_id
    if wanted is not None and not wanted.startswith("flowlink_"):
        return {}
    found: dict = {}
    for name in OWN:
        module = importlib.import_module(f"{__name__}.{name}")
        found.update((v.dag_id, v) for v in vars(module).values() if isinstance(v, DAG))
    return found


def _part(shard: int | None, of: int | None) -> tuple[int, int]:
    if not (isinstance(shard, int) and isinstance(of, int) and 0 <= shard < of):
        raise ValueError(f"Flowlink: shard {shard!r} of {of!r}: expected 0 <= shard < of (run `flowlink dags write`)")
    return shard, of


def workflow_dags(shard: int, of: int) -> dict:
    """dag_id -> DAG of the live workflows of one shard; only that shard's live files are read."""
    from flowlink_airflow.dag_factory.workflows import build_dags

    return build_dags(part=_part(shard, of))


def report_broken_files(shard: int | None = None, of: int | None = None) -> None:
    """Raise an ImportError naming every live file (of one shard) that cannot become a DAG, and why, when Airflow
    parses the file. Without a shard: every live file (the two-file layout's ``flowlink_import_errors.py``)."""
    from airflow.sdk import get_parsing_context

    from flowlink_airflow.dag_factory.workflows import broken_files

    if get_parsing_context().dag_id is not None:
        return
    part = None if shard is None and of is None else _part(shard, of)
    if broken := broken_files(part=part):
        where = f" (shard {part[0]} of {part[1]})" if part else ""
        raise ImportError(
            f"Flowlink: live workflow files that could not be loaded{where}:\n"
            + "\n".join(f"- {path}: {reason}" for path, reason in broken)
        )


def dags() -> dict:
    """Flowlink's own DAGs and every live workflow, from one file: what ``flowlink_dags.py`` called before the
    workflows were spread over several files. Kept so that a folder not yet written again by ``flowlink dags write``
    still shows every DAG after an upgrade of the package."""
    from airflow.sdk import get_parsing_context

    from flowlink_airflow.dag_factory.workflows import build_dags

    if get_parsing_context().dag_id is None:
        log.warning(
            "flowlink: this DAGs folder builds every workflow in flowlink_dags.py; run `flowlink dags write` to spread "
            "them over several files (one file's parse would otherwise grow with every workflow)"
        )
    return own_dags() | build_dags()
