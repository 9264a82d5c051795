"""Triggers: they wait in Airflow's triggerer for deferred sensors."""
