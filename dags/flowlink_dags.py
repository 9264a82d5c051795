from flowlink_airflow.dag_factory import dags; globals().update(dags())  # Flowlink's DAGs
