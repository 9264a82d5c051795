"""flowlink_airflow: Flowlink's Airflow layer (this folder, plugins/, in the repository).

- ``plugin``: the Airflow plugin (entry point ``airflow.plugins``): the timetables, the REST API and the pages;
- ``timetable``: WorkflowTimetable and ManualTimetable;
- ``policy``: the cluster policy (entry point ``airflow.policy``) that puts the Try page's fetch on its environment's
  queue;
- ``operators``, ``sensors``, ``triggers``, ``hooks``, ``notifiers``: what the DAGs run;
- ``api``: the FastAPI app (REST API, agent endpoints, pages);
- ``dag_factory`` (the repository's dag_factory/): the DAGs themselves.
"""
