"""Flowlink's Airflow cluster policy (entry point ``airflow.policy``): the Try page's fetch runs on the queue of the
environment the workflow runs in, which the run's conf names (Airflow documents this use of the hook)."""

from __future__ import annotations

from airflow import settings
from airflow.policies import hookimpl

TRY_DAG = "flowlink_try"  # flowlink.tries.TRY_DAG, without importing flowlink into every scheduler loop

# Airflow 3.3.2 creates a new run's task instances without calling the hook unless an airflow_local_settings module
# defines one (settings.task_instance_mutation_hook.is_noop is cleared only there): a hook that comes from an
# entry point, as this one, must clear it itself. Airflow loads this module before airflow_local_settings, which
# never sets the flag back.
settings.task_instance_mutation_hook.is_noop = False  # type: ignore[attr-defined]


@hookimpl
def task_instance_mutation_hook(task_instance, dag_run) -> None:
    if task_instance.dag_id != TRY_DAG or dag_run is None:
        return  # without the run (a task instance being built), its queue is left as it is
    queue = (dag_run.conf or {}).get("queue")
    if isinstance(queue, str) and queue:
        task_instance.queue = queue
