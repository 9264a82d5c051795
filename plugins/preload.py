"""Flowlink's modules imported once in the Airflow processes that fork others, instead of in every forked process.

A task process is forked from a LocalExecutor worker, itself forked from the scheduler when the scheduler starts; a
DAG file is parsed in a process forked from the dag-processor. What the parent imported, the child has for free:
so the scheduler imports what a touchpoint task imports (the operators' execute, the hook, the connectors, the
store, the sync steps) and the dag-processor what building the workflow DAGs imports. Measured with
bench/schedule.py: an idle extract's task process uses less than half the CPU it did.

Done by a listener (FlowlinkPlugin.listeners): Airflow calls ``on_starting`` as each of its jobs starts, in the
scheduler before it forks its executor's workers. Other processes are left alone (the api-server, the triggerer,
the CLI, a task's own start), and a module that fails to import only costs a warning: the task imports it again
and reports the error where it belongs.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

# What building the workflow DAGs imports (the DAG files' dags() and workflow_dags()).
PARSE_MODULES = (
    "flowlink_airflow.dag_factory",
    "flowlink_airflow.dag_factory.workflows",
    "flowlink_airflow.dag_factory.render",
    "flowlink.live",
)
# What a touchpoint task imports in its execute (operators/base.py and each run_step, the hook and its connectors);
# tests/test_idle_runs.py checks that these leave the operators nothing of Flowlink to import.
TASK_MODULES = (
    *PARSE_MODULES,
    "flowlink.publish",
    "flowlink.sync",
    "flowlink.store",
    "flowlink.store.snapshots",
    "flowlink.store.state",
    "flowlink.store.bucket",
    "flowlink.store.loads",
    "flowlink.mapping",
    "flowlink.transform",
    "flowlink.connectors.base",
    "flowlink_airflow.hooks.application",
    "flowlink_airflow.metrics",
)
BY_COMMAND = {"scheduler": TASK_MODULES, "dag-processor": PARSE_MODULES}  # `airflow <command>` -> what it imports


def preload(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the task or the parse that needs it reports the error itself
            log.warning("flowlink: could not import %s ahead of its tasks: %s", name, exc)


class Preloader:
    """The listener: imports ahead of time in the scheduler and the dag-processor (by their command line)."""

    @hookimpl
    def on_starting(self, component: Any) -> None:
        if type(component).__name__ != "Job":  # a task's own start (its process inherited the scheduler's argv)
            return
        modules = BY_COMMAND.get(sys.argv[1] if len(sys.argv) > 1 else "")
        if modules:
            preload(modules)


LISTENER = Preloader()
