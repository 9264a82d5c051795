"""Flowlink's Airflow notifiers: e-mail (Airflow's SMTP provider) and webhook (JSON over HTTP POST), and the
workflow DAGs' failure callback. Import the modules themselves: importing this package costs nothing."""
