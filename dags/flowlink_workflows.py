"""Every live Flowlink workflow as an Airflow DAG (see dag_factory). Reads only the live files: no database, no network."""

from dag_factory import build_dags

globals().update(build_dags())
