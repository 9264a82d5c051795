from flowlink_airflow.dag_factory import workflow_dags; globals().update(workflow_dags(2, of=16))  # Flowlink's live workflows, shard 2 of 16
