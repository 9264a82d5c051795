"""Sensors: they wait for something outside Airflow, deferring to a trigger."""
