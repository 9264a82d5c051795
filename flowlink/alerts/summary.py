"""The daily summary per workflow."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select

from flowlink.alerts.channels import channels_for
from flowlink.alerts.constants import CHUNK, DAILY_SUMMARY
from flowlink.alerts.events import exhausted
from flowlink.alerts.messages import links, message
from flowlink.alerts.sending import send
from flowlink.errors import plural
from flowlink.store import Store
from flowlink.store.db import utcnow
from flowlink.store.tables import bucket, data_log, steps

log = logging.getLogger(__package__)  # "flowlink.alerts", as before the split


# ------------------------------------------------------------------ the daily summary

def summary_counts(store: Store, workflow: str, since: dt.datetime, until: dt.datetime) -> dict:
    """What happened to a workflow in [since, until): runs (failed ones), records loaded, of them on a retry
    (a later try of a record that had failed: resync or automatic retry), record failures; and now: records
    Failed in the bucket, of them at the maximum of tries."""
    as_int = steps.c.count_in.type
    q = (select(steps.c.run_id, func.sum(func.cast(steps.c.status == "failed", as_int)))
         .where(steps.c.workflow == workflow, steps.c.started_at >= since, steps.c.started_at < until)
         .group_by(steps.c.run_id))
    with store.engine.connect() as conn:
        runs = dict(conn.execute(q).all())
        counts = {"successes": 0, "successful_retries": 0, "failures": 0}
        ids = list(runs)
        for i in range(0, len(ids), CHUNK):
            part = data_log.c.run_id.in_(ids[i:i + CHUNK])
            base = select(func.count()).select_from(data_log).where(part, data_log.c.workflow == workflow)
            counts["successes"] += conn.execute(base.where(data_log.c.step == "load", data_log.c.status == "success")).scalar_one()
            counts["successful_retries"] += conn.execute(base.where(data_log.c.step == "load", data_log.c.status == "success",
                                                                    data_log.c.tries > 1)).scalar_one()
            counts["failures"] += conn.execute(base.where(data_log.c.status == "failed")).scalar_one()
        failed_now = conn.execute(select(func.count()).select_from(bucket).where(
            bucket.c.workflow == workflow, bucket.c.status == "failed")).scalar_one()
    return {"runs": len(runs), "failed_runs": sum(1 for n in runs.values() if n), **counts, "failed_now": failed_now,
            "exhausted_now": len(exhausted(store, workflow)) if failed_now else 0,
            "since": since, "until": until}


def daily_summary(store: Store, workflow: str, environment: str | None, until: dt.datetime) -> list[dict]:
    """The last 24 hours of one workflow to the channels that asked for a daily summary; a channel with
    skip_empty_summary gets nothing when no run happened."""
    chosen = channels_for(store, workflow, environment, DAILY_SUMMARY)
    if not chosen:
        return []
    since = until - dt.timedelta(hours=24)
    c = summary_counts(store, workflow, since, until)
    empty = c["runs"] == 0
    chosen = [ch for ch in chosen if not (empty and ch["skip_empty_summary"])]
    if not chosen:
        return []
    subject = (f"[Flowlink] {workflow} daily summary: {c['successes']} succeeded ({c['successful_retries']} on a "
               f"retry), {c['failures']} failed")
    lines = [f"Workflow {workflow}" + (f" (environment {environment})" if environment else "")
             + f", 24 hours to {until:%Y-%m-%d %H:%M} UTC:",
             f"  runs: {c['runs']} ({c['failed_runs']} failed)",
             f"  records loaded: {c['successes']}",
             f"  of them successful retries (a later try of a record that had failed): {c['successful_retries']}",
             f"  record failures: {c['failures']}",
             f"Now: {plural(c['failed_now'], 'record')} Failed in the resync bucket, {c['exhausted_now']} of them at the maximum "
             "number of tries (no more automatic retries)."]
    if empty:
        lines.insert(1, "  nothing ran.")
    alert = message(DAILY_SUMMARY, subject=subject, lines=lines, facts=c,
                    link_map=links(workflow=workflow, snapshots_page=True), workflow=workflow, environment=environment)
    return send(store, DAILY_SUMMARY, f"summary:{workflow}:{until:%Y-%m-%d}", alert, workflow=workflow,
                environment=environment, channels=chosen)


def send_daily_summaries(store: Store, workflows: list[tuple[str, str | None]], until: dt.datetime | None = None) -> list[dict]:
    """The daily summary of every (live) workflow, for the 24 hours before ``until``."""
    until = until or utcnow()
    done = []
    for workflow, environment in workflows:
        try:
            done += daily_summary(store, workflow, environment, until)
        except Exception as exc:
            log.error("alerts: the daily summary of %s failed: %s", workflow, exc)
    return done
