from flowlink_airflow.dag_factory import own_dags; globals().update(own_dags())  # Flowlink's own DAGs
