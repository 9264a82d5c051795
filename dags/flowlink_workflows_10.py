from flowlink_airflow.dag_factory import workflow_dags; globals().update(workflow_dags(10, of=16))  # Flowlink's live workflows, shard 10 of 16
