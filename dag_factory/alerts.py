"""Flowlink's alert checks (flowlink/alerts/). Parsing imports only the Task SDK; the store loads when a task runs.

* `flowlink_alerts`, every 5 minutes: agents silent longer than their environment's disconnect_alert_minutes, and
  scheduled workflow runs that could not start because the previous run was still running (the schedule's ticks
  during each recent run, from the snapshot, asked of Airflow through the Task SDK: is there a run for this tick;
  a task has no metadata database access).
* `flowlink_daily_summary`, daily at 00:00 UTC: per live workflow the 24 hours before, to the channels that asked
  for a daily summary.
Each alert goes out once per channel (alerts_sent), however often the checks run.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

COMMON = dict(catchup=False, is_paused_upon_creation=False, max_active_runs=1, tags=["flowlink"],
              default_args={"owner": "flowlink", "retries": 0})


def _store():
    from flowlink.store import Store

    return Store.open()


with DAG(dag_id="flowlink_alerts", description="Flowlink alerts: disconnected agents, scheduled runs that could not start",
         schedule=dt.timedelta(minutes=5), start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
         doc_md=__doc__, **COMMON):

    @task(task_id="agents")
    def agents() -> int:
        from flowlink import alerts

        store = _store()
        try:
            return len(alerts.check_agents(store))
        finally:
            store.dispose()

    @task(task_id="blocked_runs")
    def blocked_runs(ti=None) -> int:
        from flowlink import alerts

        def paused(dag_id: str) -> bool:
            return ti.get_dag(dag_id).is_paused  # the Task SDK asks the api-server

        def count_runs(dag_id: str, **criteria) -> int:
            return ti.get_dr_count(dag_id=dag_id, **criteria)

        store = _store()
        try:
            return len(alerts.check_blocked_runs(store, alerts.scheduled_workflows(), paused=paused,
                                                 count_runs=count_runs))
        finally:
            store.dispose()

    agents()
    blocked_runs()


with DAG(dag_id="flowlink_daily_summary", description="Flowlink daily summary per workflow: successes, successful "
         "retries, failures in the last 24 hours", schedule="@daily",
         start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), doc_md=__doc__, **COMMON):

    @task(task_id="summaries")
    def summaries(logical_date=None) -> int:
        from flowlink import alerts

        store = _store()
        try:
            return len(alerts.send_daily_summaries(store, alerts.live_workflows(), until=logical_date))
        finally:
            store.dispose()

    summaries()
