"""Flowlink: business-application integrations on Apache Airflow 3."""
