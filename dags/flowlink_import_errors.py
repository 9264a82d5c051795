"""Reports live workflow files that cannot become a DAG as an import error of this file.

The other workflows still load from flowlink_workflows.py; this file only makes a broken one visible
(Airflow UI > Dag import errors, `airflow dags list-import-errors`) with its file and reason.
"""

from airflow.sdk import get_parsing_context

from dag_factory import broken_files

if get_parsing_context().dag_id is None and (broken := broken_files()):
    raise ImportError("Flowlink: live workflow files that could not be loaded:\n" + "\n".join(f"- {p}: {r}" for p, r in broken))
