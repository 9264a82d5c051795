"""Flowlink maintenance, daily: the retention purge.

Snapshots with their batch files, Success rows of the resync bucket and feeds older than
FLOWLINK_RETENTION_DAYS (default 15) are removed (see flowlink/retention.py); Failed, Unprocessed and
Skipped records stay until resolved. Each purge writes its start and end to the feeds (tag `retention`).
`flowlink purge --dry-run` shows what the next purge would remove. It also deletes the Try page's tries that no page
came back for within an hour (flowlink.tries.KEEP).
"""

import datetime as dt
import logging

from airflow.sdk import DAG, task

with DAG(
    dag_id="flowlink_maintenance",
    description="Daily retention purge of Flowlink snapshots, Success bucket rows and feeds; expired tries",
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["flowlink"],
    doc_md=__doc__,
) as dag:

    @task(retries=1, retry_delay=dt.timedelta(minutes=10))
    def purge() -> dict:
        """Purge what is older than the retention period; returns the totals (also in the feeds)."""
        from flowlink import retention, settings, tries  # here, not at parse time: the store loads when the task runs
        from flowlink.store import Store
        from flowlink.store import tries as try_rows

        store = Store.open()
        try:
            result = retention.purge(store, settings.retention_days())
            expired = try_rows.purge(store, tries.KEEP)
        finally:
            store.dispose()
        log = logging.getLogger(__name__)
        log.info("purged what is older than %d days: %s", result["days"], retention.summary(result["total"]))
        log.info(
            "deleted %d tries of the Try page that no page came back for within %d minutes",
            expired,
            tries.KEEP.total_seconds() // 60,
        )
        return {"days": result["days"], "cutoff": result["cutoff"].isoformat(), **result["total"], "tries": expired}

    purge()
