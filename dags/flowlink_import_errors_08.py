from flowlink_airflow.dag_factory import report_broken_files; report_broken_files(8, of=16)  # live files of shard 8 of 16 that cannot become a DAG (airflow dag)
