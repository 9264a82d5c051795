from flowlink_airflow.dag_factory import report_broken_files; report_broken_files()  # Flowlink's live files that cannot become a DAG (airflow dag)
